"""The run state machine: advance a run by one step attempt, persisting every transition.

``advance`` is what one Celery task invocation does (``soar.playbooks.advance``):
take the run's lease, render the step at the cursor, ask the policy, wait for an
approval or a target lock if needed, execute one attempt with its timeout, record
the result, apply ``on_failure``, release the lease. The attempt is marked
``running`` in the store before the action is called, so a worker killed mid-step
is noticed by the next holder of the lease: an idempotent action is attempted
again, a non-idempotent one is never repeated blindly (it fails as
``interrupted``). A step that completed is never executed again.
"""

from __future__ import annotations

import logging
import time
import uuid
from contextlib import suppress
from typing import Any, Literal

from soar.clock import iso
from soar.connections import unreachable
from soar.errors import RecordError
from soar.playbooks import guards, machine, parallel, planner, templating
from soar.playbooks.execute import execute, lock_keys
from soar.playbooks.locks import Locks, open_locks
from soar.playbooks.model import Playbook, Step
from soar.playbooks.records import APPROVALS, RUNS, redacted
from soar.playbooks.rollback import skip_unreached, start_rollback
from soar.playbooks.runtime import Runtime
from soar.playbooks.state import HeldRun, Next
from soar.policy import GATED_IMPACTS, Decision, StepFacts, decide
from soar.records import (
    Approval,
    ApprovalSnapshot,
    Instance,
    Lease,
    PolicyDecision,
    Run,
    StepRef,
    StepResult,
)
from soar.store import Conflict

__all__ = ["Next", "advance"]

log = logging.getLogger("soar.playbooks.runner")


def advance(rt: Runtime, run_id: str, owner: str | None = None) -> Next:
    """One step of progress on a run. Safe to call from any number of workers at once."""
    owner = owner or uuid.uuid4().hex
    rec = rt.store.get(RUNS, run_id)
    if rec is None:
        from soar.errors import InputError

        raise InputError(f"no run {run_id!r}")
    stored = Run.from_doc(rec.doc, run_id)  # a malformed run stops here, named, before anything is written
    if stored.finished:
        return Next("done")
    if stored.held_by_other(owner, rt.clock.now()):
        return Next("busy")
    stored.lease = Lease(owner, rt.clock.now() + 30)
    try:
        rec = rt.store.update(RUNS, run_id, stored.to_doc(), version=rec.version)
    except Conflict:
        return Next("busy")
    run = HeldRun(rt, rec, owner, stored)
    run.resources = rt.hold_resources(run_id)
    locks = open_locks(rt.settings, rt.store, rt.clock)
    nxt = Next("continue")
    try:
        nxt = _advance(run, locks)
    except Exception as exc:
        if unreachable(exc):  # the store went away: leave the run as a worker lost here would (the task retries)
            raise
        if _lease_lost(run):  # our lease ran out mid-attempt and another worker holds the run: it is theirs
            log.warning("run %s: lease lost to another worker (%s); standing down", run_id, exc)
            return Next("busy")
        log.exception("run %s: engine error", run_id)  # a bug or a lost store must still leave a record
        nxt = _fail_run(run, f"engine error: {type(exc).__name__}: {exc}")
    finally:  # what the run opened (its SSH connections) is closed when it ends or waits, else kept for its next step
        rt.let_go(run_id, ended=nxt.kind not in ("continue", "retry"))
    _release_lease(run)
    if nxt.kind == "paused" and _decided_meanwhile(run):
        return Next("continue")  # its kick found the run still held (busy) and was dropped
    return nxt


def _decided_meanwhile(run: HeldRun) -> bool:
    """Whether an approval the run pauses for was decided while we held it (looked at after letting go)."""
    waiting = [
        inst.approval_id
        for step in run.record.steps.values()
        for inst in step.instances
        if inst.status == "waiting_approval" and inst.approval_id
    ]
    return any(
        (rec := run.rt.store.get(APPROVALS, a)) is not None and Approval.from_doc(rec.doc, a).status != "pending"
        for a in waiting
    )


