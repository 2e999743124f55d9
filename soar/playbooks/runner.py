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
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from soar.actions import ActionContext, ActionResult
from soar.alerts import utcnow_iso
from soar.playbooks import events, guards, planner, templating
from soar.playbooks.locks import Locks, open_locks
from soar.playbooks.model import Playbook, Step
from soar.playbooks.records import APPROVALS, RUNS, TERMINAL, audit, redacted
from soar.playbooks.runtime import Runtime
from soar.policy import GATED_IMPACTS, Decision, StepFacts, decide
from soar.store import Conflict, Record

log = logging.getLogger("soar.playbooks.runner")

LEASE_MARGIN = 5.0
MAX_OUTPUT = 64 * 1024
MAX_INTERRUPTIONS = 3
INSTANCE_DONE = ("succeeded", "failed", "refused", "denied", "expired", "interrupted", "skipped")


@dataclass(frozen=True)
class Next:
    """What the caller should do after one advance."""

    kind: Literal["continue", "retry", "paused", "done", "busy"]
    delay: float = 0.0


class _Run:
    """The run document held under its lease; every save is an optimistic write."""

    def __init__(self, rt: Runtime, rec: Record, owner: str) -> None:
        self.rt = rt
        self.doc = rec.doc
        self.version = rec.version
        self.owner = owner

    @property
    def id(self) -> str:
        return str(self.doc["id"])

    def save(self) -> None:
        self.doc["updated_at"] = utcnow_iso()
        self.version = self.rt.store.update(RUNS, self.id, self.doc, version=self.version).version

    def extend_lease(self, seconds: float) -> None:
        self.doc["lease"] = {"owner": self.owner, "until": time.time() + seconds}

    def publish(self, event_type: events.EventType, **extra: Any) -> None:
        events.publish(self.rt.settings, self.id, events.make_event(event_type, self.doc, **extra))


def _truncate(text: str) -> str:
    return text if len(text) <= MAX_OUTPUT else text[:MAX_OUTPUT] + f"\n[... {len(text) - MAX_OUTPUT} bytes cut]"


def call_with_timeout(func: Callable[[], ActionResult], timeout: float) -> ActionResult:
    """Run an action in a thread; past the timeout the step fails (the thread is left to finish)."""
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
        return ActionResult.failure(f"timed out after {timeout:g}s")
    outcome = box[0]
    if isinstance(outcome, BaseException):
        return ActionResult.failure(f"action raised {type(outcome).__name__}: {outcome}")
    if not isinstance(outcome, ActionResult):
        return ActionResult.failure(f"action returned {type(outcome).__name__}, not an ActionResult")
    return outcome


def advance(rt: Runtime, run_id: str, owner: str | None = None) -> Next:
    """One step of progress on a run. Safe to call from any number of workers at once."""
    owner = owner or uuid.uuid4().hex
    rec = rt.store.get(RUNS, run_id)
    if rec is None:
        from soar.errors import InputError

        raise InputError(f"no run {run_id!r}")
    doc = rec.doc
    if doc["status"] in TERMINAL:
        return Next("done")
    lease = doc.get("lease")
    if lease and float(lease["until"]) > time.time() and lease["owner"] != owner:
        return Next("busy")
    doc["lease"] = {"owner": owner, "until": time.time() + 30}
    try:
        rec = rt.store.update(RUNS, run_id, doc, version=rec.version)
    except Conflict:
        return Next("busy")
    run = _Run(rt, rec, owner)
    locks = open_locks(rt.settings, rt.store)
    try:
        nxt = _advance(run, locks)
    except Exception as exc:  # a bug or a lost store must still leave a record, never a silent half-run
        log.exception("run %s: engine error", run_id)
        nxt = _fail_run(run, f"engine error: {type(exc).__name__}: {exc}")
    _release_lease(run)
    return nxt


def _release_lease(run: _Run) -> None:
    for _ in range(10):
        if (run.doc.get("lease") or {}).get("owner") == run.owner:
            run.doc["lease"] = None
        try:
            run.save()
            return
        except Conflict:
            rec = run.rt.store.get(RUNS, run.id)
            if rec is None:
                return
            run.doc, run.version = rec.doc, rec.version


def _fail_run(run: _Run, error: str) -> Next:
    rec = run.rt.store.get(RUNS, run.id)
    if rec is not None:
        run.doc, run.version = rec.doc, rec.version
    run.doc["error"] = error
    return _finish(run, "failed")


def _section(run: _Run, pb: Playbook) -> list[dict[str, Any]]:
    if run.doc["phase"] == "steps":
        return [{"id": s.id, "explicit": True} for s in pb.spec.steps]
    return list(run.doc["rollback"]["steps"])


