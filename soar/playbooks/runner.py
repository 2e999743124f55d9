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
from datetime import datetime
from typing import Any

from soar.alerts import utcnow_iso
from soar.playbooks import guards, outcomes, parallel, planner, templating
from soar.playbooks.execute import execute, lock_keys
from soar.playbooks.locks import Locks, open_locks
from soar.playbooks.model import Playbook, Step
from soar.playbooks.records import APPROVALS, RUNS, TERMINAL, redacted
from soar.playbooks.rollback import skip_unreached, start_rollback
from soar.playbooks.runtime import Runtime
from soar.playbooks.state import HeldRun, Next
from soar.policy import GATED_IMPACTS, Decision, StepFacts, decide
from soar.records import Approval, Instance, Run, StepResult
from soar.store import Conflict

__all__ = ["Next", "advance"]

log = logging.getLogger("soar.playbooks.runner")

MAX_INTERRUPTIONS = 3
ADMITTED = ("ready", "running", "waiting_approval")
INSTANCE_DONE = ("succeeded", "failed", "refused", "denied", "expired", "interrupted", "skipped")


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
    if stored.held_by_other(owner, time.time()):
        return Next("busy")
    doc = rec.doc
    doc["lease"] = {"owner": owner, "until": time.time() + 30}
    try:
        rec = rt.store.update(RUNS, run_id, doc, version=rec.version)
    except Conflict:
        return Next("busy")
    run = HeldRun(rt, rec, owner)
    locks = open_locks(rt.settings, rt.store)
    try:
        nxt = _advance(run, locks)
    except Exception as exc:
        if _lease_lost(run):  # our lease ran out mid-attempt and another worker holds the run: it is theirs
            log.warning("run %s: lease lost to another worker (%s); standing down", run_id, exc)
            return Next("busy")
        log.exception("run %s: engine error", run_id)  # a bug or a lost store must still leave a record
        nxt = _fail_run(run, f"engine error: {type(exc).__name__}: {exc}")
    _release_lease(run)
    if nxt.kind == "paused" and _decided_meanwhile(run):
        return Next("continue")  # its kick found the run still held (busy) and was dropped
    return nxt


def _decided_meanwhile(run: HeldRun) -> bool:
    """Whether an approval the run pauses for was decided while we held it (looked at after letting go)."""
    waiting = [
        inst["approval_id"]
        for step in run.doc["steps"].values()
        for inst in step.get("instances", [])
        if inst["status"] == "waiting_approval" and inst.get("approval_id")
    ]
    return any(
        (rec := run.rt.store.get(APPROVALS, a)) is not None and Approval.from_doc(rec.doc, a).status != "pending"
        for a in waiting
    )


def _lease_lost(run: HeldRun) -> bool:
    """Whether the stored run is no longer ours (taken over, or finished and given back by its new holder)."""
    try:
        rec = run.rt.store.get(RUNS, run.id)
    except Exception:  # the store is gone: nobody else can have it either
        return False
    return rec is not None and (rec.doc.get("lease") or {}).get("owner") != run.owner


def _release_lease(run: HeldRun) -> None:
    """Save the run without our lease; if it changed meanwhile, give the lease back on the stored run."""
    if (run.doc.get("lease") or {}).get("owner") == run.owner:
        run.doc["lease"] = None
    try:
        run.save()
        return
    except Conflict:
        pass

    def release(doc: dict[str, Any]) -> dict[str, Any] | None:
        if (doc.get("lease") or {}).get("owner") != run.owner:
            return None  # not ours any more: a write here could break its new holder's next save
        return {**doc, "lease": None, "updated_at": utcnow_iso()}

    with suppress(Conflict):
        rec = run.rt.store.mutate(RUNS, run.id, release, retries=9)
        if rec is not None:
            run.doc, run.version = rec.doc, rec.version


def _fail_run(run: HeldRun, error: str) -> Next:
    rec = run.rt.store.get(RUNS, run.id)
    if rec is not None:
        run.doc, run.version = rec.doc, rec.version
    run.doc["error"] = error
    return _finish(run, "failed")


def _section(run: HeldRun, pb: Playbook) -> list[dict[str, Any]]:
    if run.doc["phase"] == "steps":
        return [{"id": s.id, "explicit": True} for s in pb.spec.steps]
    return list(run.doc["rollback"]["steps"])


def _results_context(run: HeldRun) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for sid, step in run.doc["steps"].items():
        results = [i.get("result") for i in step.get("instances", [])]
        out[sid] = {"status": step["status"], "result": results if step.get("for_each") else (results or [None])[0]}
    return out


