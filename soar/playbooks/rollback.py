"""Rollback: the playbook's rollback steps, or the built-in revert of every completed (or applied but unverified)
step, newest first."""

from __future__ import annotations

import uuid
from typing import Any

from soar.alerts import utcnow_iso
from soar.errors import InputError
from soar.playbooks import outcomes
from soar.playbooks.model import Playbook
from soar.playbooks.records import RUNS, audit
from soar.playbooks.runtime import Runtime
from soar.playbooks.state import HeldRun
from soar.records import Run, StepResult
from soar.store import Conflict


def _to_undo(inst: dict[str, Any]) -> bool:
    """A completed step, or one whose effect was applied but not proven (``verified`` false): reverts are
    idempotent, so undoing a containment that may be half in place is always safe, leaving it never is."""
    if inst["status"] == "succeeded":
        return True
    return inst["status"] == "failed" and (inst.get("result") or {}).get("verified") is False


def skip_unreached(run: HeldRun, cause: str, detail: str) -> None:
    """Record the playbook's steps the run never reached as skipped, saying why (the run stopped, rolled back)."""
    try:
        steps = run.rt.run_playbook(run.doc).spec.steps
    except Exception:  # an unreadable playbook: the run is still finished, with what it recorded
        return
    reason = outcomes.skip_reason(cause, detail)
    for step in steps:
        if step.id not in run.doc["steps"]:
            now = utcnow_iso()
            seq = run.tick()
            run.doc["steps"][step.id] = StepResult(
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
            ).to_doc()


def start_rollback(run: HeldRun, pb: Playbook, reason: str) -> None:
    rt = run.rt
    if run.doc["phase"] == "steps":
        skip_unreached(run, "rolled_back", reason)
    entries: list[dict[str, Any]]
    if pb.spec.rollback:
        entries = [{"id": s.id, "explicit": True} for s in pb.spec.rollback]
    else:  # undo built in: revert every completed step whose action declares its revert, newest first
        entries = []
        for s in reversed(pb.spec.steps):
            rec = run.doc["steps"].get(s.id)
            if rec is None:
                continue
            revert = rt.registry.get(s.uses).spec.revert if s.uses in rt.registry else None
            for inst in reversed(rec.get("instances", [])):
                if revert and _to_undo(inst):
                    key = "revert_" + inst["key"].replace("[", "_").replace("]", "")
                    entries.append({"id": key, "explicit": False, "uses": revert, "params": inst["_params"]})
    run.doc.update(phase="rollback", cursor=0, status="running", finished_at=None)
    run.doc["rollback"] = {"reason": reason, "steps": entries, "seq": run.tick()}
    run.save()
    run.audit("playbook.rollback", {"reason": reason, "steps": [e["id"] for e in entries]})
    run.publish("rollback", step={"id": None, "uses": None, "status": "rollback", "summary": reason})


def request_rollback(rt: Runtime, run_id: str, *, actor: str, reason: str = "") -> dict[str, Any]:
    """Undo a finished run: its playbook's rollback steps, else the revert of every completed step.

    The run re-opens in its rollback phase; the caller makes it progress (``dispatch.kick``).
    """
    rec = rt.store.get(RUNS, run_id)
    if rec is None:
        raise InputError(f"no run {run_id!r}")
    doc = rec.doc
    stored = Run.from_doc(doc, run_id)
    if stored.status not in ("succeeded", "failed") or stored.phase == "rollback":
        state = stored.status if stored.phase == "steps" else f"{stored.status} (its rollback already ran)"
        raise InputError(f"run {run_id} is {state}: only a finished run that was not rolled back can be rolled back")
    run = HeldRun(rt, rec, owner=uuid.uuid4().hex)
    why = f"requested by {actor}" + (f": {reason}" if reason else "")
    try:
        start_rollback(run, rt.run_playbook(doc), why)
    except Conflict:
        raise InputError(f"run {run_id} changed while the rollback was requested; try again") from None
    details = {"actor": actor, "reason": reason, "dry_run": bool(stored.dry_run), "run_seq": run.doc["seq"]}
    audit(rt.store, rt.settings, "playbook.rollback_requested", run_id, details, actor=actor)
    return run.doc
