"""``soar alerts``: the alert queue on the command line — list, show, acknowledge, assign, close, reopen.

Every command acts as the principal the command line authenticates as (``soar.cli._identity``) and
sees only alerts in its scope (the inventory's labels of the alert's hosts, the rule's attributes):
an alert outside it is "unknown", as in the API's 404. Ids may be shortened to any unique prefix
(``soar.ids``). Each change is audited with the principal's name and role.
"""

from __future__ import annotations

import time
from typing import Any

import typer

from soar.cli._output import echo_json, table
from soar.config import Settings, get_settings
from soar.errors import InputError

app = typer.Typer(no_args_is_help=True)

LEVELS = ("informational", "low", "medium", "high", "critical")
STATUSES = ("open", "acknowledged", "closed")
SORTS = ("time", "severity", "status")
PAGE = 500  # alerts read per store query while filtering


def _when(text: str | None, option: str) -> str | None:
    """An ISO-8601 time, or a duration back from now (``30m``, ``2h``, ``7d``), as stored times compare."""
    if not text:
        return None
    from soar.scheduler.planning import iso, parse_time
    from soar.scheduler.rules import parse_duration

    at = parse_time(text)
    if at is None:
        try:
            at = time.time() - parse_duration(text, option)
        except ValueError:
            raise InputError(f"{option}: expected an ISO-8601 time or a duration like 30m, got {text!r}") from None
    return iso(at)


def _scoped(settings: Settings, permission: str, of: str = "of_alert") -> tuple[Any, Any, Any]:
    """(principal, scopes, visible): ``visible(record)`` when the principal may ``permission`` in every scope of the
    record (``of``: the ``Scopes`` method that reads a record of this kind — ``of_alert``, ``of_incident``)."""
    from soar.access import authorize_in
    from soar.cli._identity import cli_principal_with
    from soar.scope import scopes_for

    principal = cli_principal_with(settings, permission)
    scopes = scopes_for(settings)
    scopes_of = getattr(scopes, of)

    def visible(record: Any) -> bool:
        return authorize_in(principal, permission, scopes_of(record.doc)).allowed

    return principal, scopes, visible


def _row(doc: dict[str, Any]) -> list[str]:
    host = (doc.get("host") or {}).get("name") or (doc.get("host") or {}).get("hostname") or "-"
    user = (doc.get("user") or {}).get("name") or "-"
    return [
        str(doc.get("id", ""))[:16],
        str(doc.get("@timestamp", ""))[:19].replace("T", " "),
        str(doc.get("severity") or (doc.get("rule") or {}).get("level") or "-"),
        str(doc.get("status") or "open"),
        str(doc.get("assignee") or "-"),
        str(host),
        str(user),
        str((doc.get("rule") or {}).get("title") or "")[:48],
    ]


