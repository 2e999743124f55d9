"""Approvals: a paused step waits for N distinct approvers with an allowed role, until it expires.

``decide_as`` is the one entry point for the CLI, the API and Slack: it takes an
authenticated principal and checks, before anything is written, that the run is in its
scope (an out-of-scope run is "no run", like an unknown one), that it may decide in the
scope of every inventory host the step concerns (``soar.scope``: labels from the inventory,
never from alert data), and separation of duties (whoever asked for the run may not approve
it). ``decide`` then checks the roles the policy asked for, is idempotent (a second click by
the same person changes nothing), records who decided with which role and through which
channel — the audit entry's actor is the person — and resumes the run once the step is
approved, denied or expired.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

from soar.clock import SYSTEM, Clock, iso
from soar.config import Settings
from soar.dispatch import Task, dispatcher_for
from soar.errors import Forbidden, InputError, NotFound
from soar.playbooks import events
from soar.playbooks.records import APPROVALS, RUNS, audit
from soar.records import Approval, Run, Vote
from soar.records.approval import ApprovalStatus as Status
from soar.store import Store

if TYPE_CHECKING:
    from soar.access import Principal


class NotAllowed(Forbidden):
    """The approver's role, scope, or part in the run may not decide this step."""


@dataclass(frozen=True)
class ApprovalOutcome:
    run_id: str
    step: str
    status: Status
    changed: bool
    message: str
    required: int = 1
    approvers: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "step": self.step,
            "status": self.status,
            "changed": self.changed,
            "message": self.message,
            "required": self.required,
            "approvers": self.approvers,
        }


def pending_for(store: Store, run_id: str, step_id: str | None = None) -> list[Approval]:
    """Approval requests of a run (every one, or those of a step id or instance key)."""
    found = [Approval.from_doc(r.doc, r.id) for r in store.find(APPROVALS, {"run_id": run_id}, order_by="requested_at")]
    return found if step_id is None else [a for a in found if a.names(step_id)]


def _publish(settings: Settings, store: Store, run_id: str, approval: Approval) -> None:
    run = store.get(RUNS, run_id)
    if run is None:
        return
    notice = {
        "step": approval.step,
        "required": approval.required,
        "approvers": [v.approver for v in approval.approvers],
        "denials": [v.approver for v in approval.denials],
        "slack_users": {v.approver: v.slack_user for v in approval.votes if v.slack_user},
        "status": approval.status,
        "expires_at": approval.expires_at_iso,
    }
    events.publish(
        settings, run_id, events.run_event("approval_decided", Run.from_doc(run.doc, run_id), approval=notice)
    )


def expire(settings: Settings, store: Store, approval_id: str, *, clock: Clock = SYSTEM) -> Approval | None:
    """Mark a pending approval past its deadline (by ``clock``) as expired (once); the updated request."""
    expired = False

    def change(doc: dict[str, Any]) -> dict[str, Any] | None:
        nonlocal expired
        approval = Approval.from_doc(doc, approval_id)
        expired = approval.expired_by(clock.now())
        return replace(approval, status="expired", decided_at=iso(clock)).to_doc() if expired else None

    rec = store.mutate(APPROVALS, approval_id, change)
    if rec is None:
        return None
    approval = Approval.from_doc(rec.doc, approval_id)
    if expired:
        facts = run_facts(store, approval.run_id)
        audit(store, settings, "approval.expired", approval.run_id, {"step": approval.step, **facts})
        _publish(settings, store, approval.run_id, approval)
    return approval


def run_facts(store: Store, run_id: str) -> dict[str, Any]:
    """What a decision's audit entry says about its run: a dry run's decisions plan, and where in its sequence."""
    rec = store.get(RUNS, run_id)
    run = Run.from_doc(rec.doc, run_id) if rec is not None else None
    return {"dry_run": bool(run and run.dry_run), "run_seq": run.seq if run else None}


def _apply(approval: Approval, vote: Vote, decision: str, clock: Clock) -> tuple[Approval, bool, str]:
    if approval.status != "pending":
        return approval, False, f"already {approval.status}"
    if approval.expired_by(clock.now()):
        return replace(approval, status="expired", decided_at=iso(clock)), True, "the approval request has expired"
    if vote.approver in {v.approver for v in approval.votes}:
        return approval, False, f"{vote.approver} has already decided"
    if decision == "deny":
        denied = replace(approval, denials=[*approval.denials, vote], status="denied", decided_at=iso(clock))
        return denied, True, f"denied by {vote.who}"
    approval = replace(approval, approvers=[*approval.approvers, vote])
    counted = f"{len(approval.approvers)} of {approval.required}"
    if len(approval.approvers) >= approval.required:
        return replace(approval, status="approved", decided_at=iso(clock)), True, f"approved ({counted})"
    return approval, True, f"{counted} approvals; waiting for more"


