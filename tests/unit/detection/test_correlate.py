"""Correlations with sliding windows, tested at the window's edges, pure and on the embedded store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from soar.detection import (
    CompiledRule,
    CorrelationEvent,
    CorrelationSpec,
    compile_rule,
    evaluate_correlation,
    load_rules,
)
from soar.detection.embedded import EventStore, correlation_events
from tests.unit.detection.helpers import auth_event, write

T0 = datetime(2026, 11, 28, 10, 0, tzinfo=UTC).timestamp()


def _base(rule_id: str) -> CompiledRule:
    return CompiledRule(rule_id, rule_id, "low", (), "x.yml", "embedded", ("ecs_linux",))


def _spec(
    kind: str, op: str | None = "gte", count: float = 3, rules: tuple[str, ...] = ("a",), **kw: object
) -> CorrelationSpec:
    return CorrelationSpec(
        rule_id="corr",
        type=kind,
        rules=tuple(_base(r) for r in rules),
        group_by=kw.get("group_by", ("source.ip",)),  # type: ignore[arg-type]
        timespan=300,
        op=op,
        count=count,
        field=kw.get("field"),  # type: ignore[arg-type]
    )


def _ev(offset: float, rule: str = "a", group: str = "10.0.0.1", value: object = None) -> CorrelationEvent:
    return CorrelationEvent(rule, T0 + offset, (group,), value, f"{rule}@{offset}")


@pytest.mark.parametrize(
    ("offsets", "matches"),
    [((0, 150, 299), 1), ((0, 150, 300), 1), ((0, 150, 301), 0), ((0, 1, 400, 401, 699), 1)],
    ids=["1s inside", "exactly the timespan", "1s outside", "window slides past the first events"],
)
def test_event_count_window_edges(offsets: tuple[int, ...], matches: int) -> None:
    found = evaluate_correlation(_spec("event_count"), [_ev(o) for o in offsets])
    assert len(found) == matches


def test_event_count_match_details_and_one_match_per_burst() -> None:
    events = [_ev(o) for o in (0, 10, 20, 30)] + [_ev(1000 + o) for o in (0, 10, 20)]
    found = evaluate_correlation(_spec("event_count"), events)
    assert [(m.start, m.end, m.value, m.group) for m in found] == [
        (datetime.fromtimestamp(T0, UTC), datetime.fromtimestamp(T0 + 30, UTC), 4.0, {"source.ip": "10.0.0.1"}),
        (
            datetime.fromtimestamp(T0 + 1000, UTC),
            datetime.fromtimestamp(T0 + 1020, UTC),
            3.0,
            {"source.ip": "10.0.0.1"},
        ),
    ]
    assert found[0].refs == ("a@0", "a@10", "a@20", "a@30")


def test_group_by_keeps_groups_apart() -> None:
    events = [_ev(0, group="10.0.0.1"), _ev(1, group="10.0.0.2"), _ev(2, group="10.0.0.1")]
    assert evaluate_correlation(_spec("event_count", count=3), events) == []
    assert len(evaluate_correlation(_spec("event_count", count=2), events)) == 1


def test_events_missing_a_group_by_field_are_ignored() -> None:
    events = [CorrelationEvent("a", T0 + i, (None,), None, i) for i in range(5)]
    assert evaluate_correlation(_spec("event_count"), events) == []


@pytest.mark.parametrize(("last", "matches"), [(299, 1), (301, 0)])
def test_value_count_distinct_values_in_window(last: int, matches: int) -> None:
    events = [_ev(0, value="root"), _ev(0, value="admin"), _ev(150, value="ROOT"), _ev(last, value="deploy")]
    found = evaluate_correlation(_spec("value_count", field="user.name"), events)
    assert len(found) == matches
    assert [m.value for m in found] == [3.0] * matches  # ROOT and root are one value


@pytest.mark.parametrize(
    ("kind", "op", "count", "expected"),
    [("value_sum", "gt", 100, 1), ("value_avg", "gt", 60, 0), ("value_avg", "gte", 55, 1)],
)
def test_value_sum_and_avg(kind: str, op: str, count: float, expected: int) -> None:
    events = [_ev(0, value=50), _ev(10, value="60"), _ev(20, value=None)]
    assert len(evaluate_correlation(_spec(kind, op=op, count=count, field="bytes"), events)) == expected


@pytest.mark.parametrize(
    ("order", "temporal", "ordered"),
    [(("a", "b"), 1, 1), (("b", "a"), 1, 0)],
    ids=["in order", "reversed"],
)
def test_temporal_vs_temporal_ordered(order: tuple[str, str], temporal: int, ordered: int) -> None:
    events = [_ev(0, rule=order[0]), _ev(299, rule=order[1])]
    assert len(evaluate_correlation(_spec("temporal", op=None, rules=("a", "b")), events)) == temporal
    assert len(evaluate_correlation(_spec("temporal_ordered", op=None, rules=("a", "b")), events)) == ordered


def test_temporal_needs_every_rule_within_the_window() -> None:
    events = [_ev(0, rule="a"), _ev(301, rule="b")]
    assert evaluate_correlation(_spec("temporal", op=None, rules=("a", "b")), events) == []
    assert evaluate_correlation(_spec("temporal_ordered", op=None, rules=("a", "b")), events) == []


CORRELATIONS = """\
title: SSH failure
id: 55555555-0000-4000-8000-000000000001
name: t_ssh_failure
status: test
logsource: {product: linux, service: sshd}
detection:
  sel: {event.outcome: failure}
  condition: sel
