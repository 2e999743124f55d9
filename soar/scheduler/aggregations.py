"""Group counts for soar's own rule types, on Elasticsearch (composite aggregations) or the embedded store.

Two questions, asked for many rules at once:

* :meth:`groups`: per value combination of some fields, among the base selection's events in a window,
  the first and last event time and how many events fall in each named sub-range. On Elasticsearch,
  one composite aggregation per ask, every ask of a round in one ``_msearch`` (later pages: further rounds).
* :meth:`firsts`: the first event of one combination in a window (sorted by time), one search per ask,
  all in one ``_msearch``: how a candidate first-seen value is confirmed against the events themselves.

Both engines answer alike (``tests/integration/scheduler/test_baselines_engines.py`` compares them): times are
whole milliseconds, windows ``[start, end)``, a combination is the fields' values as strings (an event
lacking one counts for none; a multi-valued field counts for each value), exceptions are left out.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import product
from typing import Any, Protocol

from elastic_transport import ConnectionError as ESConnectionError
from elastic_transport import ConnectionTimeout as ESConnectionTimeout
from elasticsearch import ApiError, Elasticsearch

from soar.detection.embedded import EventStore, address
from soar.scheduler.planning import Window, iso
from soar.scheduler.query import TIMESTAMP, exception_clauses
from soar.scheduler.rules import ScheduledRule
from soar.scheduler.search import RequestCounter, SearchError, _check_response, _took, classify, unavailable
from soar.scheduler.sources import EMBEDDED_INDEX, excepted

Key = tuple[str, ...]
PAGE = 5000  # composite buckets per page (under search.max_buckets)


def ms_window(window: Window) -> Window:
    """A window on whole milliseconds (what both engines compare event times with)."""
    return Window(float(int(window.start * 1000)) / 1000, float(int(window.end * 1000)) / 1000)


@dataclass
class Group:
    first_ms: int
    last_ms: int
    counts: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Ask:
    """The groups of ``fields`` among ``rule``'s base events in ``window``, counted per named sub-range."""

    rule: ScheduledRule
    fields: tuple[str, ...]
    window: Window
    ranges: Mapping[str, Window] = field(default_factory=dict)


@dataclass(frozen=True)
class FirstAsk:
    """The first base event in ``window`` whose ``fields`` hold ``key``."""

    rule: ScheduledRule
    fields: tuple[str, ...]
    key: Key
    window: Window


@dataclass
class Answer:
    groups: dict[Key, Group] = field(default_factory=dict)
    error: SearchError | None = None
    took: float = 0.0


@dataclass
class First:
    hit: dict[str, Any] | None = None  # {_index, _id, _source}
    error: SearchError | None = None


class Aggregator(Protocol):
    def groups(
        self, asks: Sequence[Ask], exceptions: Sequence[Mapping[str, Any]], counter: RequestCounter
    ) -> list[Answer]: ...

    def firsts(
        self, asks: Sequence[FirstAsk], exceptions: Sequence[Mapping[str, Any]], counter: RequestCounter
    ) -> list[First]: ...


def _range(window: Window) -> dict[str, Any]:
    return {"range": {TIMESTAMP: {"gte": iso(window.start), "lt": iso(window.end)}}}


