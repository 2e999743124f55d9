"""What the scheduler asks its store: checkpoints only when they could say something new, alerts once settled.

On the Elasticsearch store every read is a refresh and a search, so these are the requests that grow with
the ticks and the look-back overlap rather than with what happened (issue #19).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from soar.clock import FakeClock
from soar.config import load_settings
from soar.scheduler.alerting import SETTLED, Draft, commit
from soar.scheduler.loop import CHECKPOINT_REREAD, MemoryLeases, Scheduler
from soar.scheduler.planning import index_phase, iso, phase
from soar.scheduler.rules import ScheduledRule
from soar.store.sqlite import SQLiteStore


class CountingStore(SQLiteStore):
    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.calls: list[str] = []

    def find(self, kind: str, *args: Any, **kwargs: Any) -> Any:
        self.calls.append(f"find {kind}")
        return super().find(kind, *args, **kwargs)

    def get(self, kind: str, id: str) -> Any:
        self.calls.append(f"get {kind}")
        return super().get(kind, id)

    def insert(self, kind: str, id: str, doc: Any) -> Any:
        self.calls.append(f"insert {kind}")
        return super().insert(kind, id, doc)

    def update(self, kind: str, id: str, doc: Any, *, version: str) -> Any:
        self.calls.append(f"update {kind}")
        return super().update(kind, id, doc, version=version)


def _rule(n: int, index: str = "logs", interval: float = 5) -> ScheduledRule:
    return ScheduledRule(
        id=f"rule-{n}", title=f"r{n}", level="high", tags=(), index=index, interval=interval, lookback=10,
        max_alerts=10, content_hash="h", source="x:1", query={"match_all": {}},
    )  # fmt: skip


class FixedRules(Scheduler):
    fixed: tuple[ScheduledRule, ...] = ()

    def rules(self) -> list[ScheduledRule]:
        self._ruleset_hash = "fixed"
        return list(self.fixed)


def test_idle_ticks_do_not_read_the_checkpoints_again(tmp_path: Path) -> None:
    store = CountingStore(tmp_path / "s.sqlite3")
    clock = FakeClock(1_000_000.0)
    settings = load_settings(content_root=tmp_path, state_dir=tmp_path / "state", celery_eager=True)
    sent: list[list[str]] = []
    leases = MemoryLeases()
    sched = FixedRules(settings, store, leases, sent.append, clock=clock)
    sched.fixed = tuple(_rule(n, interval=60) for n in range(20))
    assert len(sched.tick()) == 20  # never run: all due (read once)

    def ran(at: float) -> None:
        store.put_many("checkpoints", {i: {"rule_id": i, "last_run_at": iso(at)} for ids in sent for i in ids})
        for ids in sent:
            leases.release(ids)  # as a worker does when its run ends
        sent.clear()

    ran(clock.now())
    reads = store.calls.count("find checkpoints")
    clock.advance(0.5)
    assert sched.tick() == [] and store.calls.count("find checkpoints") == reads + 1  # after a send: read again
    for _ in range(3):
        clock.advance(0.01)
        assert sched.tick() == []
    assert store.calls.count("find checkpoints") == reads + 1  # nothing could be due: no read
    clock.advance(60)  # every rule's next slot has come: the cached checkpoints say so, the fresh ones confirm it
    assert len(sched.tick()) == 20 and store.calls.count("find checkpoints") == reads + 2
    ran(clock.now())
    clock.advance(0.5)
    sched.tick()
    reads = store.calls.count("find checkpoints")
    store.delete("checkpoints", "rule-3")  # reset by hand: seen within CHECKPOINT_REREAD
    clock.advance(CHECKPOINT_REREAD)
    assert sched.tick() == ["rule-3"] and store.calls.count("find checkpoints") == reads + 1
    store.close()


def test_fetch_path_runs_the_rules_of_an_index_together() -> None:
    rules = [_rule(n) for n in range(50)] + [_rule(n, "other") for n in range(50, 60)]
    assert len({phase(r) for r in rules}) == 60  # spread, one phase per rule
    assert len({index_phase(r) for r in rules}) == 2  # aligned: one per index


def test_an_alert_seen_again_costs_no_request_once_settled(tmp_path: Path) -> None:
    store = CountingStore(tmp_path / "s.sqlite3")
    draft = Draft({"id": "a1", "rule": {"id": "r"}}, ("e1",), (1.0,))
    handed: list[str] = []
    assert commit(store, draft, handed.append).created
    assert store.calls == ["insert alerts", "update alerts"]  # created, then marked dispatched with its version
    assert (store, "a1") in SETTLED
    store.calls.clear()
    assert not commit(store, draft, handed.append).created
    assert store.calls == [] and handed == ["a1"]  # the look-back overlap found it again: nothing asked
    other = CountingStore(tmp_path / "t.sqlite3")  # another store knows nothing of it
    assert (other, "a1") not in SETTLED
    # An alert another writer created but did not hand off is handed off (then settled).
    other.create("alerts", "a2", {"id": "a2", "dispatched": False})
    assert not commit(other, Draft({"id": "a2"}, ("e2",), ()), handed.append).created
    assert handed == ["a1", "a2"] and (other, "a2") in SETTLED
    # A suppressed alert (events are added to it) is never settled.
    group = Draft({"id": "g1", "group": {"key": {}}}, ("e3",), ())
    commit(other, group, handed.append)
    assert (other, "g1") not in SETTLED
    store.close()
    other.close()


def test_store_leases_take_a_tick_under_one_lease(tmp_path: Path) -> None:
    """A tick's due rules are claimed with one lease document (not two store round trips per rule)."""
    from soar.scheduler.loop import LEASES_KIND, StoreLeases

    store = CountingStore(tmp_path / "s.sqlite3")
    clock = FakeClock(1000.0)
    a, b = StoreLeases(lambda: store, clock=clock), StoreLeases(lambda: store, clock=clock)
    ids = [f"r{n}" for n in range(500)]
    assert a.claim_many(ids, 10) == ids and b.claim_many(ids, 10) == []
    assert store.count(LEASES_KIND) == 1
    store.calls.clear()
    b.release(ids)  # holds nothing: asks nothing
    assert store.calls == []
    a.release(ids)
    assert b.claim_many(ids[:3], 10) == ids[:3]
    store.close()
