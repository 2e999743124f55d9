"""The fetch path: a cycle's events of an index read once, every due rule matched against them in process.

The search path (:mod:`soar.scheduler.search`) sends every due rule to Elasticsearch as a clause of a
combined search: Elasticsearch's work grows with the number of rules. The fetch path reads the events of
the cycle's windows once per index (one search over the union of the windows, by ``@timestamp``, paged in a
point in time) and evaluates each rule's compiled query on them here (:mod:`soar.detection.dsl_match`,
Elasticsearch's meaning on ECS mappings); each event is evaluated against each rule once, however many
overlapping windows re-read it (a memo keyed by the event's index, id, sequence number and primary term).

Nothing else changes: the windows are the ones :func:`soar.scheduler.planning.plan_run` gives (look-back
for late events), each job gets the hits a search of its own window would give, in time order, and the
cycle writes alerts (create-only, by fingerprint) and moves checkpoints exactly as on the search path.
What the fetch path does not take stays on the search path in the same cycle: gap chunks (a long outage's
windows), correlation parts, backfills, a rule whose query the evaluator does not define, and any cycle
whose fetch fails or would read more than :data:`MAX_EVENTS` events (the search path then classifies
errors per rule, as always).

Which path an index takes (``detection_path``): ``search``, ``fetch``, or ``auto`` — fetch when at least
:data:`MIN_RULES` rules are due on the index in this cycle and the events measured in its last fetched
window, scaled to this cycle's window, stay under :data:`MAX_EVENTS`; an index whose fetch overflowed goes
back to the search path for :data:`RETRY_AFTER` cycles, then is measured again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from elastic_transport import ConnectionError as ESConnectionError
from elastic_transport import ConnectionTimeout as ESConnectionTimeout
from elasticsearch import ApiError, Elasticsearch

from soar.detection.dsl_match import (
    Anchor,
    FlatEvent,
    Predicate,
    Unsupported,
    anchored_values,
    anchors,
    compile_query,
    flat_event,
)
from soar.detection.dsl_match import _epoch_ms as epoch_ms
from soar.detection.substrings import Substrings
from soar.scheduler.planning import Window, iso
from soar.scheduler.query import (
    INGESTED,
    SORT_PIT,
    SORT_PLAIN,
    TIMESTAMP,
    event_time_ms,
    exception_clauses,
    window_clause,
)
from soar.scheduler.rules import ScheduledRule
from soar.scheduler.search import Job, JobResult, RequestCounter

log = logging.getLogger(__name__)

PATHS = ("auto", "search", "fetch")
MIN_RULES = 8  # auto: fewer rules due on an index than this are searched (a combined search is cheap then)
MAX_EVENTS = 50_000  # events one fetch may read; beyond it the cycle's rules on that index are searched
RETRY_AFTER = 20  # cycles an index that overflowed MAX_EVENTS stays on the search path before it is measured again
MEMO_LIMIT = 500_000  # events remembered (with their match results) per process


RuleKey = tuple[str, str]  # rule id, content hash


@dataclass
class _Seen:
    """One fetched event: its hit, its time (epoch ms), the rules it could match (under which rule index), those of
    them it was judged by and those it matched."""

    hit: dict[str, Any]
    ms: int
    flat: FlatEvent | None
    ingested: int | None = None  # its event.ingested (epoch ms), if it has one

    def at(self, time_field: str) -> int:
        """Its time on a rule's clock (:func:`soar.scheduler.query.window_clause`)."""
        return self.ingested if time_field == INGESTED and self.ingested is not None else self.ms

    @property
    def latest(self) -> int:
        return max(self.ms, self.ingested or 0)

    under: _AnchorIndex | None = None
    candidates: frozenset[RuleKey] = frozenset()
    checked: set[RuleKey] = field(default_factory=set)
    matched: set[RuleKey] = field(default_factory=set)