def _lease_lost(run: HeldRun) -> bool:
    """Whether the stored run is no longer ours (taken over, or finished and given back by its new holder)."""
    try:
        rec = run.rt.store.get(RUNS, run.id)
        if rec is None:
            return False
        lease = Run.from_doc(rec.doc, run.id).lease
    except Exception:  # the store is gone (or the run unreadable): nobody else can have it either
        return False
    return lease is None or lease.owner != run.owner


def _release_lease(run: HeldRun) -> None:
    """Save the run without our lease; if it changed meanwhile, give the lease back on the stored run."""
    if run.holds_lease():
        run.record.lease = None
    try:
        run.save()
        return
    except Conflict:
        pass

    def release(doc: dict[str, Any]) -> dict[str, Any] | None:
        stored = Run.from_doc(doc, run.id)
        if stored.lease is None or stored.lease.owner != run.owner:
            return None  # not ours any more: a write here could break its new holder's next save
        stored.lease, stored.updated_at = None, iso(run.rt.clock)
        return stored.to_doc()

    with suppress(Conflict, RecordError):  # contested or rewritten unreadable: the lease runs out by itself
        rec = run.rt.store.mutate(RUNS, run.id, release, retries=9)
        if rec is not None:
            run.reload(rec)


def _fail_run(run: HeldRun, error: str) -> Next:
    rec = run.rt.store.get(RUNS, run.id)
    if rec is not None:
        with suppress(RecordError):  # unreadable now: finish the run as we hold it
            run.reload(rec)
    run.record.error = error
    return _finish(run, "failed")


def _section(run: HeldRun, pb: Playbook) -> list[StepRef]:
    if run.record.phase == "steps":
        return [StepRef(s.id) for s in pb.spec.steps]
    return list(run.record.rollback.steps)


def _results_context(run: HeldRun) -> dict[str, Any]:
    """``steps`` of the templates: each step's status and result (a list of them for a for_each step)."""
    out: dict[str, Any] = {}
    for sid, step in run.record.steps.items():
        results = [None if i.result is None else i.result.to_doc() for i in step.instances]
        out[sid] = {"status": step.status, "result": results if step.for_each else (results or [None])[0]}
    return out


def _context(run: HeldRun, pb: Playbook) -> dict[str, Any]:
    return planner.context(run.record.alert, run.record.inputs or pb.spec.inputs, _results_context(run))


def _advance(run: HeldRun, locks: Locks) -> Next:
    """Drive the run machine: ask it for the next transition, perform its effects, until the run pauses or ends."""
    pb = run.rt.run_playbook(run.record)
    while True:
        t = machine.decide(run.record, machine.Facts(_section(run, pb)))
        match t:
            case machine.Expand(entry):
                _expand(run, pb, entry)
                run.save()
            case machine.NextStep(step_id, unfinished):
                if unfinished is not None:
                    run.record.list_unfinished(step_id, denied=unfinished == "denied")
                run.record.cursor += 1
                run.save()
            case machine.Rollback(reason):
                start_rollback(run, pb, reason)
            case machine.Finish(status, error):
                if error is not None:
                    run.record.error = error
                return _finish(run, status)
            case machine.RunStep(entry, step_rec):
                nxt = _work_on_step(run, pb, entry, step_rec, locks)
                if nxt is not None:
                    return nxt


def _step_of(pb: Playbook, entry: StepRef) -> Step | None:
    return pb.step(entry.id) if entry.explicit else None


