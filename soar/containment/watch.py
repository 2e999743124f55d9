"""The containment watch: every containment in force is proven again on a schedule, and a drift is an event.

:func:`watch_pass` is a scheduler chore (``soar/scheduler/service.py``): it finds the containments whose
``next_check`` has come, claims each under a lease in the store (one watcher at a time, whatever the
number of schedulers; a lost worker's lease runs out and the next pass claims it again) and sends
``soar.containment.check`` through the dispatch port. :func:`check` (that task's body) runs the
containment's ``verify`` action — the same verification that proved it first — then
:func:`decide` (pure) says what the policy makes of it and :func:`check` performs it: the record, the
audit entry, a run event (an important reply in the run's Slack thread), an alert of its own
(``soar.containment_drifted``, ``soar.containment_escalated``: playbooks trigger on them) and, by
policy, the repair: the containment's own action again, with the parameters and approvals of its run.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from soar.actions.model import ActionContext, ActionResult
from soar.actions.registry import ActionRegistry, load_registry
from soar.alerts import RISK_SCORE, Alert, RuleRef, fingerprint, utcnow_iso
from soar.config import Settings
from soar.containment import ledger
from soar.dispatch import Dispatcher, Task, dispatcher_for
from soar.errors import RecordError
from soar.policy import ContainmentWatch
from soar.records.containment import KIND, Check, CheckOutcome, Containment
from soar.records.run import KIND as RUNS
from soar.records.run import Instance, Lease, Run
from soar.store import Range, Store

log = logging.getLogger("soar.containment")

ACTOR = "automation:containment-watch"
DRIFTED_RULE = "soar.containment_drifted"
ESCALATED_RULE = "soar.containment_escalated"
PASS_LIMIT = 500  # containments claimed by one pass; the rest are due again at the next
_registries: dict[int, ActionRegistry] = {}
_connections: dict[int, tuple[tuple[str, int | None], dict[str, Any]]] = {}
_connections_lock = threading.Lock()

Action = Literal["none", "repair", "ask", "escalate"]


def lease_seconds(settings: Settings) -> float:
    """Long enough for a check and a repair over SSH (each retried on an unreachable host), short enough to recover."""
    return max(120.0, 4 * settings.ssh_connect_timeout + 3 * settings.ssh_command_timeout)


def claim(store: Store, cid: str, holder: str, ttl: float, now: float) -> bool:
    """Take the containment's lease if it is due, in force and nobody else's; True when this holder has it."""
    won = [False]

    def take(doc: dict[str, Any]) -> dict[str, Any] | None:
        won[0] = False
        rec = Containment.from_doc(doc, cid)
        if rec.state != "in_force" or rec.next_check > now or rec.held_by_other(holder, now):
            return None
        rec.lease = Lease(holder, now + ttl)
        won[0] = True
        return rec.to_doc()

    store.mutate(KIND, cid, take)
    return won[0]


def watch_pass(settings: Settings, store: Store, dispatcher: Dispatcher, now: float | None = None) -> list[str]:
    """Claim every due containment and send its check; returns the ids sent."""
    now = time.time() if now is None else now
    holder = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    due = store.find(KIND, {"state": "in_force", "next_check": Range(lte=now)}, order_by="next_check", limit=PASS_LIMIT)
    sent = []
    for rec in due:
        if claim(store, rec.id, holder, lease_seconds(settings), now):
            dispatcher.send(Task.CHECK_CONTAINMENT, [rec.id, holder], queue=settings.response_queue)
            sent.append(rec.id)
    return sent


@dataclass(frozen=True)
class Seen:
    """What one look found: the outcome and the lines saying why."""

    outcome: CheckOutcome
    found: tuple[str, ...] = ()
    boot_id: str | None = None


def seen(rec: Containment, result: ActionResult) -> Seen:
    """Read a verify action's result (docs/hosts.md): held, unreachable (no verdict) or drifted, and a reboot."""
    boot = result.output.get("boot_id")
    rebooted = bool(boot and rec.boot_id and boot != rec.boot_id)
    reboot_line = [f"host rebooted (boot id {rec.boot_id} -> {boot})"] if rebooted else []
    if result.output.get("unreachable"):
        return Seen("unreachable", (f"management path did not answer: {result.error}",))
    if result.ok and result.verified:
        # a reboot the containment survived (persisted, re-applied at boot) is noted, not a drift
        return Seen("held", tuple(line + "; the containment came back at boot" for line in reboot_line), boot)
    found = [str(f) for f in result.output.get("found") or []] or [result.error or "verification failed"]
    return Seen("drifted", (*reboot_line, *found), boot)


