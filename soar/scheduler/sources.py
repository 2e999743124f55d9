"""Where a detection cycle reads events: Elasticsearch (production) or the embedded SQLite store.

The Detector plans windows, writes alerts and moves checkpoints the same way for
both; only fetching differs. An event source answers which events each search (a plain
rule, or one base rule of a correlation) matched in a window, and, for a correlation
the cycle cannot batch (a chained one), which base-rule events it sees.
"""

from __future__ import annotations

import fnmatch
import ipaddress
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from elasticsearch import Elasticsearch

from soar.detection import CompiledRule, CorrelationEvent
from soar.detection.elastic import correlation_events as es_correlation_events
from soar.detection.embedded import EventStore
from soar.detection.embedded import correlation_events as embedded_correlation_events
from soar.scheduler.overlong import OverlongSweep
from soar.scheduler.planning import Window, iso
from soar.scheduler.query import applies_to, exception_clauses, too_broad
from soar.scheduler.rules import ScheduledRule
from soar.scheduler.search import Job, JobResult, RequestCounter, Searcher

EMBEDDED_INDEX = "embedded"


class EventSource(Protocol):
    def search(
        self,
        jobs: Sequence[Job],
        exceptions: Sequence[Mapping[str, Any]],
        counter: RequestCounter,
        *,
        page_size: int,
        batch_size: int,
    ) -> list[JobResult]: ...

    def correlation_events(
        self, rule: ScheduledRule, window: Window, exceptions: Sequence[Mapping[str, Any]]
    ) -> list[CorrelationEvent]: ...


class ElasticsearchSource:
    """Every due rule in combined ``_msearch`` requests, paged in a point in time."""

    def __init__(self, es: Elasticsearch, *, search_timeout: float | None = None) -> None:
        self.es = es
        self.search_timeout = search_timeout

    def search(
        self,
        jobs: Sequence[Job],
        exceptions: Sequence[Mapping[str, Any]],
        counter: RequestCounter,
        *,
        page_size: int,
        batch_size: int,
    ) -> list[JobResult]:
        searcher = Searcher(
            self.es,
            page_size=page_size,
            batch_size=batch_size,
            exceptions=exceptions,
            counter=counter,
            timeout=self.search_timeout,
            sweep=OverlongSweep(exceptions, page_size=page_size),
        )
        return searcher.run(jobs)

    def correlation_events(
        self, rule: ScheduledRule, window: Window, exceptions: Sequence[Mapping[str, Any]]
    ) -> list[CorrelationEvent]:
        clauses = exception_clauses(exceptions, rule.id)
        filters = [{"bool": {"must_not": clauses}}] if clauses else []
        span = (iso(window.start), iso(window.end))
        return es_correlation_events(self.es, rule.index, rule.correlation, span, filters)


def _get(flat: Mapping[str, Any], field: str) -> list[Any]:
    value = flat.get(field)
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _excepted_value(actual: Any, pattern: Any) -> bool:
    """The embedded twin of ``query.value_clause``: CIDR, case-insensitive glob, or exact value."""
    if isinstance(pattern, str) and "/" in pattern:
        try:
            return ipaddress.ip_address(str(actual)) in ipaddress.ip_network(pattern, strict=False)
        except ValueError:
            pass
    if isinstance(pattern, str) and ("*" in pattern or "?" in pattern):
        # like Elasticsearch's wildcard query: only * and ? are special ([ is a literal character)
        return fnmatch.fnmatchcase(str(actual).lower(), pattern.lower().replace("[", "[[]"))
    if isinstance(pattern, str) and isinstance(actual, str):
        return actual.lower() == pattern.lower()  # keyword fields carry a lowercase normalizer
    return bool(actual == pattern)


def excepted(flat: Mapping[str, Any], exceptions: Sequence[Mapping[str, Any]], rule_id: str) -> bool:
    for exc in exceptions:
        field = exc.get("field")
        if not applies_to(exc, rule_id) or not isinstance(field, str):
            continue
        values = exc.get("values")
        patterns = values if isinstance(values, list) else [values]
        patterns = [p for p in patterns if p is not None and not too_broad(p)]
        if any(_excepted_value(a, p) for a in _get(flat, field) for p in patterns):
            return True
    return False


class EmbeddedSource:
    """The embedded event store, with the same compiled rules (embedded target) as production."""

    def __init__(self, events: EventStore, compiled: Mapping[str, CompiledRule]) -> None:
        self.events = events
        self.compiled = compiled  # rule id -> CompiledRule for target "embedded"

    def _window_ids(self, window: Window) -> list[int]:
        rows = self.events.db.execute(
            "SELECT id FROM events WHERE ts >= ? AND ts < ? ORDER BY ts, id", (window.start, window.end)
        )
        return [int(r[0]) for r in rows]

    def _compiled_for(self, job: Job) -> CompiledRule | None:
        """The rule's embedded compilation, or its base rule's when the job is a correlation part."""
        compiled = self.compiled.get(job.rule.id)
        if job.part is None or compiled is None:
            return compiled
        bases = compiled.correlation.rules if compiled.correlation is not None else ()
        return next((b for b in bases if b.rule_id == job.part), None)

    def search(
        self,
        jobs: Sequence[Job],
        exceptions: Sequence[Mapping[str, Any]],
        counter: RequestCounter,
        *,
        page_size: int,
        batch_size: int,
    ) -> list[JobResult]:
        results = []
        for job in jobs:
            counter.search += 1
            res = JobResult(job)
            compiled = self._compiled_for(job)
            if compiled is None or compiled.query is None:
                results.append(res)
                continue
            ids = [
                i
                for i in self.events.search(compiled, self._window_ids(job.window))
                if not excepted(self.events.flat(i), exceptions, job.rule.id)
            ]
            res.total = len(ids)
            docs = self.events.events(ids[: job.limit])
            res.hits = [
                {"_index": EMBEDDED_INDEX, "_id": str(i), "_source": doc} for i, doc in zip(ids, docs, strict=False)
            ]
            results.append(res)
        return results

    def correlation_events(
        self, rule: ScheduledRule, window: Window, exceptions: Sequence[Mapping[str, Any]]
    ) -> list[CorrelationEvent]:
        compiled = self.compiled.get(rule.id)
        if compiled is None or compiled.correlation is None:
            return []
        found = embedded_correlation_events(self.events, compiled.correlation, self._window_ids(window))
        return [e for e in found if not excepted(self.events.flat(int(e.ref)), exceptions, rule.id)]