class _AnchorIndex:
    """Rules by their anchors (:func:`soar.detection.dsl_match.anchors`): an event is judged only by the rules
    it could match — those whose anchor values it holds or whose literals are inside its values (found in one pass
    over each value, :class:`soar.detection.substrings.Substrings`), and those without anchors. Built once per rule
    set of an index, so what an event costs does not grow with the rules it cannot match."""

    def __init__(self, rules: Mapping[RuleKey, frozenset[Anchor] | None]) -> None:
        """``rules``: each rule's anchors (None: it has none, every event is judged by it)."""
        self.keys = frozenset(rules)
        self.by_value: dict[tuple[str, str], set[RuleKey]] = {}
        self.fields: set[str] = set()
        always: set[RuleKey] = set()
        inside: dict[str, dict[str, set[RuleKey]]] = {}  # field -> literal -> rules
        for key, found in rules.items():
            if found is None:
                always.add(key)
            for anchor in found or ():
                if anchor.within:
                    inside.setdefault(anchor.field, {}).setdefault(anchor.value, set()).add(key)
                else:
                    self.by_value.setdefault((anchor.field, anchor.value), set()).add(key)
                    self.fields.add(anchor.field)
        self.always = frozenset(always)
        self.inside = {name: (Substrings(lits), list(lits.values())) for name, lits in inside.items()}

    def candidates(self, event: FlatEvent) -> frozenset[RuleKey]:
        out = set(self.always)
        for name in self.fields:
            if name in event:
                for value in anchored_values(event, name, ignore_above=False):
                    found = self.by_value.get((name, value))
                    if found:
                        out |= found
        for name, (automaton, rules) in self.inside.items():
            if name in event:
                for value in anchored_values(event, name, ignore_above=False):
                    for n in automaton.found(value):
                        out |= rules[n]
        return frozenset(out)


def _anchor_index(index: str, rules: Mapping[RuleKey, Any]) -> _AnchorIndex:
    """The rule index of an Elasticsearch index: over every rule seen on it (rules due in other cycles included,
    so a cycle's subset of due rules does not rebuild it), built again only when a rule is new or changed."""
    found = MEMO.anchor_indices.get(index)
    if found is not None and all(k in found.keys for k in rules):
        return found
    known = set(found.keys) if found is not None else set()
    if len(known) > 4 * len(rules) + 1000:  # mostly rules changed or gone since: start again
        known = set()
    known.update(rules)
    for key in known - MEMO.anchors.keys():
        MEMO.anchors[key] = anchors(MEMO.queries.get(key))
    found = MEMO.anchor_indices[index] = _AnchorIndex({k: MEMO.anchors[k] for k in known})
    return found


@dataclass
class _IndexState:
    events_per_second: float | None = None  # measured by the last fetch of this index
    search_until_cycle: int = 0  # after an overflow: search, until this cycle number


@dataclass
class FetchStats:
    """What the fetch path did in one cycle (the benchmark and ``soar detect`` report it)."""

    indices: int = 0
    events: int = 0
    evaluated: int = 0  # (event, rule) pairs evaluated (the rest came from the memo)
    fallbacks: list[str] = field(default_factory=list)


class _Memo:
    """Per process: fetched events and verdicts, and per-index measurements (shared by every Detector)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: dict[tuple[str, str, Any, Any], _Seen] = {}
        self.predicates: dict[tuple[str, str], Predicate | None] = {}
        self.queries: dict[tuple[str, str], Any] = {}  # the query each predicate evaluates (for its anchors)
        self.anchors: dict[tuple[str, str], frozenset[Anchor] | None] = {}  # each rule's, once
        self.anchor_indices: dict[str, _AnchorIndex] = {}  # by Elasticsearch index
        self.exceptions_digest = ""
        self.indices: dict[str, _IndexState] = {}
        self.cycle = 0

    def reset_if_exceptions_changed(self, exceptions: Sequence[Mapping[str, Any]]) -> None:
        digest = hashlib.sha256(json.dumps(list(exceptions), sort_keys=True, default=str).encode()).hexdigest()
        if digest != self.exceptions_digest:
            self.events.clear()
            self.predicates.clear()
            self.queries.clear()
            self.anchors.clear()
            self.anchor_indices.clear()
            self.exceptions_digest = digest

    def prune(self, before_ms: int) -> None:
        if len(self.events) <= MEMO_LIMIT // 2:
            stale = [k for k, v in self.events.items() if v.latest < before_ms]
        else:  # over half full: keep only the newest half
            ordered = sorted(self.events.items(), key=lambda kv: kv[1].latest)
            stale = [k for k, _ in ordered[: len(ordered) - MEMO_LIMIT // 2]]
            stale += [k for k, v in ordered[len(ordered) - MEMO_LIMIT // 2 :] if v.latest < before_ms]
        for key in stale:
            self.events.pop(key, None)


MEMO = _Memo()


def reset() -> None:
    """Forget every memoised event and measurement (tests)."""
    global MEMO
    MEMO = _Memo()


def rule_key(rule: ScheduledRule) -> tuple[str, str]:
    return rule.id, rule.content_hash


def predicate(rule: ScheduledRule, exceptions: Sequence[Mapping[str, Any]]) -> Predicate | None:
    """The rule's query with its exceptions as one predicate; None when the evaluator does not define it."""
    key = rule_key(rule)
    if key in MEMO.predicates:
        return MEMO.predicates[key]
    pred: Predicate | None = None
    if rule.query is not None:
        clauses = exception_clauses(exceptions, rule.id)
        query = {"bool": {"filter": [rule.query], "must_not": clauses}} if clauses else rule.query
        try:
            pred = compile_query(query, ignore_above=False)  # Sigma's meaning: see soar.scheduler.overlong
        except (Unsupported, ValueError) as exc:
            log.info("rule %s is searched by Elasticsearch (not evaluated in process): %s", rule.id, exc)
        MEMO.queries[key] = query
    MEMO.predicates[key] = pred
    return pred


