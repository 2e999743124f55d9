"""Alerts: list and read (scoped by the inventory labels of the alert's host), and record an analyst's verdict.

An alert outside the principal's scope answers 404 exactly like an unknown id.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from soar.access import Principal, authorize_in, require_in_scope
from soar.api._common import AUTH, ERRORS, NOT_FOUND, http_errors, id_path, scopes_of, settings_of, store_of
from soar.review.feedback import ALERTS, VerdictInput, parse_verdict, record_verdict

router = APIRouter(tags=["alerts"], responses=ERRORS)


@router.get("/alerts", summary="List alerts, newest first")
def list_alerts(
    request: Request,
    status: Literal["open", "acknowledged", "closed"] | None = None,
    rule_id: str | None = Query(None, max_length=200),
    limit: int = Query(100, ge=1, le=1000),
    principal: Principal = AUTH["alerts:read"],
) -> list[dict[str, Any]]:
    where: dict[str, Any] = {}
    if status:
        where["status"] = status
    if rule_id:
        where["rule.id"] = rule_id
    with http_errors():
        records = store_of(request).find(ALERTS, where, order_by="@timestamp", descending=True, limit=limit)
        scopes = scopes_of(request)
    return [r.doc for r in records if authorize_in(principal, "alerts:read", scopes.of_alert(r.doc)).allowed]


def _alert(request: Request, alert_id: str, principal: Principal, permission: str) -> dict[str, Any]:
    """The alert, or 404 when it does not exist or is outside the principal's scope (the same answer)."""
    rec = store_of(request).get(ALERTS, alert_id)
    unknown = f"unknown alert id {alert_id!r}"
    if rec is None:
        raise HTTPException(404, unknown)
    require_in_scope(principal, permission, scopes_of(request).of_alert(rec.doc), unknown)
    return dict(rec.doc)


@router.get("/alerts/{alert_id}", summary="One alert", responses=NOT_FOUND)
def get_alert(
    request: Request, alert_id: str = id_path("alert"), principal: Principal = AUTH["alerts:read"]
) -> dict[str, Any]:
    with http_errors():
        return _alert(request, alert_id, principal, "alerts:read")


@router.post("/alerts/{alert_id}/verdict", summary="Mark an alert a true or false positive", responses=NOT_FOUND)
def post_verdict(
    request: Request,
    body: VerdictInput,
    alert_id: str = id_path("alert"),
    principal: Principal = AUTH["verdicts:write"],
) -> dict[str, Any]:
    with http_errors():
        _alert(request, alert_id, principal, "verdicts:write")
        verdict = parse_verdict(body.model_dump())
        return record_verdict(
            store_of(request),
            settings_of(request),
            alert_id,
            verdict,
            analyst=principal.name,
            role=principal.role,
            via="api",
        )


class StatusChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Literal["acknowledged", "closed", "open"]  # open: reopen a closed alert
    note: str = Field("", max_length=2000)


class Assignment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    assignee: str | None = Field(..., max_length=200, description="A principal's name; null takes it back")
    note: str = Field("", max_length=2000)


@router.post("/alerts/{alert_id}/status", summary="Acknowledge or close an alert (idempotent)", responses=NOT_FOUND)
def post_status(
    request: Request,
    body: StatusChange,
    alert_id: str = id_path("alert"),
    principal: Principal = AUTH["alerts:triage"],
) -> dict[str, Any]:
    from soar.review.triage import reopen_alert, set_alert_status

    with http_errors():
        _alert(request, alert_id, principal, "alerts:triage")
        if body.status == "open":
            doc, _changed = reopen_alert(
                store_of(request), settings_of(request), alert_id, actor=principal.name, role=principal.role,
                note=body.note,
            )  # fmt: skip
            return doc
        return set_alert_status(
            store_of(request),
            settings_of(request),
            alert_id,
            body.status,
            actor=principal.name,
            role=principal.role,
            note=body.note,
        )


@router.post("/alerts/{alert_id}/assign", summary="Give an alert to a principal (idempotent)", responses=NOT_FOUND)
def post_assign(
    request: Request,
    body: Assignment,
    alert_id: str = id_path("alert"),
    principal: Principal = AUTH["alerts:triage"],
) -> dict[str, Any]:
    from soar.access import load_principals
    from soar.review.triage import assign_alert

    with http_errors():
        _alert(request, alert_id, principal, "alerts:triage")
        settings = settings_of(request)
        if body.assignee is not None and body.assignee not in {p.name for p in load_principals(settings).items}:
            raise HTTPException(422, f"assignee: {body.assignee!r} is not a principal")
        doc, _changed = assign_alert(
            store_of(request), settings, alert_id, body.assignee, actor=principal.name, role=principal.role,
            note=body.note,
        )  # fmt: skip
        return doc