def decide(policy: ContainmentWatch, rec: Containment, look: Seen) -> Action:
    """What the policy makes of a look (pure)."""
    if look.outcome == "unreachable":
        # once, when the run of unanswered looks reaches the limit
        return "escalate" if rec.unreachable_in_a_row + 1 == policy.escalate_unreachable_after else "none"
    if look.outcome != "drifted" or rec.last_outcome == "drifted":
        return "none"  # held; or still drifted since a look that already told (asked, escalated)
    if rec.repairs >= policy.max_repairs:
        return "escalate"
    return "ask" if policy.on_drift == "ask" else "repair"


def _instance(store: Store, rec: Containment) -> Instance | None:
    """The run's step instance that applied the containment, as its engine kept it."""
    stored = store.get(RUNS, rec.run_id)
    try:
        run = None if stored is None else Run.from_doc(stored.doc, rec.run_id)
    except RecordError as exc:  # an unreadable run must not stop the watch: it acts on what the ledger shows
        log.warning("containment %s: %s; using the parameters shown", rec.id, exc)
        return None
    for step in run.steps.values() if run is not None else ():
        for inst in step.instances:
            if inst.key == rec.step:
                return inst
    return None


def _unredacted_params(store: Store, rec: Containment) -> dict[str, Any]:
    """The parameters the run's engine kept for the step instance (``Instance.call_params``), else those shown."""
    inst = _instance(store, rec)
    if inst is not None and inst.call_params is not None:
        return dict(inst.call_params)
    return dict(rec.params)


def _lock_keys(store: Store, rec: Containment) -> list[str]:
    """The target locks the applying step took (``host:web-01``): a repair takes the same ones."""
    inst = _instance(store, rec)
    keys = sorted(inst.target_keys) if inst is not None else []
    return keys or ([f"host:{rec.host}"] if rec.host else [])


def connections(settings: Settings) -> dict[str, Any]:
    """The SSH connections this process's looks share (``ActionContext.resources``), for as long as the inventory
    file is unchanged: a look proves the management path with a *new* connection anyway (its banner), so the
    logins are not repeated for every look of every containment. An edited inventory starts a new set."""
    path = settings.inventory_path
    try:
        stamp = path.stat().st_mtime_ns
    except OSError:
        stamp = None
    with _connections_lock:
        current = _connections.get(id(settings))
        if current is not None and current[0] == (str(path), stamp):
            return current[1]
    close_connections(settings)
    with _connections_lock:
        return _connections.setdefault(id(settings), ((str(path), stamp), {}))[1]


def close_connections(settings: Settings | None = None) -> None:
    """Close the looks' shared connections (of these settings, or all)."""
    with _connections_lock:
        keys = [k for k in _connections if settings is None or k == id(settings)]
        dropped = [_connections.pop(k)[1] for k in keys]
    for resources in dropped:
        for resource in resources.values():
            close = getattr(resource, "close", None)
            if callable(close):
                close()


def registry_for(settings: Settings) -> ActionRegistry:
    """The actions, loaded once per settings in a process (a worker checks many containments)."""
    key = id(settings)
    if key not in _registries:
        _registries[key] = load_registry(settings)
    return _registries[key]


def _call(
    settings: Settings, rec: Containment, name: str, params: Mapping[str, Any], resources: dict[str, Any]
) -> ActionResult:
    action = registry_for(settings).get(name)
    own = {k: v for k, v in params.items() if k in action.params.model_fields}
    ctx = ActionContext(settings=settings, run_id=rec.run_id, step_id=rec.step, resources=resources)
    try:
        return action.call(ctx, own)
    except Exception as exc:  # a broken integration is a failed look, not a dead watch
        return ActionResult.failure(f"{name} raised {type(exc).__name__}: {exc}")


