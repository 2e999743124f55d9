"""Pure query building: a rule's compiled query, its time window and its exceptions as one search.

Exceptions are applied inside the query (``must_not``), so excepted events are never
fetched. An exception is a store document of kind ``exceptions``::

    {"status": "approved", "rule_id": "<rule id>" | None (shared by every rule),
     "field": "source.ip", "values": ["10.0.0.0/8", "192.0.2.7", "backup-*"]}

Each value is a CIDR (contains ``/`` and parses as a network), a glob (``*`` or ``?``)
or an exact value. ``rule_ids: [...]`` scopes one exception to several rules. A value that would
except (almost) every event (``*``, ``[!~]*``, ``0.0.0.0/0``: ``soar.breadth.exception_value_problem``)
is refused when proposed and approved, and skipped here should one be stored anyway.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from soar.scheduler.planning import Window, iso
from soar.scheduler.rules import ScheduledRule

TIMESTAMP = "@timestamp"
SORT_PLAIN: list[Any] = [{TIMESTAMP: {"order": "asc", "format": "strict_date_optional_time_nanos"}}]
SORT_PIT: list[Any] = [*SORT_PLAIN, {"_shard_doc": "asc"}]


def value_clause(field: str, value: Any) -> dict[str, Any]:
    """An exception value as a query: case-insensitive on text fields (as Sigma values), typed elsewhere."""
    from soar.detection._ecs import STRING_TYPES, field_type

    textual = isinstance(value, str) and field_type(field) in STRING_TYPES
    if textual and ("*" in value or "?" in value):
        return {"wildcard": {field: {"value": value, "case_insensitive": True}}}
    if textual:
        return {"term": {field: {"value": value, "case_insensitive": True}}}
    return {"term": {field: value}}  # on an ip field a term query with a CIDR matches the network


def too_broad(value: Any) -> bool:
    """An exception value that would except (almost) every event: never applied."""
    from soar.breadth import exception_value_problem

    return isinstance(value, str) and exception_value_problem(value) is not None


def applies_to(exception: Mapping[str, Any], rule_id: str) -> bool:
    if exception.get("status") != "approved":
        return False
    scoped = exception.get("rule_ids")
    if isinstance(scoped, list) and scoped:
        return rule_id in scoped
    target = exception.get("rule_id")
    return target in (None, "", "*", rule_id)


def exception_clauses(exceptions: Iterable[Mapping[str, Any]], rule_id: str) -> list[dict[str, Any]]:
    clauses: list[dict[str, Any]] = []
    for exc in exceptions:
        field = exc.get("field")
        values = exc.get("values")
        if not applies_to(exc, rule_id) or not isinstance(field, str) or not field:
            continue
        if not isinstance(values, list):
            values = [values] if values is not None else []
        clauses.extend(value_clause(field, v) for v in values if not too_broad(v))
    return clauses


INGESTED = "event.ingested"


def window_clause(window: Window, time_field: str = TIMESTAMP) -> dict[str, Any]:
    """The events of a window on a rule's clock: by ``@timestamp`` (event time), or by ``event.ingested`` (arrival in
    Elasticsearch: an event stamped long ago but arriving now falls in the current window) with ``@timestamp``
    standing in for an event that does not carry ``event.ingested``."""
    span = {"gte": iso(window.start), "lt": iso(window.end)}
    if time_field != INGESTED:
        return {"range": {TIMESTAMP: span}}
    unstamped = {"bool": {"must_not": [{"exists": {"field": INGESTED}}], "filter": [{"range": {TIMESTAMP: span}}]}}
    return {"bool": {"should": [{"range": {INGESTED: span}}, unstamped], "minimum_should_match": 1}}


def event_time_ms(source: Mapping[str, Any], time_field: str = TIMESTAMP) -> int | None:
    """The time (epoch ms) an event has on ``time_field``'s clock, as :func:`window_clause` compares it."""
    from soar.detection.dsl_match import _epoch_ms

    if time_field == INGESTED:
        event = source.get("event")
        ingested = event.get("ingested") if isinstance(event, Mapping) else source.get(INGESTED)
        if ingested is not None:
            return _epoch_ms(ingested)
    return _epoch_ms(source.get(TIMESTAMP))


def _span_clause(items: Sequence[tuple[ScheduledRule, Window]]) -> dict[str, Any]:
    by_field: dict[str, list[Window]] = {}
    for rule, window in items:
        by_field.setdefault(rule.time_field, []).append(window)
    spans = [
        window_clause(Window(min(w.start for w in ws), max(w.end for w in ws)), name) for name, ws in by_field.items()
    ]
    return spans[0] if len(spans) == 1 else {"bool": {"should": spans, "minimum_should_match": 1}}


def combined_body(
    items: Sequence[tuple[ScheduledRule, Window]],
    exceptions: Iterable[Mapping[str, Any]] = (),
    *,
    size: int,
    pit_id: str | None = None,
    search_after: list[Any] | None = None,
) -> dict[str, Any]:
    """One search for many rules: each rule a named clause (its query, window and exceptions).

    Elasticsearch reports in each hit's ``matched_queries`` which clauses (by position,
    ``"0"``, ``"1"``, ...) it matched, so one pass over the index serves every rule.
    """
    exceptions = list(exceptions)
    should = []
    for n, (rule, window) in enumerate(items):
        if rule.query is None:
            raise ValueError(f"rule {rule.id} has no query (a correlation)")
        clause = {
            "filter": [rule.query, window_clause(window, rule.time_field)],
            "must_not": exception_clauses(exceptions, rule.id),
        }
        should.append({"bool": {**clause, "_name": str(n)}})
    body: dict[str, Any] = {
        "query": {"bool": {"filter": [_span_clause(items)], "should": should, "minimum_should_match": 1}},
        "size": size,
        "sort": SORT_PIT if pit_id else SORT_PLAIN,
        "track_total_hits": True,
    }
    if pit_id:
        body["pit"] = {"id": pit_id, "keep_alive": "1m"}
    if search_after is not None:
        body["search_after"] = search_after
    return body


def search_body(
    rule: ScheduledRule,
    window: Window,
    exceptions: Iterable[Mapping[str, Any]] = (),
    *,
    size: int,
    pit_id: str | None = None,
    search_after: list[Any] | None = None,
) -> dict[str, Any]:
    """The body of one search (an ``_msearch`` line, or a paged search with a point in time)."""
    if rule.query is None:
        raise ValueError(f"rule {rule.id} has no query (a correlation)")
    body: dict[str, Any] = {
        "query": {
            "bool": {
                "filter": [rule.query, window_clause(window, rule.time_field)],
                "must_not": exception_clauses(exceptions, rule.id),
            }
        },
        "size": size,
        "sort": SORT_PIT if pit_id else SORT_PLAIN,
        "track_total_hits": True,
        "seq_no_primary_term": False,
    }
    if pit_id:
        body["pit"] = {"id": pit_id, "keep_alive": "1m"}
    if search_after is not None:
        body["search_after"] = search_after
    return body
