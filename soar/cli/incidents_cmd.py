"""``soar incidents``: alerts grouped by host or user on the command line — list, show, acknowledge, assign,
close, reopen, note, and the incident's report.

The same shape as ``soar alerts``: every command acts as the principal the command line authenticates as and
sees only incidents in its scope (every alert of the incident must be: ``Scopes.of_incident``); one outside it
is "unknown", as in the API's 404. Ids may be shortened to any unique prefix; an id of a merged incident names
the one it was merged into. Each change is audited with the principal's name and role.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from soar.cli._output import echo_json, table
from soar.config import Settings, get_settings
from soar.errors import InputError

app = typer.Typer(no_args_is_help=True)

STATUSES = ("open", "acknowledged", "closed")
PAGE = 500


def _scoped(settings: Settings, permission: str) -> tuple[Any, Any]:
    from soar.cli.alerts_cmd import _scoped as scoped

    principal, _scopes, visible = scoped(settings, permission, "of_incident")
    return principal, visible


def _row(doc: dict[str, Any]) -> list[str]:
    key = doc.get("key") or {}
    return [
        str(doc.get("id", ""))[:16],
        str(doc.get("last_at", ""))[:19].replace("T", " "),
        str(doc.get("severity") or "-"),
        str(doc.get("status") or "open"),
        str(doc.get("owner") or "-"),
        str(doc.get("alert_count", 0)),
        f"{key.get('field', '')}={key.get('value', '')}",
        "; ".join(str(r.get("title") or r.get("id")) for r in doc.get("rules") or [])[:60],
    ]


@app.command("list")
def list_incidents(
    status: str = typer.Option(None, "--status", help="open | acknowledged | closed"),
    owner: str = typer.Option(None, "--owner", help="A principal's name; 'me' for yourself."),
    host: str = typer.Option(None, "--host", help="Incidents with an alert on this host.name."),
    user: str = typer.Option(None, "--user", help="Incidents with an alert by this user.name."),
    since: str = typer.Option(None, "--since", help="Active since: ISO-8601 time or a duration back (2h, 7d)."),
    limit: int = typer.Option(50, "--limit", min=1, max=1000, help="Incidents per page."),
    before: str = typer.Option(None, "--before", help="The next page: incidents last active before this time."),
    as_json: bool = typer.Option(False, "--json", help="Print the incidents as JSON."),
) -> int:
    """Incidents in your scope, the most recently active first; the last line says how to get the next page."""
    from soar.cli.alerts_cmd import _when
    from soar.incidents import KIND
    from soar.records.incident import public
    from soar.store import Range, open_store

    if status is not None and status not in STATUSES:
        raise InputError(f"--status: one of {', '.join(STATUSES)}, got {status!r}")
    settings = get_settings()
    principal, visible = _scoped(settings, "alerts:read")
    where: dict[str, Any] = {"merged_into": None}
    if status:
        where["status"] = status
    if owner:
        where["owner"] = principal.name if owner == "me" else owner
    low, cursor = _when(since, "--since"), _when(before, "--before")
    rows: list[dict[str, Any]] = []
    store = open_store(settings)
    try:
        while len(rows) < limit:
            bound = Range(gte=low, lt=cursor) if (low or cursor) else None
            page = store.find(KIND, {**where, **({"last_at": bound} if bound else {})}, order_by="last_at",
                              descending=True, limit=PAGE)  # fmt: skip
            for rec in page:
                if host and host.casefold() not in {h.casefold() for h in rec.doc.get("hosts") or []}:
                    continue
                if user and user not in (rec.doc.get("users") or []):
                    continue
                if visible(rec):
                    rows.append(public(rec.doc))
                    if len(rows) == limit:
                        break
            if len(page) < PAGE:
                break
            cursor = str(page[-1].doc.get("last_at"))
    finally:
        store.close()
    if as_json:
        echo_json(rows)
        return 0
    headers = ["id", "last alert (UTC)", "level", "status", "owner", "alerts", "key", "rules"]
    typer.echo(table(headers, [_row(d) for d in rows]) if rows else "no incidents")
    if len(rows) == limit:
        oldest = min(str(d.get("last_at")) for d in rows)
        typer.echo(f"more: soar incidents list --before {oldest} (same filters)", err=True)
    return 0


def _one(settings: Settings, incident_id: str, permission: str) -> tuple[Any, Any, Any]:
    """(store, live record, principal) of an incident in the principal's scope; NotFound otherwise (like unknown)."""
    from soar.ids import resolve
    from soar.incidents import KIND, live_id
    from soar.store import open_store

    principal, visible = _scoped(settings, permission)
    store = open_store(settings)
    try:
        exact = store.get(KIND, incident_id.strip())
        live = store.get(KIND, live_id(store, exact.id)) if exact is not None else None
        if live is not None and visible(live):
            return store, live, principal
        rec = resolve(store, KIND, incident_id, "incident", lambda r: not r.doc.get("merged_into") and visible(r))
    except Exception:
        store.close()
        raise
    return store, rec, principal