def fetchable(job: Job) -> bool:
    """A plain rule's normal window (gap chunks and correlation parts stay on the search path)."""
    return job.gap_id is None and job.part is None and job.rule.query is not None and job.rule.correlation is None


def choose(path: str, index: str, jobs: Sequence[Job], span: Window) -> bool:
    """Does this cycle read ``index`` once (True) or search it rule by rule (False)?"""
    if path == "search":
        return False
    if path == "fetch":
        return True
    state = MEMO.indices.get(index)
    if state is not None and MEMO.cycle < state.search_until_cycle:
        return False
    if len(jobs) < MIN_RULES:
        return False
    if state is not None and state.events_per_second is not None:
        return state.events_per_second * span.seconds <= MAX_EVENTS
    return True  # not measured yet: the first fetch measures it


class Fetcher:
    """Reads each index once per cycle and answers every fetchable job from the events read."""

    def __init__(self, es: Elasticsearch, *, page_size: int, timeout: float | None = None) -> None:
        self.es = es
        self.page_size = page_size
        self.timeout = timeout

    def run(
        self, jobs: Sequence[Job], exceptions: Sequence[Mapping[str, Any]], counter: RequestCounter, path: str
    ) -> tuple[list[JobResult], list[Job], FetchStats]:
        """(results of the jobs answered here, jobs left for the search path, what was done)."""
        stats = FetchStats()
        left: list[Job] = []
        by_index: dict[tuple[str, str], list[Job]] = {}  # one read per index and clock
        with MEMO.lock:
            MEMO.cycle += 1
            MEMO.reset_if_exceptions_changed(exceptions)
            for job in jobs:
                if fetchable(job) and predicate(job.rule, exceptions) is not None:
                    by_index.setdefault((job.rule.index, job.rule.time_field), []).append(job)
                else:
                    left.append(job)
        results: list[JobResult] = []
        for (index, time_field), group in by_index.items():
            span = Window(min(j.window.start for j in group), max(j.window.end for j in group))
            if not choose(path, index, group, span):
                left += group
                continue
            answered = self._index(index, group, span, exceptions, counter, stats, time_field)
            if answered is None:
                left += group
                stats.fallbacks.append(index)
            else:
                results += answered
        return results, left, stats

    def _index(
        self,
        index: str,
        jobs: list[Job],
        span: Window,
        exceptions: Sequence[Mapping[str, Any]],
        counter: RequestCounter,
        stats: FetchStats,
        time_field: str = TIMESTAMP,
    ) -> list[JobResult] | None:
        t0 = time.perf_counter()
        fetched = self._read(index, span, counter, time_field)
        took = time.perf_counter() - t0
        state = MEMO.indices.setdefault(index, _IndexState())
        if fetched is None:
            if self._overflowed:
                state.search_until_cycle = MEMO.cycle + RETRY_AFTER
            return None
        if span.seconds > 0:
            state.events_per_second = len(fetched) / span.seconds
        stats.indices += 1
        stats.events += len(fetched)
        with MEMO.lock:
            seen = [self._remember(hit) for hit in fetched]
            rules: dict[RuleKey, Predicate] = {}
            for job in jobs:
                pred = predicate(job.rule, exceptions)
                if pred is None:
                    return None
                rules[rule_key(job.rule)] = pred
            index_of = _anchor_index(index, rules)
            for item in seen:  # each event costs the rules it could match, not every rule
                if item.flat is None:
                    item.flat = flat_event(item.hit.get("_source") or {})
                if item.under is not index_of:
                    item.candidates, item.under = index_of.candidates(item.flat), index_of
                todo = [k for k in item.candidates if k in rules and k not in item.checked]
                if not todo:
                    continue
                for key in todo:
                    if rules[key](item.flat):
                        item.matched.add(key)
                stats.evaluated += len(todo)
                item.checked.update(todo)
            MEMO.prune(epoch_ms(iso(span.start)) or 0)
        by_rule: dict[RuleKey, list[_Seen]] = {}
        for item in seen:
            for key in item.matched:
                if key in rules:
                    by_rule.setdefault(key, []).append(item)
        results = []
        for job in jobs:
            res = JobResult(job, took=took)
            start, end = epoch_ms(iso(job.window.start)), epoch_ms(iso(job.window.end))
            assert start is not None and end is not None
            matched = [item.hit for item in by_rule.get(rule_key(job.rule), ()) if start <= item.at(time_field) < end]
            res.total = len(matched)
            res.hits = matched[: job.limit]
            results.append(res)
        return results

    def _remember(self, hit: dict[str, Any]) -> _Seen:
        key = (str(hit.get("_index")), str(hit.get("_id")), hit.get("_seq_no"), hit.get("_primary_term"))
        item = MEMO.events.get(key)
        if item is None:
            sort = hit.get("sort") or []  # the indexed @timestamp, as Elasticsearch's range compares it
            ms = epoch_ms(sort[0]) if sort and isinstance(sort[0], str) else None
            if ms is None:
                ms = epoch_ms((hit.get("_source") or {}).get(TIMESTAMP))
            source = hit.get("_source") or {}
            ingested = event_time_ms(source, INGESTED) if _has_ingested(source) else None
            item = _Seen({k: hit[k] for k in ("_index", "_id", "_source") if k in hit}, ms or 0, None, ingested)
            MEMO.events[key] = item
        return item

    _overflowed = False

    def _body(
        self, span: Window, time_field: str, pit_id: str | None = None, after: list[Any] | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "query": {"bool": {"filter": [window_clause(span, time_field)]}},
            "size": self.page_size,
            "sort": SORT_PIT if pit_id else SORT_PLAIN,
            "seq_no_primary_term": True,
            "track_total_hits": MAX_EVENTS + 1,
        }
        if pit_id:
            body["pit"] = {"id": pit_id, "keep_alive": "1m"}
        if after is not None:
            body["search_after"] = after
        if self.timeout:
            body["timeout"] = f"{round(self.timeout * 1000)}ms"
        return body

    def _read(
        self, index: str, span: Window, counter: RequestCounter, time_field: str = TIMESTAMP
    ) -> list[dict[str, Any]] | None:
        """Every event of ``index`` in ``span`` (a point in time when over a page); None to search instead."""
        self._overflowed = False
        try:
            counter.search += 1
            resp = self.es.search(index=index, **self._body(span, time_field)).body
            if not _complete(resp):
                return None
            hits: list[dict[str, Any]] = list(resp["hits"]["hits"])
            total = int(resp["hits"]["total"]["value"])
            if total > MAX_EVENTS:
                self._overflowed = True
                return None
            if len(hits) >= total:
                return hits
            counter.pit += 1
            pit_id = self.es.open_point_in_time(index=index, keep_alive="1m")["id"]
        except (ApiError, ESConnectionError, ESConnectionTimeout):
            return None
        hits = []
        after: list[Any] | None = None
        try:
            while True:
                counter.search += 1
                resp = self.es.search(**self._body(span, time_field, pit_id, after)).body
                pit_id = resp.get("pit_id", pit_id)
                if not _complete(resp):
                    return None
                page = resp["hits"]["hits"]
                hits.extend(page)
                if len(hits) > MAX_EVENTS:
                    self._overflowed = True
                    return None
                if len(page) < self.page_size:
                    return hits
                after = page[-1]["sort"]
        except (ApiError, ESConnectionError, ESConnectionTimeout):
            return None
        finally:
            try:
                counter.pit += 1
                self.es.close_point_in_time(id=pit_id)
            except Exception:  # noqa: S110 (a point in time expires on its own after keep_alive)
                pass


def _has_ingested(source: Mapping[str, Any]) -> bool:
    event = source.get("event")
    return (event.get("ingested") if isinstance(event, Mapping) else source.get(INGESTED)) is not None


def _complete(resp: Mapping[str, Any]) -> bool:
    """A whole answer: not timed out, no shard failed (else the search path decides what went wrong)."""
    shards = resp.get("_shards") or {}
    return not resp.get("timed_out") and not shards.get("failed")
