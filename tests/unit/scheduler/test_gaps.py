"""Gaps in the store: recorded once, extended while open, the rest of a filled one a gap of its own."""

from __future__ import annotations

import threading
from pathlib import Path

from soar.scheduler.planning import Window
from soar.scheduler.state import (
    GAPS,
    advance_gap,
    advance_gaps,
    count_open_gaps,
    open_gaps,
    record_gap,
    record_gaps,
)
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


def test_many_rules_gaps_at_once_mean_what_one_at_a_time_means(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "state.sqlite3")
    record_gap(store, "open", Window(T0, T0 + 60), "es down", now=T0 + 61)
    record_gap(store, "filled", Window(T0, T0 + 60), "es down", now=T0 + 61)
    ((gap_id, _),) = open_gaps(store, ["filled"])["filled"]
    advance_gap(store, gap_id, T0 + 60, now=T0 + 70)
    added = record_gaps(
        store,
        {"new": Window(T0, T0 + 30), "open": Window(T0, T0 + 90), "filled": Window(T0, T0 + 120)},
        "es down again",
        now=T0 + 121,
    )
    assert added == {"new": 30.0, "open": 30.0, "filled": 60.0}  # recorded, extended, the rest its own gap
    assert record_gaps(store, {"new": Window(T0, T0 + 30)}, "again", now=T0 + 122) == {"new": 0.0}  # once
    windows = {
        rule: [(w.start, w.end) for _, w in gaps] for rule, gaps in open_gaps(store, ["new", "open", "filled"]).items()
    }
    assert windows == {"new": [(T0, T0 + 30)], "open": [(T0, T0 + 90)], "filled": [(T0 + 60, T0 + 120)]}
    ids = {rule: gaps[0][0] for rule, gaps in open_gaps(store, ["new", "open"]).items()}
    # one filled, the other half filled
    advance_gaps(store, {ids["new"]: T0 + 30, ids["open"]: T0 + 45}, ["new", "open"], now=T0 + 130)
    assert {r: [(w.start, w.end) for _, w in g] for r, g in open_gaps(store, ["new", "open"]).items()} == {
        "open": [(T0 + 45, T0 + 90)]
    }
