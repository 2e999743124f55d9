"""Gaps in the store: recorded once, extended while open, the rest of a filled one a gap of its own."""

from __future__ import annotations

import threading
from pathlib import Path

from soar.scheduler.planning import Window
from soar.scheduler.state import GAPS, advance_gap, count_open_gaps, open_gaps, record_gap
from soar.store.sqlite import SQLiteStore

T0 = 1_796_000_000.0  # a whole second: gaps are stored to the millisecond


def test_a_gap_is_recorded_once_then_extended_while_it_stays_open(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "state.sqlite3")
    assert record_gap(store, "r1", Window(T0, T0 + 60), "es down", now=T0 + 61) == 60
    assert record_gap(store, "r1", Window(T0, T0 + 60), "es down", now=T0 + 62) == 0  # the same outage again
    assert record_gap(store, "r1", Window(T0, T0 + 90), "es down", now=T0 + 91) == 30  # the outage goes on
    (gap_id, window), *rest = open_gaps(store, ["r1"])["r1"]
    assert not rest and (window.start, window.end) == (T0, T0 + 90)
    rec = store.get(GAPS, gap_id)
    assert rec is not None and rec.doc["seconds"] == 90 and rec.doc["status"] == "open"
    assert count_open_gaps(store) == {"r1": (1, 90.0)}


def test_past_a_filled_gap_the_rest_of_the_window_is_a_new_gap(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "state.sqlite3")
    record_gap(store, "r1", Window(T0, T0 + 60), "es down", now=T0 + 61)
    ((gap_id, _),) = open_gaps(store, ["r1"])["r1"]
    advance_gap(store, gap_id, T0 + 30, now=T0 + 100)  # half filled: it starts later now
    advance_gap(store, gap_id, T0 + 60, now=T0 + 101)  # filled
    assert open_gaps(store, ["r1"]) == {}
    assert record_gap(store, "r1", Window(T0, T0 + 120), "es down again", now=T0 + 121) == 60
    ((_, window),) = open_gaps(store, ["r1"])["r1"]
    assert (window.start, window.end) == (T0 + 60, T0 + 120)


def test_workers_noticing_one_outage_at_once_record_it_once(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "state.sqlite3")
    added: list[float] = []
    start = threading.Barrier(6, timeout=10)

    def notice() -> None:
        start.wait()
        added.append(record_gap(store, "r1", Window(T0, T0 + 60), "es down", now=T0 + 61))

    threads = [threading.Thread(target=notice) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(added) == [0.0] * 5 + [60.0]
    assert count_open_gaps(store) == {"r1": (1, 60.0)}