def check(settings: Settings, store: Store, cid: str, holder: str, now: float | None = None) -> Containment | None:
    """One look at one containment under this holder's lease (the task ``soar.containment.check``)."""
    from soar.policy import load_policy

    got = store.get(KIND, cid)
    if got is None:
        return None
    rec = Containment.from_doc(got.doc, cid)
    start = time.time() if now is None else now
    if rec.state != "in_force" or rec.lease is None or rec.lease.owner != holder:
        return rec  # released meanwhile, or another holder's now
    if rec.expires_ts is not None and start >= rec.expires_ts:
        ledger.released(store, settings, cid, "expired")  # its own timer lifted it: not a drift
        return Containment.from_doc(store.get(KIND, cid).doc, cid)  # type: ignore[union-attr]
    params = _unredacted_params(store, rec)
    resources = connections(settings)
    try:
        t0 = time.monotonic()
        look = seen(rec, _call(settings, rec, rec.verify, params, resources))
        took = round((time.monotonic() - t0) * 1000, 2)
        policy = load_policy(settings.policy_path).containment_watch
        action = decide(policy, rec, look)
        checks = [Check(utcnow_iso(), look.outcome, list(look.found), decision=action, duration_ms=took)]
        if action == "repair":
            repair = _guarded_repair(settings, store, rec, holder, params, resources)
            if repair is not None:
                checks.append(repair)
                if repair.outcome == "repair_failed":
                    action = "escalate"
    except BaseException:
        close_connections(settings)  # a look that failed oddly leaves no connection half used
        raise
    rec = _save(store, settings, cid, holder, checks, look, escalate=action == "escalate", now=start)
    _tell(settings, store, rec, look, checks, action)
    return rec


def _still_held_by(store: Store, cid: str, holder: str) -> bool:
    got = store.get(KIND, cid)
    rec = None if got is None else Containment.from_doc(got.doc, cid)
    return rec is not None and rec.state == "in_force" and rec.lease is not None and rec.lease.owner == holder


def _guarded_repair(
    settings: Settings,
    store: Store,
    rec: Containment,
    holder: str,
    params: Mapping[str, Any],
    resources: dict[str, Any],
) -> Check | None:
    """The repair as the engine would run the step: under the targets' locks (a run acting on the host, a
    release among them, goes first; a release is recorded before its lock is given back, so it is seen here),
    not while the action's circuit breaker is open, and its outcome counted by the breaker. None: released
    meanwhile, nothing to repair. Rate caps are not taken: a repair restores what is already in force."""
    from soar.playbooks import guards
    from soar.playbooks.locks import open_locks
    from soar.policy import load_policy

    now = time.time()
    if guards.breaker_open(store, rec.action, now):
        return Check(at=utcnow_iso(), outcome="repair_failed", found=[f"circuit breaker open for {rec.action}"])
    locks = open_locks(settings, store)
    keys = _lock_keys(store, rec)
    owner = f"containment-watch:{rec.id}"
    if keys and not locks.acquire(keys, owner, lease_seconds(settings)):
        return Check(
            at=utcnow_iso(), outcome="repair_failed", found=[f"{', '.join(keys)} locked by a run acting on it"]
        )
    try:
        if not _still_held_by(store, rec.id, holder):  # released (or reclaimed) while it looked
            return None
        check = _repair(settings, rec, params, resources)
    finally:
        if keys:
            locks.release(keys, owner)
    guards.record_outcome(store, load_policy(settings.policy_path), rec.action, check.outcome == "repaired", now)
    return check


def _repair(settings: Settings, rec: Containment, params: Mapping[str, Any], resources: dict[str, Any]) -> Check:
    """The containment's own action again, with its run's parameters (the approvals its run was given cover it)."""
    t0 = time.monotonic()
    result = _call(settings, rec, rec.action, params, resources)
    took = round((time.monotonic() - t0) * 1000, 2)
    if result.ok and result.verified:
        return Check(
            at=utcnow_iso(), outcome="repaired", found=[f"re-applied {rec.action}, verified"], duration_ms=took
        )
    return Check(at=utcnow_iso(), outcome="repair_failed", found=[result.error or "not verified"], duration_ms=took)


def _save(
    store: Store,
    settings: Settings,
    cid: str,
    holder: str,
    checks: list[Check],
    look: Seen,
    *,
    escalate: bool,
    now: float,
) -> Containment:
    def change(doc: dict[str, Any]) -> dict[str, Any] | None:
        rec = Containment.from_doc(doc, cid)
        if rec.lease is None or rec.lease.owner != holder:
            return None  # released (or reclaimed) while this look ran: it no longer speaks for the containment
        for c in checks:
            rec.add(c)
        if look.boot_id:
            rec.boot_id = look.boot_id
        rec.escalated = rec.escalated or escalate
        rec.lease = None
        rec.next_check = ledger.next_check(settings, rec.interval, now)
        return rec.to_doc()

    saved = store.mutate(KIND, cid, change)
    assert saved is not None
    return Containment.from_doc(saved.doc, cid)