def decide(
    settings: Settings,
    store: Store,
    run_id: str,
    step_id: str,
    *,
    approver: str,
    role: str,
    decision: Literal["approve", "deny"],
    via: Literal["cli", "api", "slack"],
    attributes: dict[str, Any] | None = None,
    resume: bool = True,
    slack_user: str | None = None,
    clock: Clock = SYSTEM,
) -> ApprovalOutcome:
    """Approve or deny the pending step ``step_id`` of run ``run_id``; resumes the run when decided.

    ``slack_user`` (the clicker's Slack id) is kept with the vote so the thread and the run record
    name the Slack user beside the principal it maps to.
    """
    if decision not in ("approve", "deny"):
        raise InputError(f"decision must be approve or deny, got {decision!r}")
    if not approver:
        raise InputError("an approver name is required")
    if store.get(RUNS, run_id) is None:
        raise InputError(f"no run {run_id!r}")
    target = _target(store, run_id, step_id)
    if role not in target.roles:
        audit(
            store,
            settings,
            "approval.refused",
            run_id,
            {
                "step": target.step,
                "approver": approver,
                "role": role,
                "allowed_roles": target.roles,
                **run_facts(store, run_id),
            },
            actor=approver,
        )
        raise NotAllowed(
            f"{approver} (role {role}) may not decide step {target.step}: needs one of {', '.join(target.roles)}"
        )
    vote = Vote(approver, role=role, via=via, at=iso(clock), attributes=attributes or {}, slack_user=slack_user)
    result: tuple[Approval, bool, str] = (target, False, "")

    def change(current: dict[str, Any]) -> dict[str, Any] | None:
        nonlocal result
        result = _apply(Approval.from_doc(current, target.id), vote, decision, clock)
        return result[0].to_doc() if result[1] else None

    if store.mutate(APPROVALS, target.id, change) is None:
        raise InputError(f"approval {target.id} disappeared")
    doc, changed, message = result
    approvers = [v.to_doc() for v in doc.approvers]
    if not changed:
        return ApprovalOutcome(run_id, doc.step, doc.status, False, message, doc.required, approvers)
    audit(
        store,
        settings,
        f"approval.{decision}",
        run_id,
        {
            "step": doc.step,
            "approver": approver,
            "role": role,
            "via": via,
            "status": doc.status,
            **({"slack_user": slack_user} if slack_user else {}),
            **run_facts(store, run_id),
        },
        actor=approver,
    )
    _publish(settings, store, run_id, doc)
    if resume and doc.status != "pending":  # the run goes on (in this process when eager, with this store)
        dispatcher_for(settings, store).send(Task.ADVANCE, [run_id], queue=settings.response_queue)
    return ApprovalOutcome(run_id, doc.step, doc.status, True, message, doc.required, approvers)


def _target(store: Store, run_id: str, step_id: str) -> Approval:
    """The request a decision on ``step_id`` is about: the pending one, else the latest (to say it is decided)."""
    found = pending_for(store, run_id, step_id)
    if not found:
        raise NotFound(f"run {run_id} has no approval request for step {step_id!r}")
    return next((a for a in found if a.status == "pending"), found[-1])


def decide_as(
    settings: Settings,
    store: Store,
    run_id: str,
    step_id: str,
    *,
    principal: Principal,
    decision: Literal["approve", "deny"],
    via: Literal["cli", "api", "slack"],
    slack_user: str | None = None,
    resume: bool = True,
) -> ApprovalOutcome:
    """A person's decision: scope, separation of duties and role checked, then ``decide`` as that person.

    Raises ``NotFound`` for a run that does not exist or is outside the principal's scope (the same
    answer), ``NotAllowed`` (audited) when the principal may see the run but not decide this step.
    """
    from soar.access import RANK, authorize_in
    from soar.policy import load_policy
    from soar.scope import scope_names, scopes_for

    rec = store.get(RUNS, run_id)
    run = None if rec is None else Run.from_doc(rec.doc, run_id)
    scopes = scopes_for(settings)
    if run is None or not authorize_in(principal, "runs:read", scopes.of_run(run)).allowed:
        raise NotFound(f"no run {run_id!r}")
    target = _target(store, run_id, step_id)

    def refuse(reason: str) -> NotAllowed:
        audit(
            store,
            settings,
            "approval.refused",
            run_id,
            {
                "step": target.step,
                "approver": principal.name,
                "role": principal.role,
                "via": via,
                "reason": reason,
                **run_facts(store, run_id),
            },
            actor=principal.name,
        )
        return NotAllowed(reason)

    where = scopes.of_approval(run, target)
    allowed = authorize_in(principal, "approvals:decide", where)
    if not allowed.allowed:
        raise refuse(f"{allowed.reason}: may not decide step {target.step} on {scope_names(where)}")
    if load_policy(settings.policy_path).separation_of_duties.runs and run.requested_by == principal.name:
        raise refuse(
            f"{principal.name} asked for this run, so someone else must decide step {target.step} "
            "(policy: separation_of_duties.runs)"
        )
    held = [r for r in target.roles if r in principal.roles]
    role = max(held, key=lambda r: RANK.get(r, -1)) if held else principal.role
    return decide(
        settings,
        store,
        run_id,
        step_id,
        approver=principal.name,
        role=role,
        decision=decision,
        via=via,
        attributes={k: list(v) for k, v in principal.attributes.items()},
        resume=resume,
        slack_user=slack_user,
    )