level: low
---
title: SSH success
id: 55555555-0000-4000-8000-000000000002
name: t_ssh_success
status: test
logsource: {product: linux, service: sshd}
detection:
  sel: {event.outcome: success}
  condition: sel
level: low
---
title: Brute force
id: 55555555-0000-4000-8000-000000000003
status: test
correlation:
  type: event_count
  rules: [t_ssh_failure]
  group-by: [SourceIp]
  timespan: 1m
  condition: {gte: 3}
level: high
---
title: Success after failures
id: 55555555-0000-4000-8000-000000000004
status: test
correlation:
  type: temporal_ordered
  rules: [t_ssh_failure, t_ssh_success]
  group-by: [SourceIp]
  timespan: 1m
level: high
"""


def _at(seconds: int) -> str:
    return (datetime.fromtimestamp(T0, UTC) + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def test_correlations_on_the_embedded_store(tmp_path: Path) -> None:
    ruleset = load_rules([write(tmp_path / "c.yml", CORRELATIONS)])
    ruleset.raise_first()
    brute, after = (compile_rule(r, target="embedded", ruleset=ruleset) for r in ruleset.rules[2:])
    assert brute.correlation is not None and after.correlation is not None
    with EventStore() as store:
        store.insert(
            [
                auth_event(_at(0), "failure", "203.0.113.5"),
                auth_event(_at(30), "failure", "203.0.113.5"),
                auth_event(_at(59), "failure", "203.0.113.5"),  # third failure 59 s after the first: inside 1m
                auth_event(_at(60), "success", "203.0.113.5"),
                auth_event(_at(0), "failure", "198.51.100.7"),
                auth_event(_at(30), "failure", "198.51.100.7"),
                auth_event(_at(61), "failure", "198.51.100.7"),  # 61 s: outside
                auth_event(_at(122), "success", "198.51.100.7"),  # 61 s after the last failure: outside
                auth_event(_at(10), "success", "198.51.100.9"),  # success before failure: not ordered
                auth_event(_at(20), "failure", "198.51.100.9"),
            ]
        )
        found = evaluate_correlation(brute.correlation, correlation_events(store, brute.correlation))
        assert [m.group for m in found] == [{"source.ip": "203.0.113.5"}]
        assert found[0].refs == (0, 1, 2)
        found = evaluate_correlation(after.correlation, correlation_events(store, after.correlation))
        assert [m.group["source.ip"] for m in found] == ["203.0.113.5"]
        assert found[0].refs == (0, 1, 2, 3)
