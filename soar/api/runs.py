"""Runs: list and read, their post-incident report (JSON and the printable page), and approvals."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict

from soar.access import Principal, authorize_in, require_in_scope
from soar.api._common import AUTH, ERRORS, NOT_FOUND, http_errors, id_path, impacts, scopes_of, settings_of, store_of
from soar.records import Approval
from soar.review.data import APPROVALS, RUNS, UnknownRun

router = APIRouter(tags=["runs"], responses=ERRORS)

HIDDEN = ("playbook.text",)  # large and already in the repository


def _public(doc: dict[str, Any]) -> dict[str, Any]:
    """The run as a client reads it; ``shown_status``: "planned (dry run)" where a dry run's status says succeeded."""
    from soar.playbooks.outcomes import shown_status, shown_step
    from soar.records import Run, run_planned

    run = Run.from_doc(doc)
    out = dict(doc)
    out["shown_status"] = shown_status(run.status, run_planned(run))
    out["playbook"] = {k: v for k, v in out["playbook"].items() if k != "text"}
    plan = run.rollback.to_doc()  # the rollback plan carries executed parameters
    out["rollback"] = {**plan, "steps": [{k: v for k, v in e.items() if k != "params"} for e in plan["steps"]]}
    out["steps"] = {sid: {**step, "shown_status": shown_step(run.steps[sid])} for sid, step in doc["steps"].items()}
    for step in out["steps"].values():
        if "instances" in step:  # unredacted parameters stay inside the engine
            step["instances"] = [{k: v for k, v in i.items() if k != "_params"} for i in step["instances"]]
    return out


def _run(request: Request, run_id: str, principal: Principal, permission: str) -> dict[str, Any]:
    """The run, or 404 when it does not exist or its alert's hosts are outside the principal's scope."""
    unknown = f"unknown run id {run_id!r}"
    with http_errors():
        rec = store_of(request).get(RUNS, run_id)
        if rec is None:
            raise HTTPException(404, unknown)
        require_in_scope(principal, permission, scopes_of(request).of_run(rec.doc), unknown)
    return rec.doc


@router.get("/runs", summary="List playbook runs, newest first")
def list_runs(
    request: Request,
    alert_id: str | None = Query(None, max_length=200),
    status: str | None = Query(None, max_length=40, pattern=r"^[a-z_]+$"),
    limit: int = Query(100, ge=1, le=1000),
    principal: Principal = AUTH["runs:read"],
) -> list[dict[str, Any]]:
    where: dict[str, Any] = {}
    if alert_id:
        where["alert_id"] = alert_id
    if status:
        where["status"] = status
    with http_errors():
        records = store_of(request).find(RUNS, where, order_by="created_at", descending=True, limit=limit)
        scopes = scopes_of(request)
        return [
            _public({"id": r.id, **r.doc})
            for r in records
            if authorize_in(principal, "runs:read", scopes.of_run(r.doc)).allowed
        ]


@router.get("/runs/{run_id}", summary="One run with its steps", responses=NOT_FOUND)
def get_run(request: Request, run_id: str = id_path("run"), principal: Principal = AUTH["runs:read"]) -> dict[str, Any]:
    doc = _run(request, run_id, principal, "runs:read")
    with http_errors():
        from soar.review.data import watched

        return {**_public(doc), "containment_watch": watched(store_of(request), run_id)}


@router.get(
    "/runs/{run_id}/report",
    summary="The run's post-incident report (timeline, durations, evidence)",
    responses=NOT_FOUND,
)
def get_report(
    request: Request, run_id: str = id_path("run"), principal: Principal = AUTH["reports:read"]
) -> dict[str, Any]:
    from soar.review.report import build_report

    _run(request, run_id, principal, "reports:read")
    with http_errors(UnknownRun):
        return build_report(store_of(request), settings_of(request), run_id, impact_of=impacts(request))


@router.get(
    "/runs/{run_id}/report.html",
    summary="The report as a self-contained printable page",
    response_class=HTMLResponse,
    responses=NOT_FOUND,
)
def get_report_html(
    request: Request, run_id: str = id_path("run"), principal: Principal = AUTH["reports:read"]
) -> HTMLResponse:
    from soar.review.render import REPORT_CSP
    from soar.review.report import build_report, report_html

    _run(request, run_id, principal, "reports:read")
    with http_errors(UnknownRun):
        report = build_report(store_of(request), settings_of(request), run_id, impact_of=impacts(request))
    return HTMLResponse(report_html(report), headers=REPORT_CSP)


class Decision(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: Literal["approve", "deny"]


@router.get("/runs/{run_id}/approvals", summary="The run's approval requests", responses=NOT_FOUND)
def list_approvals(
    request: Request, run_id: str = id_path("run"), principal: Principal = AUTH["runs:read"]
) -> list[dict[str, Any]]:
    _run(request, run_id, principal, "runs:read")
    with http_errors():
        records = store_of(request).find(APPROVALS, {"run_id": run_id}, order_by="requested_at")
        return [Approval.from_doc(r.doc, r.id).to_doc() for r in records]


@router.post(
    "/runs/{run_id}/approvals/{step_id}",
    summary="Approve or deny a step waiting for approval (idempotent)",
    responses={**NOT_FOUND, 409: {"description": "Already decided or not pending"}},
)
def decide_step(
    request: Request,
    body: Decision,
    run_id: str = id_path("run"),
    step_id: str = id_path("step"),
    principal: Principal = AUTH["approvals:decide"],
) -> dict[str, Any]:
    from soar.playbooks.approvals import decide_as

    _run(request, run_id, principal, "runs:read")
    with http_errors():
        outcome = decide_as(
            settings_of(request),
            store_of(request),
            run_id,
            step_id,
            principal=principal,
            decision=body.decision,
            via="api",
        )
    return outcome.to_dict()
