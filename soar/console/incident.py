"""Incidents: the list, one incident (timeline, status, owner, notes) and its report — through the API's functions."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from soar.access import authorize_in, load_principals
from soar.api._common import ID_PATTERN, http_errors, impacts, scopes_of, settings_of, store_of
from soar.console.web import FORM, HEADERS, ME, PREFIX, Form, Me, back, page
from soar.incidents import KIND, live_id
from soar.records.incident import MAX_NOTE, public
from soar.review.render import REPORT_CSP

router = APIRouter()


def load_incident(request: Request, who: Me, incident_id: str, permission: str = "alerts:read") -> dict[str, Any]:
    """The live incident, or 404 when unknown or outside the principal's scope (the API's answer)."""
    unknown = f"unknown incident id {incident_id!r}"
    if not re.match(ID_PATTERN, incident_id):
        raise HTTPException(404, unknown)
    store = store_of(request)
    rec = store.get(KIND, live_id(store, incident_id))
    if rec is None or not authorize_in(who.principal, permission, scopes_of(request).of_incident(rec.doc)).allowed:
        raise HTTPException(404, unknown)
    return {**rec.doc, "id": rec.id}


@router.get("/incidents", response_class=HTMLResponse)
def incidents(request: Request, who: Me = ME, status: str = "") -> HTMLResponse:
    where: dict[str, Any] = {"merged_into": None}
    if status in ("open", "acknowledged", "closed"):
        where["status"] = status
    with http_errors():
        records = store_of(request).find(KIND, where, order_by="last_at", descending=True, limit=200)
        scopes = scopes_of(request)
    rows = [
        public({**r.doc, "id": r.id})
        for r in records
        if authorize_in(who.principal, "alerts:read", scopes.of_incident(r.doc)).allowed
    ]
    return page("incidents.html.j2", who, incidents=rows, status=status)


@router.get("/incidents/{incident_id}", response_class=HTMLResponse)
def incident(request: Request, incident_id: str, who: Me = ME) -> HTMLResponse:
    from soar.incidents.report import alert_rows, load, timeline

    with http_errors():
        doc = load_incident(request, who, incident_id)
        data = load(store_of(request), str(doc["id"]))
    inc = data["incident"]
    events = timeline(inc, data["alerts"], data["runs"], data["approvals"], data["verdicts"], data["audit"])
    principals = sorted(p.name for p in load_principals(settings_of(request)).items)
    return page(
        "incident.html.j2", who, incident=public(inc.to_doc()), alerts=alert_rows(data["alerts"]), runs=data["runs"],
        timeline=events, principals=principals, max_note=MAX_NOTE,
    )  # fmt: skip


@router.post("/incidents/{incident_id}", response_model=None)
def change(request: Request, incident_id: str, posted: Form = FORM) -> RedirectResponse:
    """status (acknowledged | closed | open), owner (a principal; empty takes it back) or note — one per form."""
    from soar.incidents.changes import add_note, assign, set_status

    posted.me.need("alerts:triage")
    who = posted.me
    with http_errors():
        doc = load_incident(request, who, incident_id, "alerts:triage")
        store, settings, live = store_of(request), settings_of(request), str(doc["id"])
        actor: dict[str, Any] = {"actor": who.principal.name, "role": who.principal.role}
        what = posted.one("change")
        if what == "status":
            status = posted.one("status")
            if status not in ("acknowledged", "closed", "open"):
                raise HTTPException(400, f"status: acknowledged, closed or open, got {status!r}")
            set_status(store, settings, live, status, note=posted.one("note")[:2000], **actor)  # type: ignore[arg-type]
        elif what == "owner":
            owner = posted.one("owner") or None
            if owner is not None and owner not in {p.name for p in load_principals(settings).items}:
                raise HTTPException(400, f"owner: {owner!r} is not a principal")
            assign(store, settings, live, owner, note=posted.one("note")[:2000], **actor)
        elif what == "note":
            text = posted.one("text")
            if not text or len(text) > MAX_NOTE:
                raise HTTPException(400, f"text: a note of 1 to {MAX_NOTE} characters")
            add_note(store, settings, live, text, **actor)
        else:
            raise HTTPException(400, f"change: status, owner or note, got {what!r}")
    return back(f"{PREFIX}/incidents/{live}")


@router.get("/incidents/{incident_id}/report", response_class=HTMLResponse)
def report(request: Request, incident_id: str, who: Me = ME) -> HTMLResponse:
    """The incident's printable report (the API's page, with its own strict CSP)."""
    from soar.incidents.report import build_report, report_html

    if not who.can("reports:read"):
        raise HTTPException(403, f"{who.principal.name} ({who.principal.role}) lacks reports:read")
    with http_errors():
        doc = load_incident(request, who, incident_id, "reports:read")
        built = build_report(store_of(request), settings_of(request), str(doc["id"]), impact_of=impacts(request))
    return HTMLResponse(report_html(built), headers={**HEADERS, **REPORT_CSP})