def _advance(run: HeldRun, locks: Locks) -> Next:
    pb = run.rt.run_playbook(run.doc)
    while True:
        entries = _section(run, pb)
        cursor = int(run.doc["cursor"])
        if cursor >= len(entries):
            return _end_of_section(run, pb)
        entry = entries[cursor]
        step_rec = run.doc["steps"].get(entry["id"])
        if step_rec is None:
            step_rec = _expand(run, pb, entry)
            run.save()
        if step_rec["status"] in ("succeeded", "skipped", "failed", "denied"):
            if step_rec["status"] in ("failed", "denied") and not _on_failure(run, pb, entry, step_rec):
                if run.doc["status"] in TERMINAL:
                    return Next("done")
                continue  # the rollback phase has begun
            run.doc["cursor"] = cursor + 1
            run.save()
            continue
        nxt = _work_on_step(run, pb, entry, step_rec, locks)
        if nxt is not None:
            return nxt


def _step_of(pb: Playbook, entry: dict[str, Any]) -> Step | None:
    return pb.step(entry["id"]) if entry.get("explicit") else None


def _expand(run: HeldRun, pb: Playbook, entry: dict[str, Any]) -> dict[str, Any]:
    rt = run.rt
    step = _step_of(pb, entry)
    uses = step.uses if step else entry["uses"]
    rec = StepResult(
        id=entry["id"],
        status="pending",
        uses=uses,
        phase=run.doc["phase"],
        for_each=bool(step and step.for_each is not None),
        on_failure=step.on_failure if step else "continue",
        dry_run=run.dry_run,
        started_at=utcnow_iso(),
        started_seq=run.tick(),
    ).to_doc()
    run.doc["steps"][entry["id"]] = rec
    if step is not None:
        ctx = planner.context(run.doc["alert"], run.doc.get("inputs", pb.spec.inputs), _results_context(run))
        exp = planner.expand(step, ctx, rt.registry, rt.inventory)
    else:
        try:
            inst = planner.literal_instance(entry["id"], entry["params"], rt.registry, uses, rt.inventory)
            exp = planner.Expansion(instances=[inst])
        except Exception as exc:
            exp = planner.Expansion(error=f"step {entry['id']}: {exc}")
    summary = {"id": entry["id"], "uses": uses, "dry_run": rec["dry_run"]}
    if exp.error:
        rec.update(status="failed", error=exp.error, finished_at=utcnow_iso(), finished_seq=run.tick())
        run.audit("playbook.step_failed", {"step": entry["id"], "error": exp.error})
        run.publish("step_finished", step={**summary, "status": "failed", "summary": exp.error})
    elif exp.skipped:
        rec.update(status="skipped", error=None, skip_reason=exp.reason, finished_at=utcnow_iso())
        rec["finished_seq"] = run.tick()
        run.publish("step_finished", step={**summary, "status": "skipped", "summary": exp.reason})
    else:
        rec["status"] = "in_progress"
        rec["instances"] = [
            Instance(
                key=i.key,
                status="pending",
                params=redacted(i.params, rt.settings),
                targets=i.to_dict()["targets"],
                item=i.item,
                dry_run=rec["dry_run"],
                extra={"_params": i.params},  # what the action is called with: never leaves the engine
            ).to_doc()
            for i in exp.instances
        ]
    return rec


def _work_on_step(
    run: HeldRun, pb: Playbook, entry: dict[str, Any], step_rec: dict[str, Any], locks: Locks
) -> Next | None:
    step = _step_of(pb, entry)
    todo = [i for i in step_rec["instances"] if i["status"] not in INSTANCE_DONE]
    if len(todo) > 1 and (wide := _width(run, step, step_rec)) > 1:
        return _work_on_batch(run, step, step_rec, todo, locks, wide)
    for inst in todo:
        return _work_on_instance(run, step, step_rec, inst, locks)
    statuses = {i["status"] for i in step_rec["instances"]}
    bad = sorted(statuses - {"succeeded", "skipped"})
    # A denial is a decision, not a fault: the step is ``denied`` (naming who) and on_failure says what follows.
    step_rec["status"] = ("denied" if bad == ["denied"] else "failed") if bad else "succeeded"
    if bad == ["denied"]:
        step_rec["denied_by"] = [
            {k: d.get(k) for k in ("approver", "role", "via", "slack_user", "at") if d.get(k)}
            for i in step_rec["instances"]
            for d in (i.get("approval") or {}).get("denials", [])
        ]
    if bad:
        step_rec["error"] = "; ".join(
            (i.get("error") or "denied")
            if bad == ["denied"] and len(step_rec["instances"]) == 1
            else f"{i['key']}: {i['status']}: {i.get('error') or ''}".rstrip(": ")
            for i in step_rec["instances"]
            if i["status"] not in ("succeeded", "skipped")
        )
    attempted = [i for i in step_rec["instances"] if i.get("attempts")]
    if attempted:  # what the step did is what its attempts did (the setting can force a dry run mid-run)
        step_rec["dry_run"] = all(outcomes.planned_only(i) for i in attempted)
    step_rec["finished_at"] = utcnow_iso()
    step_rec["finished_seq"] = run.tick()
    run.save()
    return None