def _results_context(run: _Run) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for sid, step in run.doc["steps"].items():
        results = [i.get("result") for i in step.get("instances", [])]
        out[sid] = {"status": step["status"], "result": results if step.get("for_each") else (results or [None])[0]}
    return out


def _advance(run: _Run, locks: Locks) -> Next:
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
        if step_rec["status"] in ("succeeded", "skipped", "failed"):
            if step_rec["status"] == "failed" and not _on_failure(run, pb, entry, step_rec):
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


def _expand(run: _Run, pb: Playbook, entry: dict[str, Any]) -> dict[str, Any]:
    rt = run.rt
    step = _step_of(pb, entry)
    uses = step.uses if step else entry["uses"]
    rec: dict[str, Any] = {
        "id": entry["id"],
        "uses": uses,
        "phase": run.doc["phase"],
        "for_each": bool(step and step.for_each is not None),
        "on_failure": step.on_failure if step else "continue",
        "status": "pending",
        "instances": [],
        "error": None,
        "started_at": utcnow_iso(),
        "finished_at": None,
    }
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
    if exp.error:
        rec.update(status="failed", error=exp.error, finished_at=utcnow_iso())
        audit(rt.store, rt.settings, "playbook.step_failed", run.id, {"step": entry["id"], "error": exp.error})
        run.publish("step_finished", step={"id": entry["id"], "uses": uses, "status": "failed", "summary": exp.error})
    elif exp.skipped:
        rec.update(status="skipped", error=None, skip_reason=exp.reason, finished_at=utcnow_iso())
    else:
        rec["status"] = "in_progress"
        rec["instances"] = [
            {
                **i.to_dict(),
                "params": redacted(i.params, rt.settings),
                "_params": i.params,
                "status": "pending",
                "decision": None,
                "approval_id": None,
                "quota": [],
                "attempts": [],
                "interruptions": 0,
                "result": None,
            }
            for i in exp.instances
        ]
    return rec


def _work_on_step(
    run: _Run, pb: Playbook, entry: dict[str, Any], step_rec: dict[str, Any], locks: Locks
) -> Next | None:
    step = _step_of(pb, entry)
    for inst in step_rec["instances"]:
        if inst["status"] in INSTANCE_DONE:
            continue
        return _work_on_instance(run, step, step_rec, inst, locks)
    statuses = {i["status"] for i in step_rec["instances"]}
    bad = sorted(statuses - {"succeeded", "skipped"})
    step_rec["status"] = "failed" if bad else "succeeded"
    if bad:
        step_rec["error"] = "; ".join(
            f"{i['key']}: {i['status']}: {i.get('error') or ''}".rstrip(": ")
            for i in step_rec["instances"]
            if i["status"] not in ("succeeded", "skipped")
        )
    step_rec["finished_at"] = utcnow_iso()
    run.save()
    return None


def _decide(run: _Run, step: Step | None, step_rec: dict[str, Any], inst: dict[str, Any]) -> Decision:
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
    run: _Run, step: Step | None, step_rec: dict[str, Any], inst: dict[str, Any], locks: Locks
) -> Next:
    rt = run.rt
    summary = {"id": inst["key"], "uses": step_rec["uses"]}
    if inst["status"] == "pending":
        d = _decide(run, step, step_rec, inst)
        inst["decision"] = d.to_dict()
        if d.outcome == "refuse":
            inst.update(status="refused", error="refused by policy: " + "; ".join(d.reasons))
            audit(rt.store, rt.settings, "policy.refused", run.id, {"step": inst["key"], "reasons": list(d.reasons)})
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
            audit(rt.store, rt.settings, "playbook.step_interrupted", run.id, {"step": inst["key"]})
            run.save()
            return Next("continue")
        inst["status"] = "ready"
    return _execute(run, step, step_rec, inst, locks)


