"""Pure: a correlation as search parts of the cycle (one per base rule), and the parts back as its events."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from soar.detection import CompiledRule, CorrelationSpec
from soar.scheduler.correlate import assemble, batchable, overlapping, part_jobs
from soar.scheduler.planning import Window, iso
from soar.scheduler.rules import ScheduledRule
from soar.scheduler.search import JobResult, SearchError

T = 1_800_000_000.0


def base(rule_id: str, field: str) -> CompiledRule:
    return CompiledRule(
        rule_id=rule_id, title=rule_id, level="low", tags=(), path=f"{rule_id}.yml", target="elasticsearch",
        pipelines=(), query=f"{field}:x", dsl={"query": {"term": {field: "x"}}},
    )  # fmt: skip


SPEC = CorrelationSpec(
    rule_id="c1", type="temporal", rules=(base("b1", "a"), base("b2", "b")), group_by=("host.name",),
    timespan=120, op=None, count=0,
)  # fmt: skip
RULE = ScheduledRule(
    id="c1", title="corr", level="high", tags=(), index="logs-*", interval=60, lookback=30, max_alerts=10,
    content_hash="h", source="c.yml:1", correlation=SPEC,
)  # fmt: skip


def hit(n: int, ts: float, host: str) -> dict[str, Any]:
    return {"_index": "logs-x", "_id": f"e{n}", "_source": {"@timestamp": iso(ts), "host": {"name": host}}}


def test_one_search_per_base_rule_over_the_window_widened_by_the_timespan() -> None:
    jobs = part_jobs(RULE, Window(T, T + 60), limit=500, gap_id="g1")
    assert [(j.part, j.rule.query) for j in jobs] == [("b1", {"term": {"a": "x"}}), ("b2", {"term": {"b": "x"}})]
    assert {(j.rule.id, j.window, j.limit, j.gap_id) for j in jobs} == {("c1", Window(T - 120, T + 60), 500, "g1")}
    assert batchable(RULE)


def test_a_chained_correlation_is_not_batched() -> None:
    inner = replace(base("inner", "a"), dsl=None, query=None, correlation=SPEC)
    assert not batchable(replace(RULE, correlation=replace(SPEC, rules=(inner, base("b2", "b")))))


def test_parts_come_back_as_the_correlations_events_and_its_capping() -> None:
    one, two = part_jobs(RULE, Window(T, T + 60), limit=2)
    first = JobResult(one, [hit(1, T - 10, "web"), hit(2, T + 5, "web")], total=3)
    second = JobResult(two, [hit(3, T + 6, "Web")], total=1)
    res = assemble([first, second], Window(T, T + 60))
    assert res.job.window == Window(T, T + 60) and res.job.rule.query is None and res.job.part is None
    assert [(e.rule_id, e.timestamp, e.group, e.ref) for e in res.events] == [
        ("b1", T - 10, ("web",), "e1"),
        ("b1", T + 5, ("web",), "e2"),
        ("b2", T + 6, ("web",), "e3"),  # group-by values compare case-insensitively
    ]
    assert res.error is None and res.capped == 1  # one hit of the first part beyond its limit


def test_a_failed_part_fails_the_correlation_with_no_events() -> None:
    one, two = part_jobs(RULE, Window(T, T + 60), limit=10)
    failed = JobResult(two, error=SearchError("missing_index", "no such index"))
    res = assemble([JobResult(one, [hit(1, T, "web")], total=1), failed], Window(T, T + 60))
    assert res.error == failed.error and res.events == [] and res.hits == []


def test_a_span_overlaps_a_claimed_burst_when_any_event_time_is_shared_edges_included() -> None:
    def span(alert_id: str, first: float, last: float) -> dict[str, str]:
        return {"alert_id": alert_id, "first_event_time": iso(first), "last_event_time": iso(last)}

    claimed = [span("a", T, T + 60), span("b", T + 70, T + 110)]
    assert overlapping(claimed, span("x", T + 30, T + 90)) == claimed[0]  # the first it overlaps
    assert overlapping(claimed, span("x", T + 110, T + 150)) == claimed[1]  # an edge is shared
    assert overlapping(claimed, span("x", T + 61, T + 69)) is None  # between two bursts: a burst of its own
    assert overlapping([{"alert_id": "old"}], span("x", T, T + 1)) is None  # an alert without times claims nothing