def _width(run: HeldRun, step: Step | None, step_rec: dict[str, Any]) -> int:
    """How many instances go at once. A containment step starts with a canary batch no wider than the
    circuit breaker's threshold: an action broken everywhere opens the breaker having touched that many
    hosts, not max_parallel; once one instance has succeeded, the step goes full width."""
    wide = parallel.width(step, run.rt.settings.playbook_max_parallel)
    gated = run.rt.registry.get(step_rec["uses"]).spec.impact in GATED_IMPACTS
    proven = any(i["status"] == "succeeded" for i in step_rec["instances"])
    if gated and step_rec["phase"] == "steps" and not proven:
        return parallel.canary_width(wide, run.rt.policy.circuit_breaker.failures_in_a_row)
    return wide


def _admitted(step_rec: dict[str, Any], inst: dict[str, Any]) -> set[str]:
    """Targets of the step's other instances admitted but not yet finished (a parallel batch, an approval
    pending): the blast radius counts them, so a wide for_each cannot pass the limit before any ran."""
    return {
        t["key"]
        for other in step_rec["instances"]
        if other is not inst and other["status"] in ADMITTED
        for t in other["targets"]
    }


def _decide(run: HeldRun, step: Step | None, step_rec: dict[str, Any], inst: dict[str, Any]) -> Decision:
    rt = run.rt
    action = rt.registry.get(step_rec["uses"])
    impact = action.spec.impact
    targets = [planner.target_from_dict(t) for t in inst["targets"]]
    if step_rec["phase"] == "rollback":
        facts = StepFacts(action=action.spec.name, impact=impact, targets=targets)
        d = decide(rt.policy, facts)
        return d if d.outcome == "refuse" else Decision("allow", ("rollback of an allowed step",))
    gated = impact in GATED_IMPACTS
    contained = set(run.doc["contained_targets"])
    if gated and not run.dry_run:  # like contained_targets: a planned containment contains nothing
        contained |= _admitted(step_rec, inst)
    new_keys = {t.key for t in targets} if gated else set()
    rate_capped = None
    if gated and step_rec["phase"] == "steps":
        slots, rate_capped = guards.reserve_containment(rt.store, rt.policy, run.doc.get("rule_id"), run.id)
        inst["quota"] = slots
    facts = StepFacts(
        action=action.spec.name,
        impact=impact,
        targets=targets,
        requested=step.approval if step else None,
        run_targets=len(contained | new_keys),
        breaker_open=gated and guards.breaker_open(rt.store, action.spec.name),
        rate_capped=rate_capped,
    )
    d = decide(rt.policy, facts)
    if d.outcome == "refuse" and inst["quota"]:
        guards.release(rt.store, inst["quota"])
        inst["quota"] = []
    return d


def _work_on_instance(
    run: HeldRun, step: Step | None, step_rec: dict[str, Any], inst: dict[str, Any], locks: Locks
) -> Next:
    nxt = _prepare(run, step, step_rec, inst)
    return nxt if nxt is not None else execute(run, step, step_rec, inst, locks)


def _work_on_batch(
    run: HeldRun,
    step: Step | None,
    step_rec: dict[str, Any],
    todo: list[dict[str, Any]],
    locks: Locks,
    wide: int,
) -> Next:
    """Decide instances in order (each decision counts the ones admitted before it) until ``wide`` are
    ready, then run those at once. Instances waiting for an approval are passed over; the run pauses for
    them once nothing else is left to run."""
    action = run.rt.registry.get(step_rec["uses"])
    batch: list[dict[str, Any]] = []
    busy: set[str] = set()  # the target locks of the batch: one actor per target, within a run too
    paused: list[Next] = []
    later: list[Next] = []  # instances still inside their retry backoff
    for inst in todo:
        keys = set(lock_keys(action, inst))
        if len(batch) >= wide or keys & busy:
            break
        if inst["status"] == "ready" and (wait := _backoff_left(step, inst)) > 0:
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
        run.doc["status"] = "waiting_approval"
        run.save()
        return min(paused, key=lambda nxt: nxt.delay)
    return Next("continue")


