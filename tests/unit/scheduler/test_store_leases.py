"""Leases in the state store (eager mode, no Redis): schedulers sharing a store share the rules (#21 item 2)."""

from __future__ import annotations

import threading
from pathlib import Path

from soar.clock import FakeClock
from soar.config import load_settings
from soar.scheduler.loop import LEASES_KIND, StoreLeases
from soar.store.sqlite import SQLiteStore
from tests.unit.scheduler.test_bookkeeping import FixedRules, _rule


def test_one_holder_until_it_gives_back_or_its_lease_runs_out(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.sqlite3")
    clock = FakeClock(1000.0)
    a, b = StoreLeases(lambda: store, clock=clock), StoreLeases(lambda: store, clock=clock)
    assert a.claim("r1", 10) and not b.claim("r1", 10)
    assert a.claim("r1", 10)  # its own: renewed
    b.release(["r1"])  # not b's to give back
    assert not b.claim("r1", 10)
    a.release(["r1"])
    assert b.claim("r1", 10) and not a.claim("r1", 10)
    clock.advance(11)  # b died holding it: the lease runs out
    assert a.claim("r1", 10)
    lease = store.get(LEASES_KIND, "r1")
    assert lease is not None and lease.doc["holder"] == a.holder and lease.doc["until"] == clock.now() + 10


def test_of_many_concurrent_claimers_exactly_one_wins(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    stores = [SQLiteStore(path) for _ in range(8)]
    leases = [StoreLeases(lambda s=s: s) for s in stores]  # type: ignore[misc]
    start = threading.Barrier(len(leases))
    won: list[bool] = [False] * len(leases)

    def claim(i: int) -> None:
        start.wait()
        won[i] = leases[i].claim("rule", 30)

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(len(leases))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert won.count(True) == 1


def test_two_eager_schedulers_on_one_store_send_each_due_rule_once(tmp_path: Path) -> None:
    """What MemoryLeases could not do: two processes' schedulers, each with its own leases, on one SQLite store."""
    settings = load_settings(content_root=tmp_path, state_dir=tmp_path / "state", celery_eager=True)
    clock = FakeClock(1_000_000.0)
    sent: list[list[str]] = [[], []]
    schedulers = []
    for n in range(2):
        store = SQLiteStore(tmp_path / "state.sqlite3")
        sched = FixedRules(settings, store, StoreLeases(lambda s=store: s), sent[n].extend, clock=clock)
        sched.fixed = tuple(_rule(i, interval=60) for i in range(30))
        schedulers.append(sched)
    for sched in schedulers:
        sched.tick()
    assert len(sent[0]) + len(sent[1]) == 30 and not set(sent[0]) & set(sent[1])