def _tell(settings: Settings, store: Store, rec: Containment, look: Seen, checks: list[Check], action: Action) -> None:
    """Audit, run events (the Slack thread) and alerts for what a look found; a held look says nothing."""
    from soar.audit import record

    base = {"containment": rec.id, "run": rec.run_id, "step": rec.step, "action": rec.action, "host": rec.host}
    if look.outcome == "held":
        if look.found:  # a reboot survived
            record(
                store,
                actor=ACTOR,
                action="containment.rebooted",
                target=rec.id,
                details={**base, "found": list(look.found)},
                settings=settings,
            )
        return
    if look.outcome == "unreachable":
        record(
            store,
            actor=ACTOR,
            action="containment.unreachable",
            target=rec.id,
            details={**base, "found": list(look.found), "in_a_row": rec.unreachable_in_a_row},
            settings=settings,
        )
    else:
        record(
            store,
            actor=ACTOR,
            action="containment.drifted",
            target=rec.id,
            details={**base, "found": list(look.found), "decision": action},
            settings=settings,
        )
        if action == "none":
            return  # still drifted since a look that told the on-call
        what = {
            "repair": "re-applying now",
            "ask": "not re-applied: policy asks a person (alert raised)",
            "escalate": "escalated",
            "none": "",
        }[action]
        ledger.publish(settings, store, rec, "containment_drifted", "; ".join(look.found) + f" — {what}")
        _raise(settings, store, rec, DRIFTED_RULE, "high", list(look.found), n=rec.drifts, decision=action)
    for c in checks[1:]:
        verb = "containment.repaired" if c.outcome == "repaired" else "containment.repair_failed"
        record(store, actor=ACTOR, action=verb, target=rec.id, details={**base, "found": c.found}, settings=settings)
        if c.outcome == "repaired":
            ledger.publish(
                settings, store, rec, "containment_repaired", "; ".join(c.found) + f" (repair {rec.repairs})"
            )
    if action == "escalate":
        why = (
            f"{rec.unreachable_in_a_row} looks in a row without an answer on the management path"
            if look.outcome == "unreachable"
            else f"drifted after {rec.repairs} repairs"
            if checks[-1].outcome != "repair_failed"
            else f"repair failed: {'; '.join(checks[-1].found)}"
        )
        record(
            store,
            actor=ACTOR,
            action="containment.escalated",
            target=rec.id,
            details={**base, "why": why},
            settings=settings,
        )
        ledger.publish(settings, store, rec, "containment_escalated", why)
        _raise(settings, store, rec, ESCALATED_RULE, "critical", [why, *look.found], n=rec.checks, decision=action)


def _brief(rec: Containment) -> dict[str, Any]:
    return {
        "id": rec.id,
        "action": rec.action,
        "host": rec.host,
        "checks": rec.checks,
        "drifts": rec.drifts,
        "repairs": rec.repairs,
        "escalated": rec.escalated,
    }


def _raise(
    settings: Settings,
    store: Store,
    rec: Containment,
    rule_id: str,
    level: Any,
    found: list[str],
    n: int,
    decision: Action,
) -> None:
    """An alert of the watch's own (exactly once per drift: its id is the containment and the drift's number).

    ``containment.decision`` says what the policy made of it: a playbook triggered where it is ``ask`` re-applies
    under the approval policy (its verified step counts as the repair)."""
    title = {DRIFTED_RULE: "Containment drifted", ESCALATED_RULE: "Containment escalated"}[rule_id]
    entities: dict[str, Any] = {"host": {"name": rec.host}} if rec.host else {}
    if rec.params.get("user"):
        entities["user"] = {"name": rec.params["user"]}
    if rec.params.get("ip"):
        entities["source"] = {"ip": rec.params["ip"]}
    alert = Alert.model_validate(
        {
            "id": fingerprint(rule_id, rec.id, n),
            "@timestamp": utcnow_iso(),
            "rule": RuleRef(id=rule_id, title=title, level=level, tags=["soar.containment"]),
            "severity": level,
            "risk_score": RISK_SCORE[level],
            "containment": {
                **_brief(rec),
                "run_id": rec.run_id,
                "step": rec.step,
                "found": found,
                "decision": decision,
            },
            **entities,
        }
    ).to_doc()
    if store.create("alerts", alert["id"], alert):  # handed to the playbook engine as detection hands its own
        dispatcher_for(settings, store).send(Task.HANDLE_ALERT, [alert["id"]], queue=settings.response_queue)