def _filter(rule: ScheduledRule, window: Window, exceptions: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    query = rule.baseline.query
    return {"bool": {"filter": [query, _range(window)], "must_not": exception_clauses(exceptions, rule.id)}}


def _key_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class ElasticsearchAggregator:
    def __init__(self, es: Elasticsearch, *, timeout: float | None = None) -> None:
        self.es = es
        self.timeout = timeout

    def _msearch(self, lines: list[dict[str, Any]], counter: RequestCounter) -> list[dict[str, Any]] | SearchError:
        if self.timeout:
            lines = [ln if "index" in ln else {**ln, "timeout": f"{round(self.timeout * 1000)}ms"} for ln in lines]
        try:
            counter.msearch += 1
            return list(self.es.msearch(searches=lines)["responses"])
        except (ESConnectionError, ESConnectionTimeout) as exc:
            return unavailable(exc)
        except ApiError as exc:
            body = exc.body
            return classify(int(exc.meta.status), body.get("error", body) if isinstance(body, Mapping) else exc.message)

    def _body(self, ask: Ask, exceptions: Sequence[Mapping[str, Any]], after: Any) -> dict[str, Any]:
        sub: dict[str, Any] = {"first": {"min": {"field": TIMESTAMP}}, "last": {"max": {"field": TIMESTAMP}}}
        if ask.ranges:
            sub["ranges"] = {"filters": {"filters": {n: _range(w) for n, w in ask.ranges.items()}}}
        composite: dict[str, Any] = {
            "size": PAGE,
            "sources": [{str(i): {"terms": {"field": f}}} for i, f in enumerate(ask.fields)],
        }
        if after is not None:
            composite["after"] = after
        return {
            "size": 0,
            "track_total_hits": False,
            "query": _filter(ask.rule, ask.window, exceptions),
            "aggs": {"g": {"composite": composite, "aggs": sub}},
        }

    def groups(
        self, asks: Sequence[Ask], exceptions: Sequence[Mapping[str, Any]], counter: RequestCounter
    ) -> list[Answer]:
        answers = [Answer() for _ in asks]
        todo: dict[int, Any] = dict.fromkeys(range(len(asks)))  # ask -> after key (None: first page)
        while todo:
            order = list(todo)
            lines: list[dict[str, Any]] = []
            for i in order:
                lines += [{"index": asks[i].rule.index}, self._body(asks[i], exceptions, todo[i])]
            resp = self._msearch(lines, counter)
            if isinstance(resp, SearchError):
                for i in order:
                    answers[i].error = resp
                return answers
            todo = {}
            for i, item in zip(order, resp, strict=True):
                answers[i].took += _took(item)
                error = (
                    classify(int(item.get("status", 500)), item["error"]) if "error" in item else _check_response(item)
                )
                if error is not None:
                    answers[i].error, answers[i].groups = error, {}
                    continue
                agg = item.get("aggregations", {}).get("g", {})
                buckets = agg.get("buckets") or []
                for b in buckets:
                    key = tuple(_key_text(b["key"][str(n)]) for n in range(len(asks[i].fields)))
                    counts = {n: int(v["doc_count"]) for n, v in (b.get("ranges", {}).get("buckets") or {}).items()}
                    answers[i].groups[key] = Group(int(b["first"]["value"]), int(b["last"]["value"]), counts)
                if len(buckets) >= PAGE and agg.get("after_key"):
                    todo[i] = agg["after_key"]
        return answers

    def firsts(
        self, asks: Sequence[FirstAsk], exceptions: Sequence[Mapping[str, Any]], counter: RequestCounter
    ) -> list[First]:
        out = [First() for _ in asks]
        if not asks:
            return out
        lines: list[dict[str, Any]] = []
        for ask in asks:
            body = _filter(ask.rule, ask.window, exceptions)
            body["bool"]["filter"] += [{"term": {f: v}} for f, v in zip(ask.fields, ask.key, strict=True)]
            sort = [{TIMESTAMP: {"order": "asc", "format": "strict_date_optional_time_nanos"}}]
            lines += [{"index": ask.rule.index}, {"size": 1, "query": body, "sort": sort, "track_total_hits": False}]
        resp = self._msearch(lines, counter)
        for n, first in enumerate(out):
            if isinstance(resp, SearchError):
                first.error = resp
                continue
            item = resp[n]
            first.error = (
                classify(int(item.get("status", 500)), item["error"]) if "error" in item else _check_response(item)
            )
            hits = (item.get("hits") or {}).get("hits") or []
            if first.error is None and hits:
                first.hit = {k: hits[0].get(k) for k in ("_index", "_id", "_source")}
        return out


def _values(flat: Mapping[str, Any], name: str) -> list[str]:
    from soar.detection._ecs import field_type

    raw = flat.get(name)
    values = raw if isinstance(raw, list) else [raw]
    out: list[str] = []
    for v in values:
        if v is None or isinstance(v, dict | list):
            continue
        if field_type(name) == "ip":
            found = address(v)
            if found is None:
                continue
            out.append(str(found))
        else:
            out.append(_key_text(v))
    return sorted(set(out))


class EmbeddedAggregator:
    """The same answers from the embedded event store (the base selection compiled to SQL)."""

    def __init__(self, events: EventStore, compiled: Mapping[str, Any] | None = None) -> None:
        self.events = events
        self.compiled = compiled or {}
        self._sql: dict[str, str] = {}

    def _where(self, rule: ScheduledRule) -> str:
        base = rule.baseline.base
        if base.content_hash not in self._sql:
            known = self.compiled.get(base.id)
            if known is not None and known.query is not None:
                self._sql[base.content_hash] = str(known.query)
            else:
                from soar.detection import compile_rule

                self._sql[base.content_hash] = str(compile_rule(base, "embedded").query)
        return self._sql[base.content_hash]

    def _rows(
        self, rule: ScheduledRule, window: Window, exceptions: Sequence[Mapping[str, Any]]
    ) -> list[tuple[int, int, dict[str, Any]]]:
        """(ms, id, flat) of the base events in ``window``, in time order, exceptions left out."""
        lo, hi = int(window.start * 1000), int(window.end * 1000)
        sql = f"SELECT id, ts, flat FROM events WHERE ts >= ? AND ts < ? AND ({self._where(rule)}) ORDER BY ts, id"  # noqa: S608 - compiled by pySigma
        out = []
        for event_id, ts, flat_text in self.events.db.execute(sql, (lo / 1000 - 0.002, hi / 1000 + 0.002)):
            ms = round(float(ts) * 1000)
            if lo <= ms < hi:
                flat = json.loads(flat_text)
                if not excepted(flat, exceptions, rule.id):
                    out.append((ms, int(event_id), flat))
        return out

    def groups(
        self, asks: Sequence[Ask], exceptions: Sequence[Mapping[str, Any]], counter: RequestCounter
    ) -> list[Answer]:
        answers = []
        for ask in asks:
            counter.search += 1
            answer = Answer()
            bounds = {n: (int(w.start * 1000), int(w.end * 1000)) for n, w in ask.ranges.items()}
            for ms, _id, flat in self._rows(ask.rule, ask.window, exceptions):
                for key in product(*(_values(flat, f) for f in ask.fields)):
                    group = answer.groups.get(key)
                    if group is None:
                        group = answer.groups[key] = Group(ms, ms, dict.fromkeys(bounds, 0))
                    group.first_ms, group.last_ms = min(group.first_ms, ms), max(group.last_ms, ms)
                    for n, (lo, hi) in bounds.items():
                        group.counts[n] += lo <= ms < hi
            answers.append(answer)
        return answers

    def firsts(
        self, asks: Sequence[FirstAsk], exceptions: Sequence[Mapping[str, Any]], counter: RequestCounter
    ) -> list[First]:
        out = []
        for ask in asks:
            counter.search += 1
            first = First()
            for _ms, event_id, flat in self._rows(ask.rule, ask.window, exceptions):
                if all(v in _values(flat, f) for f, v in zip(ask.fields, ask.key, strict=True)):
                    doc = self.events.events([event_id])[0]
                    first.hit = {"_index": EMBEDDED_INDEX, "_id": str(event_id), "_source": doc}
                    break
            out.append(first)
        return out
