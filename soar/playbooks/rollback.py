"""Rollback: the playbook's rollback steps, or the built-in revert of every completed (or applied but unverified)
step, newest first."""

from __future__ import annotations

import uuid

from soar.errors import InputError
from soar.playbooks import outcomes
from soar.playbooks.model import Playbook
from soar.playbooks.records import RUNS, audit
from soar.playbooks.runtime import Runtime
from soar.playbooks.state import HeldRun
from soar.records import Instance, RollbackPlan, Run, StepRef, StepResult
from soar.store import Conflict


def _to_undo(inst: Instance) -> bool:
    """A completed step, or one whose effect was applied but not proven (``verified`` false): reverts are
    idempotent, so undoing a containment that may be half in place is always safe, leaving it never is."""
    if inst.status == "succeeded":
        return True
    return inst.status == "failed" and inst.unverified


def skip_unreached(run: HeldRun, cause: str, detail: str) -> None:
    """Record the playbook's steps the run never reached as skipped, saying why (the run stopped, rolled back)."""
    try:
        steps = run.rt.run_playbook(run.record).spec.steps
    except Exception:  # an unreadable playbook: the run is still finished, with what it recorded
        return
    reason = outcomes.skip_reason(cause, detail)
    for step in steps:
        if step.id not in run.record.steps:
            now = run.now_iso()
            seq = run.tick()
            run.record.steps[step.id] = StepResult(
                id=step.id,
                status="skipped",
                uses=step.uses,
                for_each=step.for_each is not None,
                on_failure=step.on_failure,
                skip_reason=reason,
                dry_run=run.dry_run,
                started_at=now,
                started_seq=seq,
                finished_at=now,
                finished_seq=seq,
            )


def start_rollback(run: HeldRun, pb: Playbook, reason: str) -> None:
    rt = run.rt
    record = run.record
    if record.phase == "steps":
        skip_unreached(run, "rolled_back", reason)
    entries: list[StepRef]
    if pb.spec.rollback:
        entries = [StepRef(s.id) for s in pb.spec.rollback]
    else:  # undo built in: revert every completed step whose action declares its revert, newest first
        entries = []
        for s in reversed(pb.spec.steps):
            rec = record.steps.get(s.id)
            if rec is None:
                continue
            revert = rt.registry.get(s.uses).spec.revert if s.uses in rt.registry else None
            for inst in reversed(rec.instances):
                if revert and _to_undo(inst):
                    key = "revert_" + inst.key.replace("[", "_").replace("]", "")
                    entries.append(StepRef(key, explicit=False, uses=revert, params=inst.call_params))
    record.phase, record.cursor, record.status, record.finished_at = "rollback", 0, "running", None
    record.rollback = RollbackPlan(reason, entries, seq=run.tick())
    run.save()
    run.audit("playbook.rollback", {"reason": reason, "steps": [e.id for e in entries]})
    run.publish("rollback", step={"id": None, "uses": None, "status": "rollback", "summary": reason})


def request_rollback(rt: Runtime, run_id: str, *, actor: str, reason: str = "") -> Run:
    """Undo a finished run: its playbook's rollback steps, else the revert of every completed step.

    The run re-opens in its rollback phase; the caller makes it progress (``dispatch.kick``).
    """
    rec = rt.store.get(RUNS, run_id)
    if rec is None:
        raise InputError(f"no run {run_id!r}")
    stored = Run.from_doc(rec.doc, run_id)
    if stored.status not in ("succeeded", "failed") or stored.phase == "rollback":
        state = stored.status if stored.phase == "steps" else f"{stored.status} (its rollback already ran)"
        raise InputError(f"run {run_id} is {state}: only a finished run that was not rolled back can be rolled back")
    dry_run = bool(stored.dry_run)
    run = HeldRun(rt, rec, owner=uuid.uuid4().hex, record=stored)
    why = f"requested by {actor}" + (f": {reason}" if reason else "")
    try:
        start_rollback(run, rt.run_playbook(stored), why)
    except Conflict:
        raise InputError(f"run {run_id} changed while the rollback was requested; try again") from None
    details = {"actor": actor, "reason": reason, "dry_run": dry_run, "run_seq": run.record.seq}
    audit(rt.store, rt.settings, "playbook.rollback_requested", run_id, details, actor=actor)
    return run.record