def _expand(run: HeldRun, pb: Playbook, entry: StepRef) -> StepResult:
    rt = run.rt
    step = _step_of(pb, entry)
    uses = step.uses if step else str(entry.uses)
    rec = StepResult(
        id=entry.id,
        status="pending",
        uses=uses,
        phase=run.record.phase,
        for_each=bool(step and step.for_each is not None),
        on_failure=step.on_failure if step else "continue",
        dry_run=run.dry_run,
        started_at=run.now_iso(),
        started_seq=run.tick(),
    )
    run.record.steps[entry.id] = rec
    if step is not None:
        exp = planner.expand(step, _context(run, pb), rt.registry, rt.inventory)
    else:
        try:
            inst = planner.literal_instance(entry.id, entry.params or {}, rt.registry, uses, rt.inventory)
            exp = planner.Expansion(instances=[inst])
        except Exception as exc:
            exp = planner.Expansion(error=f"step {entry.id}: {exc}")
    summary = {"id": entry.id, "uses": uses, "dry_run": rec.dry_run}
    if exp.error:
        rec.status, rec.error, rec.finished_at, rec.finished_seq = "failed", exp.error, run.now_iso(), run.tick()
        run.audit("playbook.step_failed", {"step": entry.id, "error": exp.error})
        run.publish("step_finished", step={**summary, "status": "failed", "summary": exp.error})
    elif exp.skipped:
        rec.status, rec.error, rec.skip_reason, rec.finished_at = "skipped", None, exp.reason, run.now_iso()
        rec.finished_seq = run.tick()
        run.publish("step_finished", step={**summary, "status": "skipped", "summary": exp.reason})
    else:
        rec.status = "in_progress"
        rec.instances = [
            Instance(
                key=i.key,
                status="pending",
                params=redacted(i.params, rt.settings),
                targets=[planner.target_ref(t) for t in i.targets],
                item=i.item,
                dry_run=rec.dry_run,
                call_params=i.params,  # what the action is called with: never leaves the engine
            )
            for i in exp.instances
        ]
    return rec


def _work_on_step(run: HeldRun, pb: Playbook, entry: StepRef, step_rec: StepResult, locks: Locks) -> Next | None:
    step = _step_of(pb, entry)
    todo = [i for i in step_rec.instances if i.status not in machine.INSTANCE_DONE]
    if len(todo) > 1 and (wide := _width(run, step, step_rec)) > 1:
        return _work_on_batch(run, step, step_rec, todo, locks, wide)
    for inst in todo:
        return _work_on_instance(run, step, step_rec, inst, locks)
    machine.conclude(step_rec)
    step_rec.finished_at = run.now_iso()
    step_rec.finished_seq = run.tick()
    run.save()
    return None


def _width(run: HeldRun, step: Step | None, step_rec: StepResult) -> int:
    """How many instances go at once. A containment step starts with a canary batch no wider than the
    circuit breaker's threshold: an action broken everywhere opens the breaker having touched that many
    hosts, not max_parallel; once one instance has succeeded, the step goes full width."""
    wide = parallel.width(step, run.rt.settings.playbook_max_parallel)
    gated = run.rt.registry.get(step_rec.uses).spec.impact in GATED_IMPACTS
    proven = any(i.status == "succeeded" for i in step_rec.instances)
    if gated and step_rec.phase == "steps" and not proven:
        return parallel.canary_width(wide, run.rt.policy.circuit_breaker.failures_in_a_row)
    return wide


def _decide(run: HeldRun, step: Step | None, step_rec: StepResult, inst: Instance) -> Decision:
    rt = run.rt
    action = rt.registry.get(step_rec.uses)
    impact = action.spec.impact
    targets = [planner.target_of(t) for t in inst.targets]
    if step_rec.phase == "rollback":
        facts = StepFacts(action=action.spec.name, impact=impact, targets=targets)
        return machine.in_rollback(decide(rt.policy, facts))
    gated = impact in GATED_IMPACTS
    rate_capped = None
    if gated and step_rec.phase == "steps":
        slots, rate_capped = guards.reserve_containment(rt.store, rt.policy, run.record.rule_id, run.id, rt.clock.now())
        inst.quota = slots
    facts = StepFacts(
        action=action.spec.name,
        impact=impact,
        targets=targets,
        requested=step.approval if step else None,
        run_targets=machine.run_targets(run.record, step_rec, inst, gated=gated, dry_run=run.dry_run),
        breaker_open=gated and guards.breaker_open(rt.store, action.spec.name, rt.clock.now()),
        rate_capped=rate_capped,
    )
    d = decide(rt.policy, facts)
    if d.outcome == "refuse" and inst.quota:
        guards.release(rt.store, inst.quota)
        inst.quota = []
    return d


