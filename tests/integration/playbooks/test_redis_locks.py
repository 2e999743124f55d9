"""The workers' target locks on Redis: a timed-out action's locks pass to its thread and come back when it stops."""

from __future__ import annotations

import threading
import uuid
from typing import Any

from soar.playbooks.locks import PREFIX, RedisLocks, hold_while_alive


def test_a_stray_actions_lock_is_its_own_until_its_thread_stops(redis: Any) -> None:
    locks, key = RedisLocks(redis), f"host:probe-{uuid.uuid4().hex[:8]}"
    assert locks.acquire([key], "run-a", 60)
    locks.transfer([key], "run-b", "run-b:stray", 60)  # not run-b's: left as it is
    assert redis.get(PREFIX + key) == b"run-a"
    done = threading.Event()
    stray = threading.Thread(target=done.wait, daemon=True)
    stray.start()
    hold_while_alive(locks, [key], "run-a", stray, 60)
    assert redis.get(PREFIX + key).decode().startswith("run-a:stray:") and 0 < redis.pttl(PREFIX + key) <= 60_000
    assert not locks.acquire([key], "run-a", 60) and not locks.acquire([key], "run-b", 60)  # its retry waits too
    done.set()
    stray.join()
    for _ in range(500):  # the keeper sees the thread end and gives the lock back
        if redis.get(PREFIX + key) is None:
            break
        threading.Event().wait(0.01)
    assert locks.acquire([key], "run-b", 60)
    locks.release([key], "run-b")
