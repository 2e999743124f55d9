"""One attempt of one step instance: target locks, the crash marker, the action under its timeout, the record.

The attempt is marked ``running`` in the store before the action is called, so a
worker killed mid-step is noticed by the next holder of the run's lease.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from soar.actions import ActionContext, ActionResult
from soar.actions.registry import RegisteredAction
from soar.containment.ledger import on_step_verified
from soar.playbooks import guards, machine
from soar.playbooks.locks import Locks, hold_while_alive
from soar.playbooks.model import Step
from soar.playbooks.outcomes import DRY_RUN
from soar.playbooks.records import audit, redacted
from soar.playbooks.state import LEASE_MARGIN, HeldRun, Next
from soar.policy import GATED_IMPACTS
from soar.records import ActionOutcome, Attempt, Instance, StepResult

MAX_OUTPUT = 64 * 1024


def _truncate(text: str) -> str:
    return text if len(text) <= MAX_OUTPUT else text[:MAX_OUTPUT] + f"\n[... {len(text) - MAX_OUTPUT} bytes cut]"


def call_with_timeout(
    func: Callable[[], ActionResult], timeout: float, on_stray: Callable[[threading.Thread], object] = lambda _t: None
) -> ActionResult:
    """Run an action in a thread; past the timeout the step fails (the thread, left to finish, goes to ``on_stray``)."""
    box: list[ActionResult | BaseException] = []

    def target() -> None:
        try:
            box.append(func())
        except BaseException as exc:
            box.append(exc)

    thread = threading.Thread(target=target, name="soar-action", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        on_stray(thread)
        return ActionResult.failure(f"timed out after {timeout:g}s")
    outcome = box[0]
    if isinstance(outcome, BaseException):
        return ActionResult.failure(f"action raised {type(outcome).__name__}: {outcome}")
    if not isinstance(outcome, ActionResult):
        return ActionResult.failure(f"action returned {type(outcome).__name__}, not an ActionResult")
    return outcome


def lock_keys(action: RegisteredAction, inst: Instance) -> list[str]:
    """The per-target locks an instance takes (none for a notification)."""
    if action.spec.impact == "notify":
        return []
    return [t.key for t in inst.targets if t.kind in ("host", "account", "ip", "process")]


def execute(run: HeldRun, step: Step | None, step_rec: StepResult, inst: Instance, locks: Locks) -> Next:
    """One attempt. Safe in the threads of a batch: the run record (``inst`` included) changes under ``run.lock``."""
    rt = run.rt
    action = rt.registry.get(step_rec.uses)
    timeout = step.timeout if step else 60.0
    keys = lock_keys(action, inst)
    lock_ttl = timeout + LEASE_MARGIN + 30
    stray: list[threading.Thread] = []  # the action's thread, if it outlives its timeout
    if keys and not locks.acquire(keys, run.id, lock_ttl):
        with run.lock:
            run.record.status = "waiting_lock"
            run.save()
        return Next("retry", delay=0.5)
    try:
        with run.lock:
            n = len(inst.attempts) + 1
            dry_run = run.dry_run
            attempt = Attempt(n, "running", dry_run, started_at=run.now_iso(), started_seq=run.tick(), worker=run.owner)
            inst.attempts.append(attempt)
            inst.dry_run = dry_run  # the instance's outcome is its latest attempt's
            inst.status = "running"
            run.record.status = "running"
            run.extend_lease(timeout + LEASE_MARGIN)
            run.save()  # the crash marker: from here a lost worker is noticed by the next lease holder
        summary = {"id": inst.key, "uses": action.spec.name, "dry_run": dry_run}
        run.publish("step_started", step={**summary, "status": "running", "attempt": n})
        ctx = ActionContext(
            settings=rt.settings, dry_run=dry_run, run_id=run.id, step_id=inst.key, resources=run.resources
        )
        t0 = rt.clock.now()
        result = call_with_timeout(lambda: action.call(ctx, _call_params(inst)), timeout, stray.append)
        elapsed = max(0.0, rt.clock.now() - t0)
        if action.spec.impact in GATED_IMPACTS:
            # A verified containment is watched while in force; a verified revert ends its watch. Written before
            # the target's lock is given back: the watch's repair takes the same lock and then finds it released.
            on_step_verified(rt.store, rt.settings, rt.registry, run.id, inst, action.spec, result, dry_run)
    finally:
        if keys and stray:  # still acting on its targets: nothing else may until it stops, a retry of ours neither
            hold_while_alive(locks, keys, run.id, stray[0], lock_ttl)
        elif keys:
            locks.release(keys, run.id)
    with run.lock:
        return _record(run, step, action, inst, attempt, result, elapsed)


def _call_params(inst: Instance) -> dict[str, Any]:
    """What the action is called with: the unredacted parameters (never the redacted copy, secrets cut out)."""
    if inst.call_params is None:
        raise ValueError(f"instance {inst.key} has no unredacted parameters to call the action with")
    return inst.call_params


def _record(
    run: HeldRun,
    step: Step | None,
    action: RegisteredAction,
    inst: Instance,
    attempt: Attempt,
    result: ActionResult,
    elapsed: float,
) -> Next:
    rt = run.rt
    n = attempt.n
    dry_run = attempt.dry_run
    summary = {"id": inst.key, "uses": action.spec.name, "dry_run": dry_run}
    secrets_safe = redacted(
        {"stdout": _truncate(result.stdout), "stderr": _truncate(result.stderr), "error": result.error}, rt.settings
    )
    attempt.finish(
        "succeeded" if result.ok else "failed",
        finished_at=run.now_iso(),
        duration_ms=round(elapsed * 1000, 2),
        exit_status=result.exit_status,
        finished_seq=run.tick(),
        **secrets_safe,
    )
    rdict = result.to_dict()
    rdict.update(stdout=secrets_safe["stdout"], stderr=secrets_safe["stderr"], error=secrets_safe["error"])
    inst.result = ActionOutcome.of(redacted(rdict, rt.settings))
    gated = action.spec.impact in GATED_IMPACTS
    if gated and guards.record_outcome(rt.store, rt.policy, action.spec.name, result.ok, rt.clock.now()):
        audit(
            rt.store,
            rt.settings,
            "policy.circuit_open",
            action.spec.name,
            {"run": run.id, "step": inst.key, "dry_run": dry_run, "run_seq": run.record.seq},
        )
        run.publish(
            "step_finished",
            step={**summary, "status": "failed", "summary": f"circuit breaker opened: {action.spec.name} paused"},
        )
    t = machine.after_attempt(step, n, ok=result.ok, refused=bool(result.output.get("refused")))
    if isinstance(t, machine.Retry):
        inst.status = "ready"
        inst.set_error(secrets_safe["error"])
        run.save()
        run.publish("step_finished", step={**summary, "status": "retrying", "summary": secrets_safe["error"]})
        return Next("retry", delay=t.after)
    inst.status = t.status
    if t.status == "succeeded":
        inst.set_error(None)
        if gated and not dry_run:  # a planned containment contains nothing
            run.record.contained_targets = sorted(set(run.record.contained_targets) | inst.target_keys)
    else:
        inst.set_error(secrets_safe["error"] or "failed")
    run.save()
    if gated or action.spec.impact == "destructive":
        details = {"step": inst.key, "action": action.spec.name, "ok": result.ok, "params": inst.params}
        run.audit("playbook.step_finished", details, dry_run=dry_run)
    run.publish(
        "step_finished",
        step={**summary, "status": inst.status, "summary": inst.error or _summary(result, dry_run)},
    )
    if result.verified is not None:
        run.publish("verification", step={**summary, "status": inst.status, "verified": result.verified})
    return Next("continue")


def _summary(result: ActionResult, dry_run: bool = False) -> str:
    if dry_run:  # nothing was touched: say what would have run, never "done"
        n = len(result.commands)
        return f"{DRY_RUN}: {n} command{'s' if n != 1 else ''} would run, nothing touched"
    if result.verified is True:
        return "done, verified"
    return "done" if result.changed is not False else "done (no change needed)"
