"""A cycle's checkpoint write adds its counts to what is stored, whoever wrote last (issue #21, exact counters)."""

from __future__ import annotations

import threading
from pathlib import Path

from soar.scheduler.planning import iso, parse_time
from soar.scheduler.state import CHECKPOINTS, Checkpoints, Tally, load_checkpoints, merge_checkpoint, write_tallies
from soar.store.sqlite import SQLiteStore


def _tally(at: float, *, alerts: int = 1, end: float | None = None, error: str | None = None, runs: int = 1) -> Tally:
    return Tally("r1", "Rule one", "h", iso(at), runs=runs, hits=alerts, alerts=alerts, end=end, error=error,
                 error_kind="unavailable" if error else None)  # fmt: skip


def test_counters_add_and_end_takes_the_max() -> None:
    stored = merge_checkpoint(None, _tally(100, alerts=3, end=90))
    later = merge_checkpoint(stored, _tally(110, alerts=2, end=100))
    older_finishing_last = merge_checkpoint(later, _tally(105, alerts=4, end=95))
    assert older_finishing_last["runs_total"] == 3
    assert older_finishing_last["alerts_total"] == 9
    assert parse_time(older_finishing_last["end"]) == 100  # never backwards
    # the "last run" view stays the latest run's, though the older one wrote last
    assert older_finishing_last["last_run_at"] == iso(110) and older_finishing_last["last_alerts"] == 2


def test_a_failed_run_counts_an_error_and_keeps_the_end() -> None:
    stored = merge_checkpoint(None, _tally(100, end=90))
    failed = merge_checkpoint(stored, _tally(110, alerts=0, error="connection refused"))
    assert failed["errors_total"] == 1 and failed["runs_total"] == 2 and failed["alerts_total"] == 1
    assert parse_time(failed["end"]) == 90 and failed["error_kind"] == "unavailable"
    ok_again = merge_checkpoint(failed, _tally(120, end=115))
    assert ok_again["last_error"] is None and ok_again["errors_total"] == 1 and parse_time(ok_again["end"]) == 115


def test_gap_only_alerts_count_without_a_run() -> None:
    stored = merge_checkpoint(None, _tally(100, alerts=2, end=90))
    gaps = merge_checkpoint(stored, _tally(200, alerts=5, runs=0))
    assert gaps["runs_total"] == 1 and gaps["alerts_total"] == 7
    assert gaps["last_run_at"] == iso(100) and gaps["last_alerts"] == 2  # not a run: the last run's view stays


def test_a_write_from_a_stale_read_merges_instead_of_overwriting(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.sqlite3")
    write_tallies(store, [_tally(100, alerts=1, end=100)], Checkpoints())
    stale = load_checkpoints(store, ["r1"])
    write_tallies(store, [_tally(110, alerts=2, end=110)], stale)
    written = write_tallies(store, [_tally(105, alerts=4, end=105)], stale)  # version moved on meanwhile
    assert [t.alerts for t in written] == [4]
    doc = store.get(CHECKPOINTS, "r1")
    assert doc is not None
    assert doc.doc["runs_total"] == 3 and doc.doc["alerts_total"] == 7 and parse_time(doc.doc["end"]) == 110


def test_concurrent_writers_lose_no_update(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    SQLiteStore(path)
    ends: dict[int, list[float]] = {0: [], 1: [], 2: []}

    def writer(n: int) -> None:
        store = SQLiteStore(path)  # its own connection, as another process would have
        for i in range(40):
            read = load_checkpoints(store, ["r1"])
            at = 1000 + n * 1000 + i
            write_tallies(store, [_tally(at, alerts=n + 1, end=at)], read)
            rec = store.get(CHECKPOINTS, "r1")
            assert rec is not None
            ends[n].append(parse_time(rec.doc["end"]) or 0.0)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    doc = SQLiteStore(path).get(CHECKPOINTS, "r1")
    assert doc is not None
    assert doc.doc["runs_total"] == 120
    assert doc.doc["alerts_total"] == 40 * (1 + 2 + 3)
    assert parse_time(doc.doc["end"]) == 1000 + 2 * 1000 + 39
    assert all(seen == sorted(seen) for seen in ends.values())  # no writer ever saw ``end`` move back
