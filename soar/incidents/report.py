"""An incident's timeline and its one report: alerts, runs, approvals, verdicts, notes and what people did,
in the order it happened, with each run's own report as a section.

``timeline`` is pure (documents in, events out); ``load`` reads what it needs; ``build_report`` is the JSON
form (secrets redacted, like the run report), ``report_html`` the printable page (the sandboxed templates).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypedDict

from soar import __version__
from soar.alerts import utcnow_iso
from soar.audit.chain import KIND as AUDIT
from soar.config import Settings
from soar.errors import NotFound
from soar.incidents.attach import ALERTS, MEMBERS, live_id
from soar.records import Approval, Run, run_planned
from soar.records.incident import KIND, Incident
from soar.review.data import APPROVALS, RUNS, _approvals
from soar.review.feedback import VERDICTS
from soar.review.timeline import ImpactOf, default_impact_of
from soar.store import Store

LIMIT = 10_000  # alerts, runs, verdicts and audit entries read for one incident
SECTIONS = 50  # runs given a full section (the rest are in the timeline and listed as left out)


class Loaded(TypedDict):
    incident: Incident
    alerts: list[dict[str, Any]]
    runs: list[dict[str, Any]]
    approvals: list[Approval]
    verdicts: list[dict[str, Any]]
    audit: list[dict[str, Any]]


def load(store: Store, incident_id: str) -> Loaded:
    """The live incident an id names and everything its timeline shows (NotFound for an unknown id)."""
    rec = store.get(KIND, live_id(store, incident_id))
    if rec is None:
        raise NotFound(f"unknown incident id {incident_id!r}")
    inc = Incident.from_doc(rec.doc, rec.id)
    ids = [inc.id, *inc.absorbed]
    members = [m.id for m in store.find(MEMBERS, {"incident_id": ids}, order_by="at", limit=LIMIT)]
    alerts, runs, verdicts, approvals = [], [], [], []
    for i in range(0, len(members), 500):
        chunk = members[i : i + 500]
        alerts += [{**r.doc, "id": r.id} for r in store.find(ALERTS, {"id": chunk}, limit=LIMIT)]
        runs += [
            {**r.doc, "id": r.id} for r in store.find(RUNS, {"alert_id": chunk}, order_by="created_at", limit=LIMIT)
        ]
        verdicts += [r.doc for r in store.find(VERDICTS, {"alert_id": chunk}, limit=LIMIT)]
    run_ids = [str(r["id"]) for r in runs]
    for i in range(0, len(run_ids), 500):
        approvals += _approvals(store.find(APPROVALS, {"run_id": run_ids[i : i + 500]}, limit=LIMIT))
    audit = [r.doc for r in store.find(AUDIT, {"target": ids}, order_by="key", limit=LIMIT)]
    return {
        "incident": inc,
        "alerts": alerts,
        "runs": runs,
        "approvals": approvals,
        "verdicts": verdicts,
        "audit": audit,
    }


ALERT_FIELDS = ("id", "@timestamp", "first_event_time", "severity", "rule", "host", "user", "status")


def alert_rows(alerts: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The incident's alerts as its report and the API list them: a summary each, oldest activity first."""
    rows = [{k: a.get(k) for k in ALERT_FIELDS} for a in alerts]
    return sorted(rows, key=lambda a: (str(a.get("first_event_time") or a.get("@timestamp")), str(a["id"])))


def _event(at: str | None, kind: str, title: str, detail: str = "", actor: str = "", ref: str = "") -> dict[str, Any]:
    return {"at": at, "kind": kind, "title": title, "detail": detail, "actor": actor, "ref": ref}


def _name(doc: Mapping[str, Any], entity: str) -> str:
    value = doc.get(entity)
    return str(value.get("name") or "") if isinstance(value, Mapping) else ""


