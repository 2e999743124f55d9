"""A tick's budget (issue #21): request timeouts sized to the detection interval, chores off the tick's thread."""

from __future__ import annotations

import threading
from pathlib import Path

from soar.config import load_settings
from soar.scheduler.loop import Chore, MemoryLeases, Scheduler
from soar.store.sqlite import SQLiteStore


def test_request_timeouts_follow_the_interval_up_to_the_configured_one(tmp_path: Path) -> None:
    fast = load_settings(content_root=tmp_path, detection_interval=1.0, elasticsearch_timeout=10.0)
    assert fast.cycle_request_timeout == 3.0  # the floor: three 1 s intervals
    cycles = fast.for_cycles()
    assert cycles.elasticsearch_timeout == 3.0 and cycles.search_timeout < cycles.elasticsearch_timeout
    assert fast.elasticsearch_timeout == 10.0  # interactive commands keep theirs
    slow = load_settings(content_root=tmp_path, detection_interval=60.0, elasticsearch_timeout=10.0)
    assert slow.cycle_request_timeout == 10.0 and slow.for_cycles() is slow
    custom = load_settings(
        content_root=tmp_path, detection_interval=2.0, elasticsearch_timeout=30.0, detection_search_timeout=20.0
    ).for_cycles()
    assert custom.elasticsearch_timeout == 6.0 and custom.search_timeout == 3.0  # still below the request's


def test_a_hanging_chore_never_holds_up_the_ticks(tmp_path: Path) -> None:
    settings = load_settings(content_root=tmp_path, state_dir=tmp_path / "state", celery_eager=True)
    release = threading.Event()
    started = threading.Event()

    def hang() -> None:
        started.set()
        release.wait(30)

    scheduler = Scheduler(
        settings, SQLiteStore(tmp_path / "s.sqlite3"), MemoryLeases(), lambda _ids: None,
        chores=[Chore("hangs", 0.0, hang)],
    )  # fmt: skip
    stop = threading.Event()
    loop = threading.Thread(target=scheduler.run_forever, args=(stop, 0.05), daemon=True)
    loop.start()
    try:
        assert started.wait(10)
        ticks = scheduler.ticks
        for _ in range(200):
            if scheduler.ticks >= ticks + 5:
                break
            stop.wait(0.05)
        assert scheduler.ticks >= ticks + 5  # ticks went on while the chore hung
    finally:
        release.set()
        stop.set()
        loop.join(10)
