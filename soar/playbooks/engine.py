"""Alerts in, runs out: trigger matching, exactly one run per (playbook, alert), dry-run plans, recovery."""

from __future__ import annotations

import logging
from typing import Any

from soar.actions import ActionContext
from soar.alerts import Alert
from soar.errors import InputError, RecordError
from soar.playbooks import events, planner, triggers
from soar.playbooks.model import Playbook
from soar.playbooks.records import APPROVALS, RUNS, audit, new_run, redacted
from soar.playbooks.runtime import Runtime
from soar.policy import GATED_IMPACTS, Decision, StepFacts, decide
from soar.records import Approval, Run

ALERTS = "alerts"

log = logging.getLogger("soar.playbooks")


def validate_alert(doc: Any, where: str = "alert") -> dict[str, Any]:
    """An alert document as the engine needs it; InputError naming the field otherwise."""
    if not isinstance(doc, dict):
        raise InputError(f"{where}: an alert must be a JSON object")
    try:
        return Alert.model_validate(doc).to_doc()
    except Exception as exc:
        errors = getattr(exc, "errors", None)
        if callable(errors):
            err = errors()[0]
            field = ".".join(str(p) for p in err["loc"])
            raise InputError(f"{where}: field {field}: {err['msg']}") from None
        raise InputError(f"{where}: {exc}") from None


def start_run(
    rt: Runtime,
    playbook: Playbook,
    alert: dict[str, Any],
    *,
    origin: str = "alert",
    inputs: dict[str, Any] | None = None,
    requested_by: str | None = None,
) -> tuple[str, bool]:
    """Create the run for (playbook, alert) unless it exists; (run id, created).

    ``requested_by`` is the authenticated principal that asked for it (separation of duties keeps them from
    approving it); by default the webhook sender of the alert, else soar's own detection.
    """
    run = new_run(
        playbook, alert, origin=origin, inputs=check_inputs(playbook, inputs), requested_by=requested_by, clock=rt.clock
    )
    run.dry_run, run.seq = rt.settings.response_dry_run, 0  # its mode for good: a planned run never acts
    created = rt.store.create(RUNS, run.id, run.to_doc())
    if created:
        audit(
            rt.store,
            rt.settings,
            "playbook.run_started",
            run.id,
            {
                "playbook": playbook.name,
                "version": playbook.version_hash,
                "alert": alert.get("id"),
                "origin": origin,
                "dry_run": run.dry_run,
                "run_seq": 0,
            },
            actor=requested_by or "automation:playbooks",
        )
        events.publish(rt.settings, run.id, events.run_event("run_started", run))
    return run.id, created


def handle_alert(rt: Runtime, alert_id: str) -> list[str]:
    """Start a run of every playbook the stored alert triggers; the ids of runs created now."""
    return [run_id for run_id, created in start_runs(rt, alert_id) if created]


def start_runs(rt: Runtime, alert_id: str) -> list[tuple[str, bool]]:
    """(run id, created now) for every playbook the stored alert triggers, its run created unless it exists."""
    rec = rt.store.get(ALERTS, alert_id)
    if rec is None:
        raise InputError(f"no alert {alert_id!r} in the store")
    return [start_run(rt, pb, rec.doc) for pb in triggers.triggered(rt.playbooks.playbooks, rec.doc)]


def check_inputs(playbook: Playbook, inputs: dict[str, Any] | None) -> dict[str, Any]:
    """Overrides of declared inputs only: an unknown name is refused, naming it."""
    for name in inputs or {}:
        if name not in playbook.spec.inputs:
            declared = ", ".join(sorted(playbook.spec.inputs)) or "none"
            raise InputError(f"input {name!r} is not declared by playbook {playbook.name} (declared: {declared})")
    return {**playbook.spec.inputs, **(inputs or {})}


