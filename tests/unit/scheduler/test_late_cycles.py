"""A cycle that ends late must not make the next one later: the scheduler catches up (issue #19).

On the Elasticsearch store every bookkeeping write is a round trip (and an fsync). At a 1 s interval a checkpoint
more than three intervals behind used to mean "cycles were missed": every rule recorded a gap (a read and a
write each) and filled it in the same cycle (a read and a write again), so one cycle over 3 s (1,000 rules'
first round) made the next one take seconds per hundred rules, later still: no cycle ever caught up. Here the
store's round trips advance a simulated clock, so that feedback is reproduced deterministically at small scale.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from soar.clock import FakeClock
from soar.config import Settings, load_settings
from soar.scheduler.cycle import Detector
from soar.scheduler.rules import ScheduledRule
from soar.scheduler.search import Job, JobResult, RequestCounter
from soar.scheduler.state import CHECKPOINTS, GAPS, checkpoint_end
from soar.store.sqlite import SQLiteStore

T0 = 1_800_000_000.0
ROUND_TRIP = 0.01  # seconds of simulated time per store request
ROUND_TRIPS = ("find", "get", "insert", "update", "put", "put_many", "put_many_if", "count")


class SlowStore(SQLiteStore):
    """The SQLite store, each request taking ROUND_TRIP seconds of the simulated clock (as over a network)."""

    clock: FakeClock


for _name in ROUND_TRIPS:
    if hasattr(SQLiteStore, _name):

        def _timed(self: SlowStore, *args: Any, _name: str = _name, **kwargs: Any) -> Any:
            self.clock.advance(ROUND_TRIP)
            return getattr(SQLiteStore, _name)(self, *args, **kwargs)

        setattr(SlowStore, _name, _timed)


class NoEvents:
    """An event source that finds nothing, in one request per cycle."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock

    def search(
        self, jobs: Sequence[Job], exceptions: Sequence[Mapping[str, Any]], counter: RequestCounter, **_: Any
    ) -> list[JobResult]:
        counter.msearch += 1
        self.clock.advance(ROUND_TRIP)
        return [JobResult(job) for job in jobs]

    def correlation_events(self, *args: Any) -> list[Any]:
        return []


def _rule(n: int) -> ScheduledRule:
    return ScheduledRule(
        id=f"rule-{n}", title=f"r{n}", level="high", tags=(), index="logs", interval=1, lookback=5,
        max_alerts=10, content_hash="h", source="x:1", query={"match_all": {}},
    )  # fmt: skip


def _world(tmp_path: Path) -> tuple[FakeClock, SlowStore, Settings, Detector]:
    clock = FakeClock(T0)
    store = SlowStore(tmp_path / "state.sqlite3")
    store.clock = clock
    settings = load_settings(content_root=tmp_path, state_dir=tmp_path / "state", celery_eager=True)
    return clock, store, settings, Detector(settings, store, NoEvents(clock), lambda _id: None, clock=clock)


def test_a_late_cycle_at_a_short_interval_is_caught_up_not_recorded_as_gaps(tmp_path: Path) -> None:
    clock, store, settings, detector = _world(tmp_path)
    rules = [_rule(n) for n in range(300)]
    detector.run(rules)  # the first round: every rule's first (longer) window
    clock.advance(4.0)  # ... which took 4 s: the next cycle is over three 1 s intervals late
    lengths, gaps = [], 0
    for _ in range(5):  # cycles back to back, as the scheduler runs them when every rule is due
        started = clock.now()
        report = detector.run(rules, started)
        lengths.append(clock.now() - started)
        gaps += sum(run.gap is not None for run in report.runs.values())
        assert all(run.window is not None and run.window.end == started - settings.detection_ingest_delay
                   for run in report.runs.values())  # fmt: skip
    assert max(lengths) < 1.0  # store requests per cycle do not grow with the rules: each cycle fits its interval
    assert gaps == 0 and store.count(GAPS) == 0  # the 4 s were searched by the late cycle's own window
    ends = {checkpoint_end(r.doc) for r in store.find(CHECKPOINTS, limit=1000)}
    assert ends == {round(started - settings.detection_ingest_delay, 3)}  # every rule caught up (stored to the ms)


def test_an_outage_longer_than_the_minimum_gap_is_still_a_gap_and_filled(tmp_path: Path) -> None:
    clock, store, settings, detector = _world(tmp_path)
    rules = [_rule(n) for n in range(3)]
    detector.run(rules)
    clock.advance(settings.detection_min_gap + 30)
    report = detector.run(rules, clock.now())
    assert all(run.gap is not None and run.gap.seconds > settings.detection_min_gap for run in report.runs.values())
    assert [g.doc["status"] for g in store.find(GAPS)] == ["filled"] * 3


def test_after_an_outage_every_rules_gap_is_recorded_and_filled_in_a_few_requests(tmp_path: Path) -> None:
    """Every rule is late at once after an outage: recording and filling their gaps one round trip at a time made
    the recovering cycle long (300 rules: 12 s here), and so the next one late; now the cycle fits its interval."""
    clock, store, _, detector = _world(tmp_path)
    rules = [_rule(n) for n in range(300)]
    detector.run(rules)
    clock.advance(600)  # ten minutes without a cycle
    lengths = []
    for n in range(3):
        started = clock.now()
        report = detector.run(rules, started)
        lengths.append(clock.now() - started)
        assert sum(run.gap is not None for run in report.runs.values()) == (300 if n == 0 else 0)
    assert max(lengths) < 1.0, lengths
    assert [g.doc["status"] for g in store.find(GAPS, limit=1000)] == ["filled"] * 300