@app.command("list")
def list_alerts(
    status: str = typer.Option(None, "--status", help="open | acknowledged | closed"),
    level: str = typer.Option(None, "--level", help="informational | low | medium | high | critical"),
    rule: str = typer.Option(None, "--rule", help="A rule id."),
    host: str = typer.Option(None, "--host", help="host.name"),
    user: str = typer.Option(None, "--user", help="user.name"),
    assignee: str = typer.Option(None, "--assignee", help="A principal's name; 'me' for yourself."),
    since: str = typer.Option(None, "--since", help="ISO-8601 time or a duration back from now (2h, 7d)."),
    until: str = typer.Option(None, "--until", help="ISO-8601 time or a duration back from now."),
    text: str = typer.Option(None, "--text", help="Free text in the id, rule, host, user, source or command line."),
    sort: str = typer.Option("time", "--sort", help="time (newest first) | severity | status, within the page."),
    limit: int = typer.Option(50, "--limit", min=1, max=1000, help="Alerts per page."),
    before: str = typer.Option(None, "--before", help="The next page: alerts older than this time (printed)."),
    as_json: bool = typer.Option(False, "--json", help="Print the alerts as JSON."),
) -> int:
    """Alerts in your scope, newest first, with filters; the last line says how to get the next page."""
    from soar.review.feedback import ALERTS
    from soar.review.queue import matches_text
    from soar.store import Range, open_store

    for value, allowed, option in ((status, STATUSES, "--status"), (level, LEVELS, "--level"), (sort, SORTS, "--sort")):
        if value is not None and value not in allowed:
            raise InputError(f"{option}: one of {', '.join(allowed)}, got {value!r}")
    settings = get_settings()
    principal, _scopes, visible = _scoped(settings, "alerts:read")
    where: dict[str, Any] = {}
    for field, value in (("severity", level), ("rule.id", rule), ("host.name", host), ("user.name", user)):
        if value:
            where[field] = value
    if assignee:
        where["assignee"] = principal.name if assignee == "me" else assignee
    if status in ("acknowledged", "closed"):
        where["status"] = status
    low, high = _when(since, "--since"), _when(until, "--until")
    cursor = _when(before, "--before") if before else None
    rows: list[dict[str, Any]] = []
    store = open_store(settings)
    try:
        while len(rows) < limit:
            upper = min(x for x in (high, cursor) if x) if (high or cursor) else None
            bound = Range(gte=low, lt=upper) if (low or upper) else None
            page = store.find(
                ALERTS, {**where, **({"@timestamp": bound} if bound else {})},
                order_by="@timestamp", descending=True, limit=PAGE,
            )  # fmt: skip
            for rec in page:
                doc = rec.doc
                if status == "open" and doc.get("status") not in (None, "open"):
                    continue
                if text and not matches_text(doc, text):
                    continue
                if visible(rec):
                    rows.append(doc)
                    if len(rows) == limit:
                        break
            if len(page) < PAGE:
                break
            cursor = str(page[-1].doc.get("@timestamp"))
    finally:
        store.close()
    more = len(rows) == limit
    rank = {name: i for i, name in enumerate(LEVELS)}
    if sort == "severity":
        rows.sort(key=lambda d: -rank.get(str(d.get("severity")), 0))
    elif sort == "status":
        rows.sort(key=lambda d: STATUSES.index(str(d.get("status") or "open")))
    if as_json:
        echo_json(rows)
        return 0
    headers = ["id", "time (UTC)", "level", "status", "assignee", "host", "user", "rule"]
    typer.echo(table(headers, [_row(d) for d in rows]) if rows else "no alerts")
    if more:
        oldest = min(str(d.get("@timestamp")) for d in rows)
        typer.echo(f"more: soar alerts list --before {oldest} (same filters)", err=True)
    return 0


def _one(settings: Settings, alert_id: str, permission: str) -> tuple[Any, Any, Any]:
    """(store, record, principal) of an alert in the principal's scope; NotFound otherwise (like unknown)."""
    from soar.ids import resolve
    from soar.review.feedback import ALERTS
    from soar.store import open_store

    principal, _scopes, visible = _scoped(settings, permission)
    store = open_store(settings)
    try:
        rec = resolve(store, ALERTS, alert_id, "alert", visible)
    except Exception:
        store.close()
        raise
    return store, rec, principal


@app.command("show")
def show(
    alert_id: str = typer.Argument(..., help="An alert id, or a unique prefix of one."),
    as_json: bool = typer.Option(False, "--json", help="Print the alert and its runs as JSON."),
) -> int:
    """One alert: what matched, on which host and user, its state, and the runs it started."""
    settings = get_settings()
    from soar.incidents import incident_of_alert

    store, rec, principal = _one(settings, alert_id, "alerts:read")
    try:
        runs = [r.doc for r in store.find("runs", {"alert_id": rec.id}, order_by="created_at", limit=100)]
        incident = incident_of_alert(store, rec.id)
        if incident is not None and not _visible_incident(settings, store, incident, principal):
            incident = None  # an incident spanning hosts outside the principal's scope is not named
    finally:
        store.close()
    doc = rec.doc
    if as_json:
        echo_json({"alert": doc, "runs": runs, "incident_id": incident})
        return 0
    rule = doc.get("rule") or {}
    lines = [
        f"alert {rec.id}",
        f"  rule       {rule.get('title', '')} ({rule.get('id', '')})",
        f"  level      {doc.get('severity') or rule.get('level')}    risk {doc.get('risk_score', '-')}",
        f"  detected   {doc.get('@timestamp')}    first event {doc.get('first_event_time', '-')}",
        f"  status     {doc.get('status') or 'open'}    assignee {doc.get('assignee') or '-'}"
        f"    verdict {doc.get('verdict') or '-'}",
        f"  incident   {incident or '-'}",
    ]
    for entity in ("host", "user", "source", "destination", "process"):
        value = doc.get(entity)
        if isinstance(value, dict) and value:
            lines.append(f"  {entity:<10} " + ", ".join(f"{k}={v}" for k, v in sorted(value.items()) if v))
    hosts = (doc.get("inventory") or {}).get("hosts") or []
    if hosts:
        lines.append("  inventory  " + "; ".join(f"{h['host']} {h.get('labels') or {}}" for h in hosts))
    events = [str(e) for e in doc.get("event_ids") or []]
    lines.append(f"  events     {len(events)} matched: {', '.join(events[:5])}")
    for run in runs:
        lines.append(f"  run        {run.get('id')} {run.get('playbook', {}).get('name', '')} {run.get('status')}")
    typer.echo("\n".join(lines))
    return 0


