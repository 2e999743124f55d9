"""Concurrent, differently-cut searches of one correlation burst raise one alert, on either store.

Two searches that see the burst from different starts make matches with different
fingerprints (the id carries the match's first event time); only the overlap between
them says they are the same burst. The searches are paused together after evaluating
and before writing, so both decide against the same store state: the race is certain,
not lucky.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from soar.scheduler import cycle
from soar.scheduler.cycle import Detector
from soar.scheduler.loading import load_scheduled_rules
from soar.scheduler.planning import Window, iso
from soar.scheduler.rules import ScheduledRule
from soar.store import Store
from soar.store.elastic import ElasticsearchStore
from soar.store.sqlite import SQLiteStore
from tests.integration.scheduler.conftest import Ctx, event, index_events
from tests.integration.scheduler.test_correlation import CORRELATION, _write

StoreFactory = Callable[[], Store]


@pytest.fixture(params=["sqlite", "elasticsearch"])
def open_store(request: pytest.FixtureRequest, ctx: Ctx) -> Iterator[StoreFactory]:
    """A new client of one shared store per call, as separate scheduler/backfill processes have."""
    opened: list[Store] = []
    prefix = f"soar-test-{uuid.uuid4().hex[:10]}"

    def new() -> Store:
        store: Store = (
            SQLiteStore(ctx.content / "state" / "state.sqlite3")
            if request.param == "sqlite"
            else ElasticsearchStore(ctx.es, prefix)
        )
        opened.append(store)
        return store

    yield new
    if request.param == "sqlite":
        for store in opened:
            store.close()
    else:  # the clients share the test's Elasticsearch client: leave it open
        ctx.es.options(ignore_status=404).indices.delete(index=f"{prefix}-state-*")
        ctx.es.options(ignore_status=404).indices.delete_index_template(name=f"{prefix}-state")


def _evaluate_together(monkeypatch: pytest.MonkeyPatch, parties: int) -> None:
    """Every search waits, after evaluating its matches and before writing any, until all have evaluated."""
    barrier = threading.Barrier(parties, timeout=120)  # a safety net against a hang, not an assertion
    evaluate = cycle.correlation_drafts

    def evaluated_then_wait(*args: Any, **kwargs: Any) -> Any:
        drafts = evaluate(*args, **kwargs)
        barrier.wait()
        return drafts

    monkeypatch.setattr(cycle, "correlation_drafts", evaluated_then_wait)


def _concurrently(*calls: Callable[[], object]) -> None:
    errors: list[BaseException] = []

    def guarded(call: Callable[[], object]) -> None:
        try:
            call()
        except BaseException as exc:  # re-raised in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(c,)) for c in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def _correlation(ctx: Ctx) -> tuple[str, list[ScheduledRule]]:
    base = ctx.write_rule("base", interval="1s")
    corr_id = _write(ctx.content, "burst", CORRELATION, base)  # event_count >= 3 per host within 1m
    rules, errors = load_scheduled_rules(ctx.settings)
    assert not errors, [str(e) for e in errors]
    return corr_id, rules


def _burst_alerts(store: Store, corr_id: str) -> list[tuple[str, str]]:
    alerts = store.find("alerts", {"rule.id": corr_id})
    return sorted((a.doc["first_event_time"], a.doc["last_event_time"]) for a in alerts)


def test_two_backfills_cut_differently_raise_one_alert_for_a_burst(
    ctx: Ctx, open_store: StoreFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    corr_id, rules = _correlation(ctx)
    [rule] = [r for r in rules if r.id == corr_id]
    t0 = float(int(time.time()) - 7200)
    index_events(ctx.es, ctx.index, [(f"b{i}", event(i, t0 + 10 * i, host="app-01")) for i in range(6)])
    # From before the burst: the match starts at t0. From t0+70: the search widened by the
    # timespan starts at t0+10, so its match starts there: another fingerprint, the same burst.
    whole, cut = Window(t0 - 1, t0 + 600), Window(t0 + 70, t0 + 600)
    _evaluate_together(monkeypatch, 2)
    reports = []
    _concurrently(
        lambda: reports.append(Detector(ctx.settings, open_store(), ctx.es, lambda _id: None).backfill(rule, whole)),
        lambda: reports.append(Detector(ctx.settings, open_store(), ctx.es, lambda _id: None).backfill(rule, cut)),
    )
    assert sorted(r.runs[corr_id].hits for r in reports) == [5, 6]  # both saw the burst, from different starts
    spans = _burst_alerts(open_store(), corr_id)
    assert len(spans) == 1 and spans[0][1] == iso(t0 + 50), spans
    assert sum(r.runs[corr_id].alerts for r in reports) == 1


def test_a_backfill_racing_the_cycle_raises_one_alert_for_a_burst(
    ctx: Ctx, open_store: StoreFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    corr_id, rules = _correlation(ctx)
    [rule] = [r for r in rules if r.id == corr_id]
    now = float(int(time.time()))
    # The cycle's first window is the last 31 s widened by the 1 m timespan: it sees the burst from now-90.
    index_events(ctx.es, ctx.index, [(f"c{i}", event(i, now - 100 + 10 * i, host="app-01")) for i in range(7)])
    _evaluate_together(monkeypatch, 2)
    reports = []
    _concurrently(
        lambda: reports.append(Detector(ctx.settings, open_store(), ctx.es, lambda _id: None).run(rules, now)),
        lambda: reports.append(
            Detector(ctx.settings, open_store(), ctx.es, lambda _id: None).backfill(rule, Window(now - 300, now))
        ),
    )
    assert sorted(r.runs[corr_id].hits for r in reports) == [6, 7]
    spans = _burst_alerts(open_store(), corr_id)
    assert len(spans) == 1 and spans[0][1] == iso(now - 40), spans
    assert sum(r.runs[corr_id].alerts for r in reports) == 1


def test_a_burst_claimed_by_a_writer_that_died_before_creating_is_alerted_by_the_next_search(
    ctx: Ctx, open_store: StoreFactory
) -> None:
    corr_id, rules = _correlation(ctx)
    [rule] = [r for r in rules if r.id == corr_id]
    t0 = float(int(time.time()) - 7200)
    index_events(ctx.es, ctx.index, [(f"k{i}", event(i, t0 + 10 * i, host="app-01")) for i in range(6)])
    store = open_store()
    first = Detector(ctx.settings, store, ctx.es, lambda _id: None).backfill(rule, Window(t0 - 1, t0 + 600))
    [claimed] = first.created
    assert store.delete("alerts", claimed)  # as if the writer died between its claim and its create
    dispatched: list[str] = []
    again = Detector(ctx.settings, store, ctx.es, dispatched.append).backfill(rule, Window(t0 + 70, t0 + 600))
    assert again.created == dispatched == [claimed]  # the later cut's match, under the claimed burst's id
    assert _burst_alerts(store, corr_id) == [(iso(t0 + 10), iso(t0 + 50))]