def _request_approval(run: _Run, inst: dict[str, Any], d: Decision, summary: dict[str, Any]) -> Next:
    rt = run.rt
    approval_id = f"{run.id}.{inst['key']}"
    expires = time.time() + d.timeout
    doc = {
        "id": approval_id,
        "run_id": run.id,
        "step": inst["key"],
        "step_id": inst["key"].split("[")[0],
        "required": d.approvals,
        "roles": list(d.roles),
        "reasons": list(d.reasons),
        "status": "pending",
        "approvers": [],
        "denials": [],
        "requested_at": utcnow_iso(),
        "expires_at": expires,
        "expires_at_iso": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires)),
        "params": inst["params"],
        "playbook": run.doc["playbook"]["name"],
    }
    rt.store.create(APPROVALS, approval_id, doc)
    inst.update(status="waiting_approval", approval_id=approval_id)
    run.doc["status"] = "waiting_approval"
    run.save()
    audit(rt.store, rt.settings, "approval.requested", run.id, {"step": inst["key"], "reasons": list(d.reasons)})
    run.publish(
        "approval_requested",
        step={**summary, "status": "waiting_approval", "summary": "; ".join(d.reasons)},
        approval={
            "step": inst["key"],
            "required": d.approvals,
            "roles": list(d.roles),
            "approvers": [],
            "expires_at": doc["expires_at_iso"],
        },
    )
    return Next("paused", delay=d.timeout)


def _check_approval(run: _Run, inst: dict[str, Any]) -> Next | None:
    rec = run.rt.store.get(APPROVALS, inst["approval_id"])
    if rec is None:
        inst.update(status="failed", error="approval record missing")
        return None
    a = rec.doc
    if a["status"] == "pending" and float(a["expires_at"]) <= time.time():
        from soar.playbooks.approvals import expire

        a = expire(run.rt.settings, run.rt.store, inst["approval_id"]) or a
    if a["status"] == "pending":
        run.doc["status"] = "waiting_approval"
        return Next("paused", delay=max(0.0, float(a["expires_at"]) - time.time()))
    run.doc["status"] = "running"
    inst["approval"] = {k: a[k] for k in ("status", "approvers", "denials", "required")}
    if a["status"] == "approved":
        inst["status"] = "ready"
    elif a["status"] == "denied":
        who = ", ".join(d["approver"] for d in a["denials"])
        inst.update(status="denied", error=f"denied by {who}")
    else:
        inst.update(status="expired", error="approval expired")
    if inst["status"] != "ready" and inst.get("quota"):
        guards.release(run.rt.store, inst["quota"])
        inst["quota"] = []
    return None


def _execute(run: _Run, step: Step | None, step_rec: dict[str, Any], inst: dict[str, Any], locks: Locks) -> Next:
    rt = run.rt
    action = rt.registry.get(step_rec["uses"])
    timeout = step.timeout if step else 60.0
    lock_keys = [t["key"] for t in inst["targets"] if t["kind"] in ("host", "account", "ip", "process")]
    if action.spec.impact == "notify":
        lock_keys = []
    if lock_keys and not locks.acquire(lock_keys, run.id, timeout + LEASE_MARGIN + 30):
        run.doc["status"] = "waiting_lock"
        run.save()
        return Next("retry", delay=0.5)
    try:
        n = len(inst["attempts"]) + 1
        attempt: dict[str, Any] = {"n": n, "status": "running", "started_at": utcnow_iso(), "worker": run.owner}
        inst["attempts"].append(attempt)
        inst["status"] = "running"
        run.doc["status"] = "running"
        run.extend_lease(timeout + LEASE_MARGIN)
        run.save()  # the crash marker: from here a lost worker is noticed by the next lease holder
        summary = {"id": inst["key"], "uses": action.spec.name}
        run.publish("step_started", step={**summary, "status": "running", "attempt": n})
        ctx = ActionContext(
            settings=rt.settings, dry_run=False, run_id=run.id, step_id=inst["key"], resources=rt.resources
        )
        t0 = time.monotonic()
        result = call_with_timeout(lambda: action.call(ctx, inst["_params"]), timeout)
        elapsed = time.monotonic() - t0
    finally:
        if lock_keys:
            locks.release(lock_keys, run.id)
    secrets_safe = redacted(
        {"stdout": _truncate(result.stdout), "stderr": _truncate(result.stderr), "error": result.error}, rt.settings
    )
    attempt.update(
        status="succeeded" if result.ok else "failed",
        finished_at=utcnow_iso(),
        duration_ms=round(elapsed * 1000, 2),
        exit_status=result.exit_status,
        **secrets_safe,
    )
    rdict = result.to_dict()
    rdict.update(stdout=secrets_safe["stdout"], stderr=secrets_safe["stderr"], error=secrets_safe["error"])
    inst["result"] = redacted(rdict, rt.settings)
    gated = action.spec.impact in GATED_IMPACTS
    if gated and guards.record_outcome(rt.store, rt.policy, action.spec.name, result.ok):
        audit(rt.store, rt.settings, "policy.circuit_open", action.spec.name, {"run": run.id, "step": inst["key"]})
        run.publish(
            "step_finished",
            step={**summary, "status": "failed", "summary": f"circuit breaker opened: {action.spec.name} paused"},
        )
    if result.ok:
        inst["status"] = "succeeded"
        inst["error"] = None
        if gated:
            run.doc["contained_targets"] = sorted(
                set(run.doc["contained_targets"]) | {t["key"] for t in inst["targets"]}
            )
    elif step is not None and n <= step.retry.count and not result.output.get("refused"):
        inst["status"] = "ready"
        inst["error"] = secrets_safe["error"]
        run.save()
        run.publish("step_finished", step={**summary, "status": "retrying", "summary": secrets_safe["error"]})
        return Next("retry", delay=step.retry.backoff * (2 ** (n - 1)))
    else:
        inst["status"] = "failed"
        inst["error"] = secrets_safe["error"] or "failed"
    run.save()
    if gated or action.spec.impact == "destructive":
        audit(
            rt.store,
            rt.settings,
            "playbook.step_finished",
            run.id,
            {"step": inst["key"], "action": action.spec.name, "ok": result.ok, "params": inst["params"]},
        )
    run.publish(
        "step_finished",
        step={**summary, "status": inst["status"], "summary": inst["error"] or _summary(result)},
    )
    if result.verified is not None:
        run.publish("verification", step={**summary, "status": inst["status"], "verified": result.verified})
    return Next("continue")


