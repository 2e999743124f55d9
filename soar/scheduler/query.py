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


def _range(window: Window) -> dict[str, Any]:
    return {"range": {TIMESTAMP: {"gte": iso(window.start), "lt": iso(window.end)}}}


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
        clause = {"filter": [rule.query, _range(window)], "must_not": exception_clauses(exceptions, rule.id)}
        should.append({"bool": {**clause, "_name": str(n)}})
    span = Window(min(w.start for _, w in items), max(w.end for _, w in items))
    body: dict[str, Any] = {
        "query": {"bool": {"filter": [_range(span)], "should": should, "minimum_should_match": 1}},
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
        "query": {"bool": {"filter": [rule.query, _range(window)], "must_not": exception_clauses(exceptions, rule.id)}},
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