def _work_on_instance(run: HeldRun, step: Step | None, step_rec: StepResult, inst: Instance, locks: Locks) -> Next:
    nxt = _prepare(run, step, step_rec, inst)
    return nxt if nxt is not None else execute(run, step, step_rec, inst, locks)


def _work_on_batch(
    run: HeldRun,
    step: Step | None,
    step_rec: StepResult,
    todo: list[Instance],
    locks: Locks,
    wide: int,
) -> Next:
    """Decide instances in order (each decision counts the ones admitted before it) until ``wide`` are
    ready, then run those at once. Instances waiting for an approval are passed over; the run pauses for
    them once nothing else is left to run."""
    action = run.rt.registry.get(step_rec.uses)
    batch: list[Instance] = []
    busy: set[str] = set()  # the target locks of the batch: one actor per target, within a run too
    paused: list[Next] = []
    later: list[Next] = []  # instances still inside their retry backoff
    for inst in todo:
        keys = set(lock_keys(action, inst))
        if len(batch) >= wide or keys & busy:
            break
        if inst.status == "ready" and (wait := machine.backoff_left(step, inst, run.rt.clock.now())) > 0:
            later.append(Next("retry", delay=wait))
            continue
        nxt = _prepare(run, step, step_rec, inst)
        if nxt is None:
            batch.append(inst)
            busy |= keys
        elif nxt.kind == "paused":
            paused.append(nxt)
    if batch:
        later.append(parallel.run_batch(run, step, step_rec, batch, locks))
    retries = [nxt for nxt in later if nxt.kind == "retry"]
    if retries:
        return min(retries, key=lambda nxt: nxt.delay)
    if paused and not batch:
        run.record.status = "waiting_approval"
        run.save()
        return min(paused, key=lambda nxt: nxt.delay)
    return Next("continue")


def _prepare(run: HeldRun, step: Step | None, step_rec: StepResult, inst: Instance) -> Next | None:
    """Bring an instance to ``ready`` (None: execute it) or say why not (refused, waiting, interrupted, ...)."""
    rt = run.rt
    summary = {"id": inst.key, "uses": step_rec.uses, "dry_run": bool(inst.dry_run)}
    if inst.status == "pending":
        d = _decide(run, step, step_rec, inst)
        inst.decision = PolicyDecision(d.outcome, list(d.reasons), d.approvals, list(d.roles), d.timeout)
        if d.outcome == "refuse":
            inst.status, inst.error = "refused", "refused by policy: " + "; ".join(d.reasons)
            run.tick()
            run.audit("policy.refused", {"step": inst.key, "reasons": list(d.reasons)})
            run.save()
            run.publish("step_finished", step={**summary, "status": "refused", "summary": inst.error})
            return Next("continue")
        if d.outcome == "approve":
            return _request_approval(run, inst, d, summary)
        inst.status = "ready"
    if inst.status == "waiting_approval":
        return _check_approval(run, inst, summary)
    if inst.status == "running":  # the previous holder of the lease died mid-attempt
        action = rt.registry.get(step_rec.uses)
        last = inst.last_attempt
        if last is not None:
            last.status, last.finished_at, last.error = "interrupted", run.now_iso(), "worker lost during the attempt"
        inst.interruptions += 1
        t = machine.after_interruption(inst, idempotent=action.spec.idempotent)
        if isinstance(t, machine.Settle):
            inst.status, inst.error = t.status, t.error
            run.tick()
            run.audit("playbook.step_interrupted", {"step": inst.key})
            run.save()
            return Next("continue")
        inst.status = "ready"
    return None


