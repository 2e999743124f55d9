"""Pure planning: due rules, windows with look-back, gaps after a late cycle, chunks, durations, options."""

from __future__ import annotations

import pytest

from soar.config import load_settings
from soar.errors import ContentError
from soar.scheduler.planning import Window, chunks, is_due, iso, parse_time, phase, plan_run, suppression_bucket
from soar.scheduler.query import exception_clauses, search_body
from soar.scheduler.rules import ScheduledRule, parse_duration, rule_options, scheduled_rule

RULE = ScheduledRule(
    id="r1", title="t", level="high", tags=(), index="logs-*", interval=60, lookback=30, max_alerts=10,
    content_hash="h", source="r.yml:1", query={"query_string": {"query": "a:b"}},
)  # fmt: skip
T = 1_800_000_000.0


def test_first_run_covers_one_interval_and_the_lookback() -> None:
    plan = plan_run(RULE, None, T, ingest_delay=2)
    assert plan.window == Window(T - 2 - 60 - 30, T - 2) and plan.gap is None


def test_next_window_starts_lookback_before_the_checkpoint() -> None:
    plan = plan_run(RULE, T - 62, T, ingest_delay=2)
    assert plan.window == Window(T - 62 - 30, T - 2) and plan.gap is None


def test_nothing_new_means_no_search() -> None:
    assert plan_run(RULE, T, T, ingest_delay=2).window is None


def test_a_checkpoint_far_behind_leaves_a_gap_for_filling() -> None:
    plan = plan_run(RULE, T - 3600, T, ingest_delay=0)
    assert plan.window == Window(T - 60 - 30, T)
    assert plan.gap == Window(T - 3600 - 30, T - 60)  # overlaps the window: nothing falls between


def test_due_respects_interval_and_disabled_content() -> None:
    assert is_due(RULE, None, T)
    assert not is_due(RULE, {"last_run_at": iso(T - 30)}, T)
    assert is_due(RULE, {"last_run_at": iso(T - 60)}, T)
    assert is_due(RULE, {"last_run_at": iso(T - 120)}, T)


def test_rules_run_at_their_own_phase_once_per_interval() -> None:
    rules = [ScheduledRule(**{**RULE.__dict__, "id": f"r{i}", "interval": 5.0}) for i in range(500)]
    phases = [phase(r) for r in rules]
    assert all(0 <= p < 5 for p in phases)
    per_second = [sum(1 for p in phases if s <= p < s + 1) for s in range(5)]
    assert min(per_second) > 60  # spread over the interval, not bunched
    for rule in rules[:50]:
        # After a run, the rule is due exactly once in each later interval, at its phase.
        last, runs, t = T, 0, T
        while t < T + 50:
            t += 0.25
            if is_due(rule, {"last_run_at": iso(last)}, t):
                assert t - last > 2.5
                last, runs = t, runs + 1
        assert runs in (9, 10)
    assert not is_due(RULE, {"last_run_at": iso(T - 600), "disabled": True, "content_hash": "h"}, T)
    assert is_due(RULE, {"last_run_at": iso(T - 600), "disabled": True, "content_hash": "changed"}, T)


def test_chunks_and_buckets() -> None:
    assert chunks(Window(0, 7200 + 5)) == [Window(0, 3600), Window(3600, 7200), Window(7200, 7205)]
    assert suppression_bucket(3599.9, 600) == 3000 and suppression_bucket(3600, 600) == 3600


def test_times_round_trip() -> None:
    assert parse_time(iso(T)) == T
    assert parse_time("2026-11-28T10:00:00+01:00") == parse_time("2026-11-28T09:00:00Z")
    assert parse_time("not a time") is None


def test_durations() -> None:
    assert parse_duration("5s", "x") == 5 and parse_duration("2m", "x") == 120 and parse_duration(90, "x") == 90
    assert parse_duration("250ms", "x") == 0.25
    with pytest.raises(ValueError, match="x: expected a duration"):
        parse_duration("soon", "x")


