"""``soar scheduler``: every tick, send the rules that are due to the workers, together.

The scheduler keeps no state of its own: what is due comes from the checkpoints in the
store, so it can be killed and restarted at any moment, and several can run at once.
A short lease per rule (Redis ``SET NX`` with a TTL, released by the worker when the run
ends) keeps two schedulers from sending the same rule twice; if a worker dies, the lease
expires and the rule is sent again — the checkpoint it did not move makes the next run
search the same window. In embedded mode (eager dispatch, :mod:`soar.dispatch`) runs happen in-process.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from soar import metrics_prom as metrics
from soar.clock import SYSTEM, Clock
from soar.config import Settings
from soar.dispatch import Task
from soar.liveness import Dependency, Heartbeat
from soar.scheduler.loading import load_scheduled_rules
from soar.scheduler.planning import index_phase, is_due, phase
from soar.scheduler.rules import ScheduledRule, rule_state
from soar.scheduler.state import ALL_CHECKPOINTS_LIMIT, Checkpoints, all_checkpoints
from soar.store import Store

log = logging.getLogger(__name__)

RUN_RULES = Task.RUN_RULES  # what the scheduler sends: one task per tick's due rules
LEASE_PREFIX = "soar:detect:lease:"
CHECKPOINT_REREAD = 10.0  # seconds a tick may decide on checkpoints read earlier (see Scheduler._checkpoints)


class Leases(Protocol):
    def claim(self, rule_id: str, ttl: float) -> bool: ...

    def release(self, rule_ids: Sequence[str]) -> None: ...


class MemoryLeases:
    """Leases for one process (embedded mode)."""

    def __init__(self, clock: Clock = SYSTEM) -> None:
        self._until: dict[str, float] = {}
        self._clock = clock
        self._lock = threading.Lock()

    def claim(self, rule_id: str, ttl: float) -> bool:
        now = self._clock.now()
        with self._lock:
            if self._until.get(rule_id, 0.0) > now:
                return False
            self._until[rule_id] = now + ttl
            return True

    def release(self, rule_ids: Sequence[str]) -> None:
        with self._lock:
            for rule_id in rule_ids:
                self._until.pop(rule_id, None)


class RedisLeases:
    """Leases shared by every scheduler and worker on one Redis."""

    def __init__(self, client: object) -> None:
        self._r = client

    def claim(self, rule_id: str, ttl: float) -> bool:
        return bool(self._r.set(LEASE_PREFIX + rule_id, "1", nx=True, px=int(ttl * 1000)))  # type: ignore[attr-defined]

    def release(self, rule_ids: Sequence[str]) -> None:
        if rule_ids:
            self._r.delete(*(LEASE_PREFIX + r for r in rule_ids))  # type: ignore[attr-defined]


LEASES_KIND = "detect_leases"


class StoreLeases:
    """Leases in the state store, for deployments without Redis (eager mode): schedulers sharing a store share the
    rules as they do over Redis. A lease is a document per rule (holder, until: wall-clock seconds) changed under
    optimistic concurrency (``Store.mutate``): of two claimers, one wins; a lease past its ``until`` is free."""

    GROUP = "scheduler-tick"  # the one lease :meth:`claim_many` takes for all the rules of a tick

    def __init__(self, store: Callable[[], Store], clock: Clock = SYSTEM) -> None:
        self._store = store  # opened on first use: a scheduler may start while its store is down
        self._clock = clock
        self.holder = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._held: set[str] = set()  # leases this holder took: only these are given back (no request otherwise)

    def claim_many(self, rule_ids: Sequence[str], ttl: float) -> list[str]:
        """All of a tick's due rules under one lease, or none: a store round trip per tick, not two per rule
        (on the Elasticsearch store, 1,000 rules' leases cost 4,000 requests a cycle). Schedulers sharing the
        store still send each due rule once: one of them holds the tick's lease until its cycle ends."""
        return list(rule_ids) if rule_ids and self.claim(self.GROUP, ttl) else []

    def claim(self, rule_id: str, ttl: float) -> bool:
        now = self._clock.now()
        won = False

        def take(doc: dict[str, Any]) -> dict[str, Any] | None:
            nonlocal won
            won = False
            if float(doc.get("until", 0.0)) > now and doc.get("holder") != self.holder:
                return None  # someone else's, still running
            won = True
            return {"holder": self.holder, "until": now + ttl}

        self._store().mutate(LEASES_KIND, rule_id, take, create=lambda: {"holder": "", "until": 0.0})
        if won:
            self._held.add(rule_id)
        return won

    def release(self, rule_ids: Sequence[str]) -> None:
        """Give back these rules' leases, and the tick's lease they were claimed under, if this holder took them."""

        def give_back(doc: dict[str, Any]) -> dict[str, Any] | None:
            return {**doc, "until": 0.0} if doc.get("holder") == self.holder else None

        for rule_id in [*rule_ids, self.GROUP]:
            if rule_id in self._held:
                self._held.discard(rule_id)
                self._store().mutate(LEASES_KIND, rule_id, give_back)


def lease_ttl(rule: ScheduledRule) -> float:
    """How long a sent rule stays claimed: long enough for a slow cycle, short enough to recover from a kill."""
    return max(10.0, 2 * rule.interval)


@dataclass
class Chore:
    """Housekeeping the long-lived scheduler does every ``interval`` seconds besides sending rules."""

    name: str
    interval: float
    run: Callable[[], object]
    last: float = field(default=float("-inf"))

    def run_if_due(self, now: float) -> None:
        if 0 <= now - self.last < self.interval:  # (a wall clock set back makes it due, not late by the jump)
            return
        self.last = now
        try:
            self.run()
        except Exception as exc:  # a chore never stops detection; it is tried again next interval
            log.warning("scheduler chore %s failed: %s", self.name, exc)


class Scheduler:
    """Decides what is due and sends it; ``send`` receives the due rule ids of one tick."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        leases: Leases,
        send: Callable[[list[str]], None],
        *,
        clock: Clock = SYSTEM,
        ttl: Callable[[ScheduledRule], float] = lease_ttl,
        chores: Sequence[Chore] = (),
        heartbeat: Heartbeat | None = None,
    ) -> None:
        self.settings = settings
        self.chores = list(chores)
        self.heartbeat = heartbeat
        # what a failing tick depends on (the store, Redis): one line when it goes down, one when it is back
        self.dependencies = Dependency("the scheduler's store and queue")
        self.store = store
        self.leases = leases
        self.send = send
        self.clock = clock
        self.ttl = ttl
        self._reported_errors: set[str] = set()
        self._ruleset_hash: str | None = None
        self._config_hash: str | None = None
        self._invalid = 0  # rules that did not load, at the last look
        self._cached: Checkpoints | None = None
        self._cached_at = float("-inf")
        self._cached_ruleset: str | None = None
        self.ticks = 0  # ticks done, failed or not (what a test of a black-holed dependency counts)
        self.due_checkpoints: Checkpoints | None = None  # of the rules sent by the last tick, with their versions

    def rules(self) -> list[ScheduledRule]:
        rules, errors = load_scheduled_rules(self.settings)
        self._invalid = len(errors)
        for err in errors:
            if str(err) not in self._reported_errors:
                self._reported_errors.add(str(err))
                log.error("rule not scheduled: %s", err)
        self._audit_ruleset(rules, len(errors))
        self._audit_config()
        return rules

    def _audit_config(self) -> None:
        """Record the effective configuration (secrets masked) and the policy file, once per change."""
        policy = self.settings.policy_path
        try:
            policy_sha = hashlib.sha256(policy.read_bytes()).hexdigest()
        except OSError:
            policy_sha = None
        settings_sha = hashlib.sha256(
            json.dumps(self.settings.masked(), sort_keys=True, default=str).encode()
        ).hexdigest()
        digest = f"{settings_sha}:{policy_sha}"
        if digest == self._config_hash:
            return
        from soar.audit import record

        record(
            self.store,
            actor="automation:scheduler",
            action="config.loaded" if self._config_hash is None else "config.changed",
            target=str(policy),
            details={"settings_sha256": settings_sha, "policy_sha256": policy_sha},
            settings=self.settings,
        )
        self._config_hash = digest

    def _audit_ruleset(self, rules: Sequence[ScheduledRule], errors: int) -> None:
        """Record in the audit log which rule set this scheduler runs, once per change of it."""
        digest = hashlib.sha256(
            "\n".join(sorted(f"{r.id}:{r.content_hash}:{r.enabled}" for r in rules)).encode()
        ).hexdigest()
        if digest == self._ruleset_hash:
            return
        from soar.audit import record

        record(
            self.store,
            actor="automation:scheduler",
            action="rules.loaded",
            target=f"ruleset:{digest[:16]}",
            details={"sha256": digest, "rules": len(rules), "enabled": sum(r.enabled for r in rules), "errors": errors},
            settings=self.settings,
        )
        self._ruleset_hash = digest

    def _offset(self, rule: ScheduledRule) -> float:
        """Where in its interval a rule runs: its own phase, or with ``detection_path: fetch`` its index's
        (the rules of an index run in one cycle, which reads the index once for all of them)."""
        return index_phase(rule) if self.settings.detection_path == "fetch" else phase(rule)

    def _checkpoints(self, rules: Sequence[ScheduledRule], now: float) -> Checkpoints:
        """The stored checkpoints, read again only when they could say something new.

        Runs only postpone a rule, so checkpoints read earlier cannot hide a due rule: the store is read when
        a rule looks due by them (and that is confirmed on fresh ones), when the rule set changed, and at
        least every CHECKPOINT_REREAD seconds (a checkpoint reset by hand, the rule-state gauges).
        """
        cached, digest = self._cached, self._ruleset_hash
        fresh = (
            cached is None
            or now - self._cached_at >= CHECKPOINT_REREAD
            or digest != self._cached_ruleset
            or any(is_due(r, cached.get(r.id), now, self._offset(r)) for r in rules)
        )
        if fresh or cached is None:
            cached = all_checkpoints(self.store)
            self._cached, self._cached_at, self._cached_ruleset = cached, now, digest
        return cached

    def tick(self) -> list[str]:
        """Send every due rule whose lease this scheduler wins; returns their ids."""
        now = self.clock.now()
        rules = self.rules()
        checkpoints = self._checkpoints(rules, now)
        metrics.set_rule_states({r.id: rule_state(r, checkpoints.get(r.id)) for r in rules}, self._invalid)
        candidates = [r for r in rules if is_due(r, checkpoints.get(r.id), now, self._offset(r))]
        claim_many = getattr(self.leases, "claim_many", None)
        if claim_many is not None and candidates:
            due = list(claim_many([r.id for r in candidates], max(self.ttl(r) for r in candidates)))
        else:
            due = [r.id for r in candidates if self.leases.claim(r.id, self.ttl(r))]
        if due:
            self._cached = None  # the runs move these checkpoints: read them again next tick
            # Due rules were found on checkpoints read in this tick (a cached read shows none due).
            # (Past all_checkpoints' limit a missing one may exist: the cycle reads them itself then.)
            complete = len(checkpoints) < ALL_CHECKPOINTS_LIMIT
            self.due_checkpoints = checkpoints.subset(due) if complete else None
            self.send(due)
        return due

    def run_forever(self, stop: threading.Event, tick_seconds: float = 1.0) -> None:
        if self.chores:  # on their own thread: a chore that hangs (Slack, a black-holed store) never delays a tick
            threading.Thread(target=self._run_chores, args=(stop, tick_seconds), name="chores", daemon=True).start()
        while not stop.is_set():
            started = self.clock.now()
            try:
                self.tick()
            except Exception as exc:  # a failed tick (store or Redis down) is retried next tick, said once
                self.dependencies.failed(exc)
            else:
                self.dependencies.ok()
            self.ticks += 1
            if self.heartbeat is not None:
                self.heartbeat.beat(ready=self.dependencies.up, dependencies=[self.dependencies])
            elapsed = max(0.0, self.clock.now() - started)  # never negative, whatever the wall clock did
            stop.wait(max(0.0, tick_seconds - elapsed))  # a wait ``stop`` cuts short

    def _run_chores(self, stop: threading.Event, tick_seconds: float) -> None:
        while not stop.wait(tick_seconds):
            if self.dependencies.up:  # chores need the same store: not while it is down
                for chore in self.chores:
                    chore.run_if_due(self.clock.now())