def _request_approval(run: HeldRun, inst: Instance, d: Decision, summary: dict[str, Any]) -> Next:
    rt = run.rt
    approval_id = f"{run.id}.{inst.key}"
    expires = rt.clock.now() + d.timeout
    request = Approval(
        id=approval_id,
        run_id=run.id,
        step=inst.key,
        step_id=inst.key.split("[")[0],
        status="pending",
        expires_at=expires,
        required=d.approvals,
        roles=list(d.roles),
        reasons=list(d.reasons),
        requested_at=run.now_iso(),
        expires_at_iso=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires)),
        params=inst.params,
        playbook=run.record.playbook.name,
        dry_run=bool(inst.dry_run),
        run_seq=run.tick(),
    )
    rt.store.create(APPROVALS, approval_id, request.to_doc())
    inst.status, inst.approval_id = "waiting_approval", approval_id
    run.record.status = "waiting_approval"
    run.save()
    run.audit("approval.requested", {"step": inst.key, "reasons": list(d.reasons)})
    run.publish(
        "approval_requested",
        step={**summary, "status": "waiting_approval", "summary": "; ".join(d.reasons)},
        approval={
            "step": inst.key,
            "required": d.approvals,
            "roles": list(d.roles),
            "approvers": [],
            "expires_at": request.expires_at_iso,
        },
    )
    return Next("paused", delay=d.timeout)


def _check_approval(run: HeldRun, inst: Instance, summary: dict[str, Any]) -> Next | None:
    """None once the step is approved (``ready``); else pause while it is pending, or go on past a refusal."""
    rec = run.rt.store.get(APPROVALS, str(inst.approval_id))
    a = None if rec is None else Approval.from_doc(rec.doc, rec.id)
    if a is not None and a.expired_by(run.rt.clock.now()):
        from soar.playbooks.approvals import expire

        a = expire(run.rt.settings, run.rt.store, a.id, clock=run.rt.clock) or a
    t = machine.after_approval(a, run.rt.clock.now())
    if isinstance(t, machine.Wait):
        run.record.status = "waiting_approval"
        return Next("paused", delay=t.delay)
    if a is not None:  # decided (else the record of the request is gone: nothing to remember of it)
        run.record.status = "running"
        inst.approval = ApprovalSnapshot.of(a)
    if isinstance(t, machine.Go):
        inst.status = "ready"
        return None
    inst.status, inst.error = t.status, t.error
    if inst.quota:
        guards.release(run.rt.store, inst.quota)
        inst.quota = []
    return _not_approved(run, inst, summary)


def _not_approved(run: HeldRun, inst: Instance, summary: dict[str, Any]) -> Next:
    run.save()
    run.publish("step_finished", step={**summary, "status": inst.status, "summary": inst.error})
    return Next("continue")


def _finish(run: HeldRun, status: Literal["succeeded", "failed", "rolled_back"]) -> Next:
    rt = run.rt
    record = run.record
    try:
        pb = rt.run_playbook(record)
        ctx = _context(run, pb)
        outputs: dict[str, Any] = {}
        for name, text in pb.spec.outputs.items():
            try:
                outputs[name] = templating.render_value(text, ctx)
            except templating.TemplateProblem as exc:
                outputs[name] = {"error": str(exc)}
        record.outputs = redacted(outputs, rt.settings)
    except Exception as exc:
        record.outputs = {"error": str(exc)}
    if record.phase == "steps":
        skip_unreached(run, "aborted", str(record.error or status))
    first = record.finished_seq is None  # a finished run rolled back later finishes again
    record.status, record.finished_at, record.finished_seq = status, run.now_iso(), run.tick()
    if run.holds_lease():
        record.lease = None  # given back in the write that finishes it: a finished run is never seen held
    run.save()
    run.audit("playbook.run_finished", {"status": status, "error": record.error}, dry_run=bool(record.dry_run))
    run.publish("run_finished")
    if first:
        _observe(record)
    return Next("done")


def _observe(run: Run) -> None:
    """Count the finished run in the Prometheus metrics; never fails the run."""
    try:
        from soar import metrics_prom

        metrics_prom.observe_run(run.to_doc())
    except Exception as exc:  # a metrics problem must never stop a containment
        log.warning("run %s: metrics not recorded: %s", run.id, exc)