def plan(
    rt: Runtime, playbook: Playbook, alert: dict[str, Any], inputs: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Every step rendered with its exact parameters, commands per host and policy decision. Touches nothing."""
    values = check_inputs(playbook, inputs)
    ctx_steps: dict[str, Any] = {}
    contained: set[str] = set()
    out_steps: list[dict[str, Any]] = []
    for step in playbook.spec.steps:
        ctx = planner.context(alert, values, ctx_steps)
        exp = planner.expand(step, ctx, rt.registry, rt.inventory)
        entry: dict[str, Any] = {"id": step.id, "uses": step.uses, "on_failure": step.on_failure}
        if step.uses in rt.registry:
            spec = rt.registry.get(step.uses).spec
            entry.update(impact=spec.impact, idempotent=spec.idempotent, revert=spec.revert)
        if exp.error:
            depends = "steps." in exp.error or "'steps'" in exp.error
            entry.update(status="deferred" if depends else "error", error=exp.error)
            out_steps.append(entry)
            ctx_steps[step.id] = {"status": entry["status"], "result": None}
            continue
        if exp.skipped:
            entry.update(status="skipped", reason=exp.reason)
            out_steps.append(entry)
            ctx_steps[step.id] = {"status": "skipped", "result": None}
            continue
        action = rt.registry.get(step.uses)
        instances = []
        results: list[dict[str, Any] | None] = []
        for inst in exp.instances:
            gated = action.spec.impact in GATED_IMPACTS
            keys = {t.key for t in inst.targets} if gated else set()
            facts = StepFacts(
                action=step.uses,
                impact=action.spec.impact,
                targets=inst.targets,
                requested=step.approval,
                run_targets=len(contained | keys),
            )
            decision: Decision = decide(rt.policy, facts)
            contained |= keys
            dry = ActionContext(settings=rt.settings, dry_run=True, step_id=inst.key, resources={})
            try:
                result = action.call(dry, inst.params)
                commands = [c.to_dict() for c in result.commands]
                dry_error = None if result.ok else result.error
                results.append(result.to_dict())
            except Exception as exc:
                commands, dry_error = [], f"{type(exc).__name__}: {exc}"
                results.append(None)
            instances.append(
                {
                    **inst.to_dict(),
                    "params": redacted(inst.params, rt.settings),
                    "policy": decision.to_dict(),
                    "commands": commands,
                    "dry_run_error": dry_error,
                }
            )
        entry.update(status="planned", instances=instances)
        out_steps.append(entry)
        ctx_steps[step.id] = {"status": "planned", "result": results if step.for_each is not None else results[0]}
    return {
        "playbook": {"name": playbook.name, "path": str(playbook.path), "version_hash": playbook.version_hash},
        "alert": {"id": alert.get("id"), "rule": (alert.get("rule") or {}).get("id")},
        "matches_trigger": triggers.matches(playbook.spec.trigger, alert),
        "policy_file": rt.policy.path,
        "steps": out_steps,
    }


def stale_runs(rt: Runtime, now: float | None = None) -> list[str]:
    """Runs to resume now: a lost worker's lease has expired, or an approval has."""
    now = now if now is not None else rt.clock.now()
    return sorted(run_id for run_id, delay in resumable_runs(rt, now) if delay <= 0)


def resumable_runs(rt: Runtime, now: float | None = None) -> list[tuple[str, float]]:
    """(run id, seconds until it may be resumed) for every unfinished run not waiting for a person."""
    now = now if now is not None else rt.clock.now()
    out: dict[str, float] = {}
    for rec in rt.store.find(RUNS, {"status": ["running", "waiting_lock"]}, limit=10_000):
        try:
            lease = Run.from_doc(rec.doc, rec.id).lease
        except RecordError as exc:  # one unreadable run must not keep the others from being resumed
            log.error("not resuming: %s", exc)
            continue
        out[rec.id] = 0.0 if lease is None else max(0.0, lease.until - now)
    for rec in rt.store.find(APPROVALS, {"status": "pending"}, limit=10_000):
        try:
            approval = Approval.from_doc(rec.doc, rec.id)
        except RecordError as exc:
            log.error("not resuming: %s", exc)
            continue
        out[approval.run_id] = min(out.get(approval.run_id, 1e18), max(0.0, approval.expires_at - now))
    return sorted(out.items())