def test_options_and_their_errors_name_the_key() -> None:
    settings = load_settings()
    opts = rule_options({"interval": "5s", "suppress": {"by": "host.name", "window": "10m"}}, settings)
    assert opts["interval"] == 5 and opts["suppress_by"] == ("host.name",) and opts["suppress_window"] == 600
    assert rule_options(None, settings)["interval"] == settings.detection_interval
    assert rule_options({"attributes": {"team": "identity"}}, settings)["attributes"] == {"team": "identity"}
    for block, message in [
        ({"interval": "0.5s"}, "soar.interval: must be at least 1s"),
        ({"max_alerts": 0}, "soar.max_alerts"),
        ({"every": "5s"}, "soar.every: unknown option"),
        ({"suppress": {"window": "5m"}}, "soar.suppress"),
        ({"attributes": {"team": 3}}, "soar.attributes: expected"),
        ({"attributes": ["team"]}, "soar.attributes: expected"),
        ({"attributes": {"bad key!": "x"}}, "soar.attributes: expected"),
    ]:
        with pytest.raises(ValueError, match=message):
            rule_options(block, settings)
    with pytest.raises(ContentError) as info:
        scheduled_rule(
            rule_id="r", title="t", level="high", tags=(), block={"interval": "x"}, settings=settings,
            content_hash="h", path="rules/a.yml", line=3,
        )  # fmt: skip
    assert str(info.value).startswith("rules/a.yml:3: soar.interval")


def test_exceptions_become_must_not_clauses_for_their_rules_only() -> None:
    exceptions = [
        {"status": "approved", "rule_id": "r1", "field": "source.ip", "values": ["10.0.0.0/8", "192.0.2.1"]},
        {"status": "approved", "rule_id": None, "field": "user.name", "values": ["svc-*"]},
        {"status": "proposed", "rule_id": "r1", "field": "host.name", "values": ["h"]},
        {"status": "approved", "rule_id": "other", "field": "host.name", "values": ["h"]},
        {"status": "approved", "rule_ids": ["r1", "r2"], "field": "process.name", "values": ["cron"]},
    ]
    assert exception_clauses(exceptions, "r1") == [
        {"term": {"source.ip": "10.0.0.0/8"}},
        {"term": {"source.ip": "192.0.2.1"}},
        {"wildcard": {"user.name": {"value": "svc-*", "case_insensitive": True}}},
        {
            "term": {"process.name": {"value": "cron", "case_insensitive": True}}
        },  # a keyword: case-insensitive, as Sigma
    ]
    body = search_body(RULE, Window(T - 10, T), exceptions, size=100)
    assert body["query"]["bool"]["filter"][0] == RULE.query
    assert body["query"]["bool"]["filter"][1] == {"range": {"@timestamp": {"gte": iso(T - 10), "lt": iso(T)}}}
    assert len(body["query"]["bool"]["must_not"]) == 4 and body["size"] == 100 and "pit" not in body
    paged = search_body(RULE, Window(T - 10, T), [], size=5, pit_id="p", search_after=[1, 2])
    assert paged["pit"]["id"] == "p" and paged["search_after"] == [1, 2] and paged["sort"][-1] == {"_shard_doc": "asc"}


def test_public_surface_is_declared() -> None:
    import soar.scheduler

    for name in soar.scheduler.__all__:
        assert hasattr(soar.scheduler, name)


def test_a_checkpoint_behind_by_intervals_but_less_than_the_minimum_gap_just_widens_the_window() -> None:
    short = ScheduledRule(**{**RULE.__dict__, "interval": 1.0, "lookback": 5.0})
    plan = plan_run(short, T - 30, T, ingest_delay=0, min_gap=60)
    assert plan.window == Window(T - 30 - 5, T) and plan.gap is None  # 30 intervals late, one search
    plan = plan_run(short, T - 90, T, ingest_delay=0, min_gap=60)
    assert plan.window == Window(T - 1 - 5, T) and plan.gap == Window(T - 90 - 5, T - 1)


def test_a_rules_clock_is_event_time_by_default_or_its_arrival() -> None:
    from soar.scheduler.query import event_time_ms, window_clause

    settings = load_settings()
    assert rule_options(None, settings)["time_field"] == "@timestamp"
    assert rule_options({"time_field": "event.ingested"}, settings)["time_field"] == "event.ingested"
    with pytest.raises(ValueError, match=r"soar.time_field: must be one of @timestamp, event.ingested"):
        rule_options({"time_field": "event.created"}, settings)
    window = Window(T, T + 5)
    assert window_clause(window) == {"range": {"@timestamp": {"gte": iso(T), "lt": iso(T + 5)}}}
    clause = window_clause(window, "event.ingested")["bool"]
    assert clause["minimum_should_match"] == 1 and clause["should"][0] == {
        "range": {"event.ingested": {"gte": iso(T), "lt": iso(T + 5)}}
    }
    late = {"@timestamp": iso(T - 600), "event": {"ingested": iso(T + 1)}}
    assert event_time_ms(late, "event.ingested") == (T + 1) * 1000 and event_time_ms(late) == (T - 600) * 1000
    assert event_time_ms({"@timestamp": iso(T)}, "event.ingested") == T * 1000  # no arrival time: event time
