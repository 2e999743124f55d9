"""Runs: the list, one run (timeline, each step's exact commands and verification), approve/deny, roll back,
and the approvals waiting for me — through ``decide_as`` and ``request_rollback``, the paths the API and the
command line use, so scope, roles and separation of duties hold here as there."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from soar.access import RANK, authorize_in
from soar.api._common import ID_PATTERN, http_errors, impacts, scopes_of, settings_of, store_of
from soar.audit import record
from soar.console.web import FORM, HEADERS, ME, PREFIX, Form, Me, back, page
from soar.records import Approval, Run
from soar.review.data import APPROVALS, RUNS
from soar.review.render import REPORT_CSP

router = APIRouter()

MAX_REASON = 2000


def load_run(request: Request, who: Me, run_id: str, permission: str = "runs:read") -> dict[str, Any]:
    """The run document, or 404 when unknown or outside the principal's scope (the API's answer)."""
    unknown = f"unknown run id {run_id!r}"
    if not re.match(ID_PATTERN, run_id):
        raise HTTPException(404, unknown)
    rec = store_of(request).get(RUNS, run_id)
    if rec is None or not authorize_in(who.principal, permission, scopes_of(request).of_run(rec.doc)).allowed:
        raise HTTPException(404, unknown)
    return {**rec.doc, "id": rec.id}


@router.get("/runs", response_class=HTMLResponse)
def runs(request: Request, who: Me = ME) -> HTMLResponse:
    from soar.api.runs import _public

    with http_errors():
        records = store_of(request).find(RUNS, {}, order_by="created_at", descending=True, limit=200)
        scopes = scopes_of(request)
        rows = [
            _public({**r.doc, "id": r.id})
            for r in records
            if authorize_in(who.principal, "runs:read", scopes.of_run(r.doc)).allowed
        ]
    return page("runs.html.j2", who, runs=rows)


def _waiting(request: Request, who: Me, run: Run, approval: Approval) -> bool:
    """Whether this principal could decide this pending approval (what ``decide_as`` would allow)."""
    from soar.policy import load_policy

    if not who.can("approvals:decide") or not any(r in who.principal.roles for r in approval.roles):
        return False
    if who.principal.name in {v.approver for v in approval.approvers}:
        return False
    where = scopes_of(request).of_approval(run, approval)
    if not authorize_in(who.principal, "approvals:decide", where).allowed:
        return False
    sod = load_policy(settings_of(request).policy_path).separation_of_duties.runs
    return not (sod and run.requested_by == who.principal.name)


@router.get("/runs/{run_id}", response_class=HTMLResponse)
def run_page(request: Request, run_id: str, who: Me = ME) -> HTMLResponse:
    from soar.api.runs import _public
    from soar.review.report import build_report

    with http_errors():
        doc = load_run(request, who, run_id)
        store = store_of(request)
        report = build_report(store, settings_of(request), run_id, impact_of=impacts(request))
        run = Run.from_doc({k: v for k, v in doc.items() if k != "id"}, run_id)
        approvals = [Approval.from_doc(r.doc, r.id) for r in store.find(APPROVALS, {"run_id": run_id}, limit=200)]
        pending = [a for a in approvals if a.status == "pending" and _waiting(request, who, run, a)]
    shown = _public(doc)
    can_rollback = (
        who.can("runs:rollback")
        and shown.get("status") in ("succeeded", "failed")
        and shown.get("phase") != "rollback"
        and authorize_in(who.principal, "runs:rollback", scopes_of(request).of_run(run)).allowed
    )
    return page(
        "run.html.j2", who, run=shown, events=report["events"], approvals=approvals, pending=pending,
        can_rollback=can_rollback, max_reason=MAX_REASON, done=request.query_params.get("done"),
    )  # fmt: skip


@router.post("/runs/{run_id}/decide", response_model=None)
def decide(request: Request, run_id: str, posted: Form = FORM) -> RedirectResponse:
    """Approve or deny a waiting step as the signed-in principal, with the reason (kept in the audit log)."""
    from soar.playbooks.approvals import decide_as

    posted.me.need("approvals:decide")
    decision, step, reason = posted.one("decision"), posted.one("step"), posted.one("reason")
    if decision not in ("approve", "deny"):
        raise HTTPException(400, f"decision: approve or deny, got {decision!r}")
    if not re.match(ID_PATTERN, step):
        raise HTTPException(400, "step: a step id")
    if len(reason) > MAX_REASON:
        raise HTTPException(400, f"reason: at most {MAX_REASON} characters")
    if decision == "deny" and not reason:
        raise HTTPException(400, "reason: say why the step is denied")
    who = posted.me.principal
    with http_errors():
        load_run(request, posted.me, run_id)
        store, settings = store_of(request), settings_of(request)
        outcome = decide_as(settings, store, run_id, step, principal=who, decision=decision, via="api")  # type: ignore[arg-type]
        if reason and outcome.changed:  # the decision's reason, right after the decision it explains
            record(
                store, actor=who.name, action="approval.reason", target=run_id,
                details={"step": step, "decision": decision, "reason": reason, "role": who.role, "via": "console"},
                settings=settings,
            )  # fmt: skip
    return back(f"{PREFIX}/runs/{run_id}", done=outcome.message)


@router.post("/runs/{run_id}/rollback", response_model=None)
def rollback(request: Request, run_id: str, posted: Form = FORM) -> RedirectResponse:
    """Undo a finished run as the signed-in principal (``request_rollback``, then the run is kicked)."""
    from soar.playbooks import dispatch
    from soar.playbooks.rollback import request_rollback

    posted.me.need("runs:rollback")
    reason = posted.one("reason")
    if not reason or len(reason) > MAX_REASON:
        raise HTTPException(400, f"reason: say why (1 to {MAX_REASON} characters)")
    with http_errors():
        load_run(request, posted.me, run_id, "runs:rollback")
        settings = settings_of(request)
        rt = dispatch.runtime_for(settings)
        reopened = request_rollback(rt, run_id, actor=posted.me.principal.name, reason=reason)
        dispatch.kick(settings, run_id, runtime=rt)
    steps = ", ".join(e.id for e in reopened.rollback.steps) or "nothing to revert"
    return back(f"{PREFIX}/runs/{run_id}", done=f"rolling back: {steps}")


@router.get("/runs/{run_id}/report", response_class=HTMLResponse)
def report(request: Request, run_id: str, who: Me = ME) -> HTMLResponse:
    from soar.review.report import build_report, report_html

    if not who.can("reports:read"):
        raise HTTPException(403, f"{who.principal.name} ({who.principal.role}) lacks reports:read")
    with http_errors():
        load_run(request, who, run_id, "reports:read")
        built = build_report(store_of(request), settings_of(request), run_id, impact_of=impacts(request))
    return HTMLResponse(report_html(built), headers={**HEADERS, **REPORT_CSP})


@router.get("/approvals", response_class=HTMLResponse)
def approvals(request: Request, who: Me = ME) -> HTMLResponse:
    """Pending approvals this principal may decide now (role, scope of the hosts, separation of duties)."""
    waiting: list[tuple[Approval, dict[str, Any]]] = []
    with http_errors():
        store = store_of(request)
        for rec in store.find(APPROVALS, {"status": "pending"}, order_by="requested_at", limit=500):
            approval = Approval.from_doc(rec.doc, rec.id)
            run_rec = store.get(RUNS, approval.run_id)
            if run_rec is None:
                continue
            run = Run.from_doc(run_rec.doc, run_rec.id)
            if authorize_in(who.principal, "runs:read", scopes_of(request).of_run(run)).allowed and _waiting(
                request, who, run, approval
            ):
                waiting.append((approval, {**run_rec.doc, "id": run_rec.id}))
    top = max((RANK[r] for r in who.principal.roles), default=0)
    return page("approvals.html.j2", who, waiting=waiting, may_decide=top >= RANK["approver"], max_reason=MAX_REASON)