@app.command("show")
def show(
    incident_id: str = typer.Argument(..., help="An incident id, or a unique prefix of one."),
    as_json: bool = typer.Option(False, "--json", help="Print the incident, its alerts, runs and timeline as JSON."),
) -> int:
    """One incident: its key, span, status and owner, its alerts, and everything that happened, in order."""
    from soar.incidents.report import alert_rows, load, timeline
    from soar.records.incident import public

    settings = get_settings()
    store, rec, _principal = _one(settings, incident_id, "alerts:read")
    try:
        data = load(store, rec.id)
    finally:
        store.close()
    inc = data["incident"]
    events = timeline(inc, data["alerts"], data["runs"], data["approvals"], data["verdicts"], data["audit"])
    alerts = alert_rows(data["alerts"])
    if as_json:
        runs = [{"id": r["id"], "alert_id": r.get("alert_id"), "status": r.get("status")} for r in data["runs"]]
        echo_json({"incident": public(inc.to_doc()), "alerts": alerts, "runs": runs, "timeline": events})
        return 0
    lines = [
        f"incident {inc.id}",
        f"  key        {inc.key['field']}={inc.key['value']}",
        f"  span       {inc.first_at} .. {inc.last_at}    {inc.alert_count} alerts, worst {inc.severity}",
        f"  status     {inc.status}    owner {inc.owner or '-'}",
        f"  hosts      {', '.join(inc.hosts) or '-'}",
        f"  users      {', '.join(inc.users) or '-'}",
    ]
    if inc.absorbed:
        lines.append(f"  merged     {', '.join(inc.absorbed)}")
    typer.echo("\n".join(lines) + "\n")
    rows = [
        (a.get("first_event_time") or a.get("@timestamp"), str(a["id"])[:16], a.get("severity"),
         (a.get("rule") or {}).get("title"), (a.get("host") or {}).get("name"))
        for a in alerts
    ]  # fmt: skip
    typer.echo(table(["first event", "alert", "level", "rule", "host"], rows) + "\n")
    typer.echo(_timeline(events))
    return 0


def _timeline(events: list[dict[str, Any]]) -> str:
    rows = [(e["at"] or "—", e["kind"], e["title"], str(e["detail"])[:80], e["actor"]) for e in events]
    return table(["time", "what", "title", "detail", "who"], rows)


def _change(incident_id: str, apply: Any, what: str) -> int:
    settings = get_settings()
    store, rec, principal = _one(settings, incident_id, "alerts:triage")
    try:
        doc, changed = apply(store, settings, rec.id, principal)
    finally:
        store.close()
    typer.echo(
        f"incident {rec.id}: {what} by {principal.name}" if changed else f"incident {rec.id}: already {doc['status']}"
    )
    return 0


def _status(incident_id: str, to: str, note: str, what: str) -> int:
    from soar.incidents.changes import set_status

    def apply(store: Any, s: Settings, iid: str, p: Any) -> tuple[dict[str, Any], bool]:
        return set_status(store, s, iid, to, actor=p.name, role=p.role, note=note)  # type: ignore[arg-type]

    return _change(incident_id, apply, what)


ID_ARG = typer.Argument(..., help="An incident id, or a unique prefix of one.")
NOTE = typer.Option("", "--note", help="Why (kept in the audit trail).")


@app.command("ack")
def ack(incident_id: str = ID_ARG, note: str = NOTE) -> int:
    """Acknowledge an incident."""
    return _status(incident_id, "acknowledged", note, "acknowledged")


@app.command("close")
def close(incident_id: str = ID_ARG, note: str = NOTE) -> int:
    """Close an incident (acknowledging it too if it was not). Its alerts keep their own status."""
    return _status(incident_id, "closed", note, "closed")


@app.command("reopen")
def reopen(incident_id: str = ID_ARG, note: str = NOTE) -> int:
    """Open a closed incident again."""
    return _status(incident_id, "open", note, "reopened")


@app.command("assign")
def assign(
    incident_id: str = ID_ARG,
    to: str = typer.Argument(..., help="A principal's name, 'me', or 'nobody'."),
    note: str = NOTE,
) -> int:
    """Give an incident to a principal of the principals file (or take it back with 'nobody')."""
    from soar.access import load_principals
    from soar.incidents.changes import assign as assign_incident

    def apply(store: Any, s: Settings, iid: str, p: Any) -> tuple[dict[str, Any], bool]:
        target = p.name if to == "me" else None if to == "nobody" else to
        if target is not None and target != p.name and target not in {q.name for q in load_principals(s).items}:
            raise InputError(f"assign: {target!r} is not a principal of {s.api_tokens_file}")
        return assign_incident(store, s, iid, target, actor=p.name, role=p.role, note=note)

    return _change(incident_id, apply, f"assigned to {to}")


@app.command("note")
def note(
    incident_id: str = ID_ARG,
    text: str = typer.Argument(..., help="The note (kept verbatim, shown in the timeline and the report)."),
) -> int:
    """Add a note to an incident's timeline."""
    from soar.incidents.changes import add_note

    def apply(store: Any, s: Settings, iid: str, p: Any) -> tuple[dict[str, Any], bool]:
        return add_note(store, s, iid, text, actor=p.name, role=p.role)

    return _change(incident_id, apply, "noted")


@app.command("report")
def report(
    incident_id: str = ID_ARG,
    html: Path = typer.Option(None, "--html", help="Write a self-contained HTML page to this file."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> int:
    """The incident's one report: its timeline, its alerts, and each run's report as a section."""
    from soar.incidents.report import build_report, report_html
    from soar.review.render import write_atomic
    from soar.review.timeline import impacts_from_registry

    settings = get_settings()
    store, rec, _principal = _one(settings, incident_id, "reports:read")
    try:
        rep = build_report(store, settings, rec.id, impact_of=impacts_from_registry(settings))
    finally:
        store.close()
    if html is not None:
        write_atomic(html, report_html(rep))
    if as_json:
        echo_json(rep)
        return 0
    inc = rep["incident"]
    typer.echo(f"incident {inc['id']}  {inc['key']['field']}={inc['key']['value']}  status {inc['status']}")
    typer.echo(f"{inc['alert_count']} alerts, {len(rep['runs'])} runs\n")
    typer.echo(_timeline(rep["timeline"]))
    if html is not None:
        typer.echo(f"\nwrote {html}")
    return 0