def _visible_incident(settings: Settings, store: Any, incident_id: str, principal: Any) -> bool:
    from soar.access import authorize_in
    from soar.incidents import KIND
    from soar.scope import scopes_for

    rec = store.get(KIND, incident_id)
    return rec is not None and authorize_in(principal, "alerts:read", scopes_for(settings).of_incident(rec.doc)).allowed


def _triage(alert_id: str, note: str, apply: Any, what: str) -> int:
    settings = get_settings()
    store, rec, principal = _one(settings, alert_id, "alerts:triage")
    try:
        doc, changed = apply(store, settings, rec.id, principal)
    finally:
        store.close()
    state = doc.get("status") or "open"
    typer.echo(f"alert {rec.id}: {what} by {principal.name}" if changed else f"alert {rec.id}: already {state}")
    return 0


@app.command("ack")
def ack(
    alert_id: str = typer.Argument(..., help="An alert id, or a unique prefix of one."),
    note: str = typer.Option("", "--note", help="Why (kept in the audit trail)."),
) -> int:
    """Acknowledge an alert (stops its MTTA clock)."""
    from soar.review.triage import set_alert_status

    def apply(store: Any, settings: Settings, aid: str, p: Any) -> tuple[dict[str, Any], bool]:
        before = store.get("alerts", aid)
        doc = set_alert_status(store, settings, aid, "acknowledged", actor=p.name, role=p.role, note=note)
        return doc, before is None or before.doc.get("acknowledged_at") != doc.get("acknowledged_at")

    return _triage(alert_id, note, apply, "acknowledged")


@app.command("close")
def close(
    alert_id: str = typer.Argument(..., help="An alert id, or a unique prefix of one."),
    note: str = typer.Option("", "--note", help="Why (kept in the audit trail)."),
) -> int:
    """Close an alert (acknowledging it too if it was not)."""
    from soar.review.triage import set_alert_status

    def apply(store: Any, settings: Settings, aid: str, p: Any) -> tuple[dict[str, Any], bool]:
        before = store.get("alerts", aid)
        doc = set_alert_status(store, settings, aid, "closed", actor=p.name, role=p.role, note=note)
        return doc, before is None or before.doc.get("status") != "closed"

    return _triage(alert_id, note, apply, "closed")


@app.command("reopen")
def reopen(
    alert_id: str = typer.Argument(..., help="An alert id, or a unique prefix of one."),
    note: str = typer.Option("", "--note", help="Why (kept in the audit trail)."),
) -> int:
    """Open a closed alert again."""
    from soar.review.triage import reopen_alert

    def apply(store: Any, settings: Settings, aid: str, p: Any) -> tuple[dict[str, Any], bool]:
        return reopen_alert(store, settings, aid, actor=p.name, role=p.role, note=note)

    return _triage(alert_id, note, apply, "reopened")


@app.command("assign")
def assign(
    alert_id: str = typer.Argument(..., help="An alert id, or a unique prefix of one."),
    to: str = typer.Argument(..., help="A principal's name, 'me', or 'nobody'."),
    note: str = typer.Option("", "--note", help="Why (kept in the audit trail)."),
) -> int:
    """Give an alert to a principal of the principals file (or take it back with 'nobody')."""
    from soar.access import load_principals
    from soar.review.triage import assign_alert

    def apply(store: Any, s: Settings, aid: str, p: Any) -> tuple[dict[str, Any], bool]:
        target = p.name if to == "me" else None if to == "nobody" else to
        if target is not None and target != p.name and target not in {q.name for q in load_principals(s).items}:
            raise InputError(f"assign: {target!r} is not a principal of {s.api_tokens_file}")
        return assign_alert(store, s, aid, target, actor=p.name, role=p.role, note=note)

    return _triage(alert_id, note, apply, f"assigned to {to}")