def _backoff_left(step: Step | None, inst: dict[str, Any]) -> float:
    """Seconds before a failed attempt may be retried (its backoff, counted from when it finished)."""
    last = inst["attempts"][-1] if inst["attempts"] else None
    if step is None or last is None or last.get("status") != "failed" or not last.get("finished_at"):
        return 0.0
    backoff = step.retry.backoff * 2.0 ** (int(last["n"]) - 1)
    finished = datetime.fromisoformat(last["finished_at"]).timestamp()
    return max(0.0, finished + backoff - time.time())


def _prepare(run: HeldRun, step: Step | None, step_rec: dict[str, Any], inst: dict[str, Any]) -> Next | None:
    """Bring an instance to ``ready`` (None: execute it) or say why not (refused, waiting, interrupted, ...)."""
    rt = run.rt
    summary = {"id": inst["key"], "uses": step_rec["uses"], "dry_run": bool(inst.get("dry_run"))}
    if inst["status"] == "pending":
        d = _decide(run, step, step_rec, inst)
        inst["decision"] = d.to_dict()
        if d.outcome == "refuse":
            inst.update(status="refused", error="refused by policy: " + "; ".join(d.reasons))
            run.tick()
            run.audit("policy.refused", {"step": inst["key"], "reasons": list(d.reasons)})
            run.save()
            run.publish("step_finished", step={**summary, "status": "refused", "summary": inst["error"]})
            return Next("continue")
        if d.outcome == "approve":
            return _request_approval(run, inst, d, summary)
        inst["status"] = "ready"
    if inst["status"] == "waiting_approval":
        nxt = _check_approval(run, inst)
        if nxt is not None:
            return nxt
        if inst["status"] != "ready":
            run.save()
            run.publish("step_finished", step={**summary, "status": inst["status"], "summary": inst.get("error")})
            return Next("continue")
    if inst["status"] == "running":  # the previous holder of the lease died mid-attempt
        action = rt.registry.get(step_rec["uses"])
        last = inst["attempts"][-1] if inst["attempts"] else None
        if last is not None:
            last.update(status="interrupted", finished_at=utcnow_iso(), error="worker lost during the attempt")
        inst["interruptions"] = int(inst.get("interruptions", 0)) + 1
        if not action.spec.idempotent or inst["interruptions"] > MAX_INTERRUPTIONS:
            why = "not idempotent" if not action.spec.idempotent else "interrupted too often"
            inst.update(status="interrupted", error=f"worker lost mid-step; {why}, so it is not repeated")
            run.tick()
            run.audit("playbook.step_interrupted", {"step": inst["key"]})
            run.save()
            return Next("continue")
        inst["status"] = "ready"
    return None


def _request_approval(run: HeldRun, inst: dict[str, Any], d: Decision, summary: dict[str, Any]) -> Next:
    rt = run.rt
    approval_id = f"{run.id}.{inst['key']}"
    expires = time.time() + d.timeout
    request = Approval(
        id=approval_id,
        run_id=run.id,
        step=inst["key"],
        step_id=inst["key"].split("[")[0],
        status="pending",
        expires_at=expires,
        required=d.approvals,
        roles=list(d.roles),
        reasons=list(d.reasons),
        requested_at=utcnow_iso(),
        expires_at_iso=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires)),
        params=inst["params"],
        playbook=run.doc["playbook"]["name"],
        dry_run=bool(inst.get("dry_run")),
        run_seq=run.tick(),
    )
    rt.store.create(APPROVALS, approval_id, request.to_doc())
    inst.update(status="waiting_approval", approval_id=approval_id)
    run.doc["status"] = "waiting_approval"
    run.save()
    run.audit("approval.requested", {"step": inst["key"], "reasons": list(d.reasons)})
    run.publish(
        "approval_requested",
        step={**summary, "status": "waiting_approval", "summary": "; ".join(d.reasons)},
        approval={
            "step": inst["key"],
            "required": d.approvals,
            "roles": list(d.roles),
            "approvers": [],
            "expires_at": request.expires_at_iso,
        },
    )
    return Next("paused", delay=d.timeout)


