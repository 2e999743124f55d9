"""Sigma correlation rules evaluated over events, with sliding windows — a pure function.

Both engines only fetch the events of a correlation's base rules (Elasticsearch with one
search per base rule, the embedded store with SQL); the windows are decided here, once, the
same way for both.

A window starts at an event and reaches ``timespan`` seconds after it, both ends inclusive
(events exactly ``timespan`` apart are in one window). For each group, windows are tried
from the earliest event on; the first one that meets the condition is a match, and the
next window starts after the last event of that match, so one burst gives one match.

A chained correlation (one whose base rule is itself a correlation) sees each match of the
inner correlation as one event: at the match's last event, with the match's group-by values
(:func:`chained_events`); its match refers to the inner matches' events.
"""

from __future__ import annotations

import operator
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

OPS: dict[str, Callable[[float, float], bool]] = {
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
    "eq": operator.eq,
    "neq": operator.ne,
}


@dataclass(frozen=True)
class CorrelationEvent:
    """One event of a base rule: which rule, when, its group-by values, the aggregated field, a reference."""

    rule_id: str
    timestamp: float
    group: tuple[Any, ...]
    value: Any
    ref: Any


@dataclass(frozen=True)
class CorrelationMatch:
    rule_id: str
    group: dict[str, Any]
    start: datetime
    end: datetime
    value: float
    refs: tuple[Any, ...] = field(default=())


def _norm(value: Any) -> Any:
    """Group-by and distinct values compare case-insensitively, as Sigma strings do."""
    if isinstance(value, str):
        return value.lower()
    if isinstance(value, list):
        return tuple(_norm(v) for v in value)
    return value


def group_key(flat: Mapping[str, Any], group_by: Sequence[str]) -> tuple[Any, ...]:
    return tuple(_norm(flat.get(name)) for name in group_by)


def chained_events(spec: Any, rule_id: str, matches: Iterable[CorrelationMatch]) -> list[CorrelationEvent]:
    """The matches of the correlation ``rule_id`` as events of ``spec``, which refers to it."""
    fields = spec.fields_of(rule_id)
    return [
        CorrelationEvent(
            rule_id,
            m.end.timestamp(),
            group_key(m.group, fields),
            m.group.get(spec.field) if spec.field else None,
            m.refs,
        )
        for m in matches
    ]


def _refs(window: Sequence[CorrelationEvent]) -> tuple[Any, ...]:
    """The events behind a window; a chained event stands for the events of its inner match."""
    out: list[Any] = []
    for event in window:
        out.extend(event.ref if isinstance(event.ref, tuple) else (event.ref,))
    return tuple(out)


def _metric(spec: Any, window: Sequence[CorrelationEvent]) -> float | None:
    kind = spec.type
    if kind == "event_count":
        return float(len(window))
    if kind == "value_count":
        values = {_norm(e.value) for e in window if e.value is not None}
        return float(len(values))
    if kind in ("value_sum", "value_avg"):
        numbers = [float(e.value) for e in window if _is_number(e.value)]
        if not numbers:
            return None
        return sum(numbers) if kind == "value_sum" else sum(numbers) / len(numbers)
    if kind == "temporal":
        return float(len({e.rule_id for e in window}))
    raise ValueError(f"unknown correlation type {kind}")


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return True
    try:
        float(str(value))
    except ValueError:
        return False
    return True


def _ordered_end(spec: Any, events: Sequence[CorrelationEvent], start: int, last: int) -> int | None:
    """Index of the event completing the rules in their listed order within events[start..last], or None."""
    order = [r.rule_id for r in spec.rules]
    if events[start].rule_id != order[0]:
        return None
    want = 1
    for k in range(start + 1, last + 1):
        if want == len(order):
            break
        if events[k].rule_id == order[want]:
            want += 1
            if want == len(order):
                return k
    return start if len(order) == 1 else None


def _condition(spec: Any) -> tuple[Callable[[float, float], bool], float]:
    if spec.type in ("temporal", "temporal_ordered") and spec.op is None:
        return operator.ge, float(len(spec.rules))
    return OPS[spec.op], float(spec.count)


def evaluate_correlation(spec: Any, events: Iterable[CorrelationEvent]) -> list[CorrelationMatch]:
    """Every match of the correlation ``spec`` over ``events`` (any order), per group, sliding windows."""
    groups: dict[tuple[Any, ...], list[CorrelationEvent]] = defaultdict(list)
    for event in events:
        if spec.group_by and any(v is None for v in event.group):
            continue  # an event without its group-by fields belongs to no group
        groups[event.group].append(event)
    check, threshold = _condition(spec)
    matches: list[CorrelationMatch] = []
    for key in sorted(groups, key=repr):
        evs = sorted(groups[key], key=lambda e: (e.timestamp, str(e.ref)))
        i = 0
        while i < len(evs):
            last = i
            while last + 1 < len(evs) and evs[last + 1].timestamp - evs[i].timestamp <= spec.timespan:
                last += 1
            if spec.type == "temporal_ordered":
                end = _ordered_end(spec, evs, i, last)
                value = float(len(spec.rules))
                hit = end is not None
            else:
                end = last
                metric = _metric(spec, evs[i : last + 1])
                value = metric if metric is not None else 0.0
                hit = metric is not None and check(metric, threshold)
            if hit and end is not None:
                window = evs[i : end + 1]
                matches.append(
                    CorrelationMatch(
                        rule_id=spec.rule_id,
                        group=dict(zip(spec.group_by, key, strict=True)),
                        start=datetime.fromtimestamp(window[0].timestamp, UTC),
                        end=datetime.fromtimestamp(window[-1].timestamp, UTC),
                        value=value,
                        refs=_refs(window),
                    )
                )
                i = end + 1
            else:
                i += 1
    return matches