def _summary(result: ActionResult) -> str:
    if result.verified is True:
        return "done, verified"
    return "done" if result.changed is not False else "done (no change needed)"


def _on_failure(run: _Run, pb: Playbook, entry: dict[str, Any], step_rec: dict[str, Any]) -> bool:
    """Apply on_failure; True to move on to the next step."""
    if run.doc["phase"] == "rollback" or step_rec["on_failure"] == "continue":
        run.doc.setdefault("failed_steps", [])
        if step_rec["id"] not in run.doc["failed_steps"]:
            run.doc["failed_steps"].append(step_rec["id"])
        return True
    if step_rec["on_failure"] == "abort":
        run.doc["error"] = f"step {step_rec['id']} failed: {step_rec.get('error')}"
        _finish(run, "failed")
        return False
    _start_rollback(run, pb, f"step {step_rec['id']} failed: {step_rec.get('error')}")
    return False


def _start_rollback(run: _Run, pb: Playbook, reason: str) -> None:
    rt = run.rt
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
                if inst["status"] == "succeeded" and revert:
                    key = "revert_" + inst["key"].replace("[", "_").replace("]", "")
                    entries.append({"id": key, "explicit": False, "uses": revert, "params": inst["_params"]})
    run.doc.update(phase="rollback", cursor=0, status="running", finished_at=None)
    run.doc["rollback"] = {"reason": reason, "steps": entries}
    run.save()
    audit(rt.store, rt.settings, "playbook.rollback", run.id, {"reason": reason, "steps": [e["id"] for e in entries]})
    run.publish("rollback", step={"id": None, "uses": None, "status": "rollback", "summary": reason})


def request_rollback(rt: Runtime, run_id: str, *, actor: str, reason: str = "") -> dict[str, Any]:
    """Undo a finished run: its playbook's rollback steps, else the revert of every completed step.

    The run re-opens in its rollback phase; the caller makes it progress (``dispatch.kick``).
    """
    from soar.errors import InputError

    rec = rt.store.get(RUNS, run_id)
    if rec is None:
        raise InputError(f"no run {run_id!r}")
    doc = rec.doc
    if doc["status"] not in ("succeeded", "failed") or doc["phase"] == "rollback":
        state = doc["status"] if doc["phase"] == "steps" else f"{doc['status']} (its rollback already ran)"
        raise InputError(f"run {run_id} is {state}: only a finished run that was not rolled back can be rolled back")
    run = _Run(rt, rec, owner=uuid.uuid4().hex)
    why = f"requested by {actor}" + (f": {reason}" if reason else "")
    try:
        _start_rollback(run, rt.run_playbook(doc), why)
    except Conflict:
        raise InputError(f"run {run_id} changed while the rollback was requested; try again") from None
    audit(rt.store, rt.settings, "playbook.rollback_requested", run_id, {"actor": actor, "reason": reason})
    return run.doc


def _end_of_section(run: _Run, pb: Playbook) -> Next:
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


def _finish(run: _Run, status: str) -> Next:
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
    run.doc.update(status=status, finished_at=utcnow_iso())
    run.save()
    audit(rt.store, rt.settings, "playbook.run_finished", run.id, {"status": status, "error": run.doc.get("error")})
    run.publish("run_finished")
    return Next("done")
