"""Incidents: list and read (scoped by every alert in them), triage, assign, note, and the incident's report.

Same roles as alerts (``alerts:read``, ``alerts:triage``; the report ``reports:read``). An incident is in a
principal's scope only if every alert in it is (``Scopes.of_incident``); outside it answers 404 exactly like
an unknown id. An id of an incident merged into another names the one it was merged into.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field

from soar.access import Principal, authorize_in, require_in_scope
from soar.api._common import AUTH, ERRORS, NOT_FOUND, http_errors, id_path, impacts, scopes_of, settings_of, store_of
from soar.incidents import KIND, live_id
from soar.records.incident import MAX_NOTE, public

router = APIRouter(tags=["incidents"], responses=ERRORS)


@router.get("/incidents", summary="List incidents, the most recently active first")
def list_incidents(
    request: Request,
    status: Literal["open", "acknowledged", "closed"] | None = None,
    owner: str | None = Query(None, max_length=200),
    limit: int = Query(100, ge=1, le=1000),
    principal: Principal = AUTH["alerts:read"],
) -> list[dict[str, Any]]:
    where: dict[str, Any] = {"merged_into": None}
    if status:
        where["status"] = status
    if owner:
        where["owner"] = owner
    with http_errors():
        records = store_of(request).find(KIND, where, order_by="last_at", descending=True, limit=limit)
        scopes = scopes_of(request)
    return [public(r.doc) for r in records if authorize_in(principal, "alerts:read", scopes.of_incident(r.doc)).allowed]


def _incident(request: Request, incident_id: str, principal: Principal, permission: str) -> dict[str, Any]:
    """The live incident, or 404 when there is none or it is outside the principal's scope (the same answer)."""
    store = store_of(request)
    rec = store.get(KIND, live_id(store, incident_id))
    unknown = f"unknown incident id {incident_id!r}"
    if rec is None:
        raise HTTPException(404, unknown)
    require_in_scope(principal, permission, scopes_of(request).of_incident(rec.doc), unknown)
    return dict(rec.doc)


@router.get("/incidents/{incident_id}", summary="One incident with its alerts", responses=NOT_FOUND)
def get_incident(
    request: Request, incident_id: str = id_path("incident"), principal: Principal = AUTH["alerts:read"]
) -> dict[str, Any]:
    from soar.incidents.report import alert_rows, load, timeline

    with http_errors():
        doc = _incident(request, incident_id, principal, "alerts:read")
        data = load(store_of(request), str(doc["id"]))
        inc = data["incident"]
        return {
            **public(inc.to_doc()),
            "alerts": alert_rows(data["alerts"]),
            "runs": [{"id": r["id"], "alert_id": r.get("alert_id"), "status": r.get("status")} for r in data["runs"]],
            "timeline": timeline(inc, data["alerts"], data["runs"], data["approvals"], data["verdicts"], data["audit"]),
        }


class StatusChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Literal["acknowledged", "closed", "open"]  # open: reopen a closed incident
    note: str = Field("", max_length=2000)


class Assignment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    owner: str | None = Field(..., max_length=200, description="A principal's name; null takes it back")
    note: str = Field("", max_length=2000)


class NoteInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(..., min_length=1, max_length=MAX_NOTE)


@router.post(
    "/incidents/{incident_id}/status", summary="Acknowledge, close or reopen (idempotent)", responses=NOT_FOUND
)
def post_status(
    request: Request,
    body: StatusChange,
    incident_id: str = id_path("incident"),
    principal: Principal = AUTH["alerts:triage"],
) -> dict[str, Any]:
    from soar.incidents.changes import set_status

    with http_errors():
        doc = _incident(request, incident_id, principal, "alerts:triage")
        changed, _ = set_status(
            store_of(request), settings_of(request), str(doc["id"]), body.status, actor=principal.name,
            role=principal.role, note=body.note,
        )  # fmt: skip
        return public(changed)


@router.post(
    "/incidents/{incident_id}/assign", summary="Give an incident to a principal (idempotent)", responses=NOT_FOUND
)
def post_assign(
    request: Request,
    body: Assignment,
    incident_id: str = id_path("incident"),
    principal: Principal = AUTH["alerts:triage"],
) -> dict[str, Any]:
    from soar.access import load_principals
    from soar.incidents.changes import assign

    with http_errors():
        doc = _incident(request, incident_id, principal, "alerts:triage")
        settings = settings_of(request)
        if body.owner is not None and body.owner not in {p.name for p in load_principals(settings).items}:
            raise HTTPException(422, f"owner: {body.owner!r} is not a principal")
        changed, _ = assign(
            store_of(request), settings, str(doc["id"]), body.owner, actor=principal.name, role=principal.role,
            note=body.note,
        )  # fmt: skip
        return public(changed)


@router.post(
    "/incidents/{incident_id}/notes", summary="Add a note to an incident", responses=NOT_FOUND, status_code=201
)
def post_note(
    request: Request,
    body: NoteInput,
    incident_id: str = id_path("incident"),
    principal: Principal = AUTH["alerts:triage"],
) -> dict[str, Any]:
    from soar.incidents.changes import add_note

    with http_errors():
        doc = _incident(request, incident_id, principal, "alerts:triage")
        changed, _ = add_note(
            store_of(request), settings_of(request), str(doc["id"]), body.text, actor=principal.name,
            role=principal.role,
        )  # fmt: skip
        return public(changed)


@router.get("/incidents/{incident_id}/report", summary="The incident's report (JSON)", responses=NOT_FOUND)
def get_report(
    request: Request, incident_id: str = id_path("incident"), principal: Principal = AUTH["reports:read"]
) -> dict[str, Any]:
    from soar.incidents.report import build_report

    with http_errors():
        doc = _incident(request, incident_id, principal, "reports:read")
        return build_report(store_of(request), settings_of(request), str(doc["id"]), impact_of=impacts(request))


@router.get(
    "/incidents/{incident_id}/report.html",
    summary="The incident's report as a self-contained printable page",
    responses=NOT_FOUND,
    response_class=HTMLResponse,
)
def get_report_html(
    request: Request, incident_id: str = id_path("incident"), principal: Principal = AUTH["reports:read"]
) -> HTMLResponse:
    from soar.incidents.report import build_report, report_html
    from soar.review.render import REPORT_CSP

    with http_errors():
        doc = _incident(request, incident_id, principal, "reports:read")
        report = build_report(store_of(request), settings_of(request), str(doc["id"]), impact_of=impacts(request))
    return HTMLResponse(report_html(report), headers=REPORT_CSP)