def timeline(
    incident: Incident,
    alerts: Iterable[Mapping[str, Any]],
    runs: Iterable[Mapping[str, Any]],
    approvals: Iterable[Approval],
    verdicts: Iterable[Mapping[str, Any]],
    audit: Iterable[Mapping[str, Any]],
) -> list[dict[str, Any]]:
    """Every event of the incident, oldest first (stable: events at one time keep the order they are listed in)."""
    events: list[dict[str, Any]] = []
    for a in alerts:
        rule: Mapping[str, Any] = a["rule"] if isinstance(a.get("rule"), Mapping) else {}
        where = " / ".join(x for x in (_name(a, "host"), _name(a, "user")) if x)
        at = a.get("first_event_time") or a.get("@timestamp")
        events.append(_event(at, "alert", str(rule.get("title") or "alert"), f"{a.get('severity', '')} {where}".strip(),
                             str(a.get("origin") or "soar"), str(a.get("id"))))  # fmt: skip
    for doc in runs:
        run = Run.from_doc(doc)
        from soar.playbooks.outcomes import shown_status

        name = run.playbook.name
        who = run.requested_by or run.origin
        events.append(
            _event(run.created_at, "run", f"playbook {name} started", f"alert {run.alert_id[:16]}", who, run.id)
        )
        if run.finished_at:
            status = shown_status(run.status, run_planned(run))
            events.append(_event(run.finished_at, "run", f"playbook {name} {status}", run.error or "", "soar", run.id))
    for ap in approvals:
        events.append(_event(ap.requested_at, "approval", f"approval requested: {ap.step}", "; ".join(ap.reasons),
                             "soar", ap.run_id))  # fmt: skip
        for vote, what in [*((v, "approved") for v in ap.approvers), *((v, "denied") for v in ap.denials)]:
            events.append(_event(vote.at, "approval", f"{ap.step} {what}", f"{vote.role} via {vote.via}".strip(),
                                 vote.who, ap.run_id))  # fmt: skip
    for v in verdicts:
        for entry in v.get("history") or [v]:
            who, ref = str(entry.get("analyst") or ""), str(v.get("alert_id") or v.get("id") or "")
            events.append(
                _event(entry.get("at"), "verdict", str(entry.get("verdict")), str(entry.get("note") or ""), who, ref)
            )
    for n in incident.notes:
        events.append(_event(n.at, "note", "note", n.text, n.by, n.id))
    for e in audit:
        action = str(e.get("action") or "")
        if action.startswith("incident.") and action != "incident.noted":  # a note is shown as itself
            details: Mapping[str, Any] = e["details"] if isinstance(e.get("details"), Mapping) else {}
            detail = str(details.get("note") or details.get("owner") or details.get("reason") or "")
            events.append(_event(e.get("at"), "incident", action.removeprefix("incident."), detail,
                                 str(e.get("actor") or ""), str(e.get("target") or "")))  # fmt: skip
    return sorted(events, key=lambda ev: (ev["at"] is None, str(ev["at"] or "")))


def build_report(
    store: Store, settings: Settings, incident_id: str, *, impact_of: ImpactOf = default_impact_of
) -> dict[str, Any]:
    """The incident's report as a JSON-able dict; each run's report (``soar.review.report``) is a section."""
    from soar.review.report import build_report as run_report
    from soar.review.report import seal

    data = load(store, incident_id)
    inc = data["incident"]
    runs = data["runs"]
    sections = [run_report(store, settings, str(r["id"]), impact_of=impact_of) for r in runs[:SECTIONS]]
    report = {
        "kind": "soar-incident-report",
        "generated_at": utcnow_iso(),
        "soar_version": __version__,
        "incident": {k: v for k, v in inc.to_doc().items() if k != "scope_sources"},
        "alerts": alert_rows(data["alerts"]),
        "timeline": timeline(inc, data["alerts"], runs, data["approvals"], data["verdicts"], data["audit"]),
        "runs": sections,
        "runs_left_out": max(0, len(runs) - SECTIONS),
    }
    return seal(report, settings)


def report_html(report: dict[str, Any]) -> str:
    from soar.review.render import render

    return render("incident_report.html.j2", i=report, soar_version=__version__)