def _check_approval(run: HeldRun, inst: dict[str, Any]) -> Next | None:
    rec = run.rt.store.get(APPROVALS, inst["approval_id"])
    if rec is None:
        inst.update(status="failed", error="approval record missing")
        return None
    a = Approval.from_doc(rec.doc, rec.id)
    if a.expired_by(time.time()):
        from soar.playbooks.approvals import expire

        a = expire(run.rt.settings, run.rt.store, a.id) or a
    if a.status == "pending":
        run.doc["status"] = "waiting_approval"
        return Next("paused", delay=max(0.0, a.expires_at - time.time()))
    run.doc["status"] = "running"
    snapshot = a.to_doc()
    inst["approval"] = {k: snapshot[k] for k in ("status", "approvers", "denials", "required")}
    if a.status == "approved":
        inst["status"] = "ready"
    elif a.status == "denied":
        inst.update(status="denied", error="denied by " + ", ".join(v.who for v in a.denials))
    else:
        inst.update(status="expired", error="approval expired")
    if inst["status"] != "ready" and inst.get("quota"):
        guards.release(run.rt.store, inst["quota"])
        inst["quota"] = []
    return None


def _on_failure(run: HeldRun, pb: Playbook, entry: dict[str, Any], step_rec: dict[str, Any]) -> bool:
    """Apply on_failure to a failed or denied step; True to move on to the next step.

    Under ``continue`` a denied step is listed in ``denied_steps`` (the run can still succeed:
    the on-call decided, nothing broke); a failed one in ``failed_steps`` (the run ends failed).
    """
    denied = step_rec["status"] == "denied"
    if run.doc["phase"] == "rollback" or step_rec["on_failure"] == "continue":
        listed = run.doc.setdefault("denied_steps" if denied else "failed_steps", [])
        if step_rec["id"] not in listed:
            listed.append(step_rec["id"])
        return True
    why = (
        f"step {step_rec['id']} {step_rec.get('error')}"
        if denied
        else f"step {step_rec['id']} failed: {step_rec.get('error')}"
    )
    if step_rec["on_failure"] == "abort":
        run.doc["error"] = why
        _finish(run, "failed")
        return False
    start_rollback(run, pb, why)
    return False


def _end_of_section(run: HeldRun, pb: Playbook) -> Next:
    if run.doc["phase"] == "rollback":
        failed = [
            sid for sid in run.doc.get("failed_steps", []) if sid in {e["id"] for e in run.doc["rollback"]["steps"]}
        ]
        if failed:
            run.doc["error"] = f"rollback incomplete: {', '.join(failed)} failed"
            return _finish(run, "failed")
        return _finish(run, "rolled_back")
    failed = run.doc.get("failed_steps") or []
    if failed:
        run.doc["error"] = f"steps failed: {', '.join(failed)}"
        return _finish(run, "failed")
    return _finish(run, "succeeded")


def _finish(run: HeldRun, status: str) -> Next:
    rt = run.rt
    try:
        pb = rt.run_playbook(run.doc)
        ctx = planner.context(run.doc["alert"], run.doc.get("inputs", pb.spec.inputs), _results_context(run))
        outputs: dict[str, Any] = {}
        for name, text in pb.spec.outputs.items():
            try:
                outputs[name] = templating.render_value(text, ctx)
            except templating.TemplateProblem as exc:
                outputs[name] = {"error": str(exc)}
        run.doc["outputs"] = redacted(outputs, rt.settings)
    except Exception as exc:
        run.doc["outputs"] = {"error": str(exc)}
    if run.doc["phase"] == "steps":
        skip_unreached(run, "aborted", str(run.doc.get("error") or status))
    first = run.doc.get("finished_seq") is None  # a finished run rolled back later finishes again
    run.doc.update(status=status, finished_at=utcnow_iso(), finished_seq=run.tick())
    if (run.doc.get("lease") or {}).get("owner") == run.owner:
        run.doc["lease"] = None  # given back in the write that finishes it: a finished run is never seen held
    run.save()
    details = {"status": status, "error": run.doc.get("error")}
    run.audit("playbook.run_finished", details, dry_run=bool(run.doc.get("dry_run")))
    run.publish("run_finished")
    if first:
        _observe(run.doc)
    return Next("done")


def _observe(doc: dict[str, Any]) -> None:
    """Count the finished run in the Prometheus metrics; never fails the run."""
    try:
        from soar import metrics_prom

        metrics_prom.observe_run(doc)
    except Exception as exc:  # a metrics problem must never stop a containment
        log.warning("run %s: metrics not recorded: %s", doc.get("id"), exc)
