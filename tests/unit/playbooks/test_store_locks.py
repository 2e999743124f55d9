"""Target locks on the store (eager mode): one holder at a time, taken over only once run out."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from soar.playbooks.locks import LOCKS, StoreLocks
from soar.store.sqlite import SQLiteStore


def test_a_lock_is_held_by_one_owner_renewed_by_it_and_taken_over_once_run_out(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "state.sqlite3")
    locks = StoreLocks(store)
    assert locks.acquire(["host:a", "host:b"], "run-1", ttl=60)
    assert not locks.acquire(["host:b", "host:c"], "run-2", ttl=60)
    assert store.get(LOCKS, "host:c") is None  # an acquire that fails gives back what it took
    assert locks.acquire(["host:a"], "run-1", ttl=60)  # its own lock: renewed
    store.put(LOCKS, "host:a", {"owner": "run-1", "until": time.time() - 1})  # run out
    assert locks.acquire(["host:a"], "run-2", ttl=60)
    rec = store.get(LOCKS, "host:a")
    assert rec is not None and rec.doc["owner"] == "run-2"
    locks.release(["host:a", "host:b"], "run-1")  # only its own goes
    assert store.get(LOCKS, "host:a") is not None and store.get(LOCKS, "host:b") is None


def test_concurrent_takers_of_a_free_lock_give_one_holder(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "state.sqlite3")
    won: list[str] = []
    start = threading.Barrier(8, timeout=10)

    def take(owner: str) -> None:
        start.wait()
        if StoreLocks(store).acquire(["host:x"], owner, ttl=60):
            won.append(owner)

    threads = [threading.Thread(target=take, args=(f"run-{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rec = store.get(LOCKS, "host:x")
    assert len(won) == 1 and rec is not None and rec.doc["owner"] == won[0]
