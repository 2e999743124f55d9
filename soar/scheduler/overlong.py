"""Values too long for the index: judged here, with Sigma's meaning, instead of silently missed.

Elasticsearch indexes no keyword value longer than its field's ``ignore_above`` (1,024 characters on most
ECS keywords, and on every string outside ECS through the ``strings_as_keyword`` template). Such a value
matches no query, not even ``exists``: an intruder who pads one argument of a command line past it escapes
every rule on that field, on any real cluster — and a negated condition on it matches where Sigma says it
does not. Elasticsearch does name such a document's fields in its ``_ignored`` metadata field, which is
searchable.

So every cycle's ``_msearch`` carries, per index, one more search: the documents of the cycle's span that
have ``_ignored`` (normally none — it costs no extra request). Each rule whose query the in-process
evaluator defines (:mod:`soar.detection.dsl_match`, compiled without the length limit, the fetch path's
predicate) then judges those documents itself: Elasticsearch's verdicts on them are dropped from the
rule's hits and the documents the rule really matches, in its own window and after its exceptions, take
their place. A rule the evaluator does not define keeps Elasticsearch's verdicts (the length limit stays
its meaning there). At most :data:`MAX_DOCUMENTS` such documents are judged per index and cycle; beyond it
(a flood of padded documents) the rest keep Elasticsearch's verdicts and a warning says so.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from elastic_transport import ConnectionError as ESConnectionError
from elastic_transport import ConnectionTimeout as ESConnectionTimeout
from elasticsearch import ApiError

from soar.detection.dsl_match import FlatEvent, Predicate, flat_event
from soar.detection.dsl_match import _epoch_ms as epoch_ms
from soar.scheduler import fetch
from soar.scheduler.planning import Window, iso
from soar.scheduler.query import SORT_PIT, SORT_PLAIN, TIMESTAMP, event_time_ms, window_clause
from soar.scheduler.search import JobResult, Searcher

log = logging.getLogger(__name__)

IGNORED = "_ignored"
MAX_DOCUMENTS = 10_000  # per index and cycle


def sweep_body(
    span: Window,
    *,
    size: int,
    time_field: str = TIMESTAMP,
    pit_id: str | None = None,
    after: list[Any] | None = None,
) -> dict[str, Any]:
    """The documents of ``span`` (on the rules' clock) holding a value Elasticsearch did not index, oldest first."""
    body: dict[str, Any] = {
        "query": {"bool": {"filter": [window_clause(span, time_field), {"exists": {"field": IGNORED}}]}},
        "size": size,
        "sort": SORT_PIT if pit_id else SORT_PLAIN,
        "track_total_hits": MAX_DOCUMENTS + 1,
    }
    if pit_id:
        body["pit"] = {"id": pit_id, "keep_alive": "1m"}
    if after is not None:
        body["search_after"] = after
    return body


def _key(hit: Mapping[str, Any]) -> tuple[str, str]:
    return str(hit.get("_index")), str(hit.get("_id"))


def _ms(hit: Mapping[str, Any], time_field: str) -> int | None:
    sort = hit.get("sort") or []
    found = epoch_ms(sort[0]) if time_field == TIMESTAMP and sort and isinstance(sort[0], str) else None
    return found if found is not None else event_time_ms(hit.get("_source") or {}, time_field)


class _Index:
    """One index's sweep on one clock: the jobs it serves, their span, and the documents found."""

    def __init__(self, index: str, time_field: str, results: list[JobResult]) -> None:
        self.index = index
        self.time_field = time_field
        self.results = results
        self.span = Window(min(r.job.window.start for r in results), max(r.job.window.end for r in results))
        self.hits: list[dict[str, Any]] | None = None  # None: not (completely) read
        self.total = 0


class OverlongSweep:
    """Plugged into a :class:`~soar.scheduler.search.Searcher`: its searches ride in the cycle's ``_msearch``."""

    def __init__(self, exceptions: Sequence[Mapping[str, Any]], *, page_size: int) -> None:
        self.exceptions = list(exceptions)
        self.page_size = page_size
        self.indices: list[_Index] = []

    def _judge(self, res: JobResult) -> Predicate | None:
        job = res.job
        if res.error is not None or job.rule.query is None or job.rule.correlation is not None:
            return None
        return fetch.predicate(job.rule, self.exceptions)

    def searches(self, results: Sequence[JobResult]) -> list[dict[str, Any]]:
        """Header and body lines to append to the cycle's ``_msearch``: one search per index."""
        by_index: dict[tuple[str, str], list[JobResult]] = {}
        for res in results:
            rule = res.job.rule
            if rule.query is not None and rule.correlation is None:
                by_index.setdefault((rule.index, rule.time_field), []).append(res)
        self.indices = [_Index(index, clock, group) for (index, clock), group in by_index.items()]
        lines: list[dict[str, Any]] = []
        for sweep in self.indices:
            lines += [{"index": sweep.index}, self._body(sweep)]
        return lines

    def _body(self, sweep: _Index, pit_id: str | None = None, after: list[Any] | None = None) -> dict[str, Any]:
        return sweep_body(sweep.span, size=self.page_size, time_field=sweep.time_field, pit_id=pit_id, after=after)

    def take(self, responses: Sequence[Mapping[str, Any]]) -> None:
        """The first page of each index's sweep, from the ``_msearch`` response (in :meth:`searches` order)."""
        for sweep, resp in zip(self.indices, responses, strict=False):
            if "error" in resp or resp.get("timed_out") or (resp.get("_shards") or {}).get("failed"):
                continue
            hits = resp.get("hits") or {}
            sweep.total = int((hits.get("total") or {}).get("value", 0))
            sweep.hits = list(hits.get("hits") or [])

    def finish(self, searcher: Searcher) -> None:
        """Read what the first pages left, then judge each rule's documents with values too long to index."""
        unread = [s for s in self.indices if s.hits is None and any(r.error is None for r in s.results)]
        if unread:  # not combined into the cycle's _msearch (or it failed there): one _msearch of its own
            lines: list[dict[str, Any]] = []
            for sweep in unread:
                lines += [{"index": sweep.index}, self._body(sweep)]
            try:
                searcher.counter.msearch += 1
                responses = searcher.es.msearch(searches=lines)["responses"]
            except (ApiError, ESConnectionError, ESConnectionTimeout) as exc:
                log.warning("values too long to index were not checked this cycle: %s", exc)
                responses = []
            self._take_unread(unread, responses)
        for sweep in self.indices:
            if sweep.hits is None:
                continue
            if len(sweep.hits) < min(sweep.total, MAX_DOCUMENTS):
                self._page(searcher, sweep)
            if sweep.total > len(sweep.hits):
                log.warning(
                    "%s: %d documents hold values too long to index in one cycle; the first %d are judged in "
                    "process, the rest by Elasticsearch (which cannot see those values)",
                    sweep.index,
                    sweep.total,
                    len(sweep.hits),
                )
            if sweep.hits:
                self._apply(sweep)

    def _take_unread(self, unread: list[_Index], responses: Sequence[Mapping[str, Any]]) -> None:
        saved, self.indices = self.indices, unread
        try:
            self.take(responses)
        finally:
            self.indices = saved

    def _page(self, searcher: Searcher, sweep: _Index) -> None:
        """The rest of the sweep in a point in time (a flood of padded documents), up to MAX_DOCUMENTS."""
        es = searcher.es
        try:
            searcher.counter.pit += 1
            pit_id = es.open_point_in_time(index=sweep.index, keep_alive="1m")["id"]
        except (ApiError, ESConnectionError, ESConnectionTimeout):
            return  # the first page stays judged; the rest keeps Elasticsearch's verdicts
        hits: list[dict[str, Any]] = []
        after: list[Any] | None = None
        try:
            while len(hits) < MAX_DOCUMENTS:
                searcher.counter.search += 1
                resp = es.search(**self._body(sweep, pit_id, after)).body
                pit_id = resp.get("pit_id", pit_id)
                if resp.get("timed_out") or (resp.get("_shards") or {}).get("failed"):
                    return
                page = resp["hits"]["hits"]
                hits.extend(page)
                if len(page) < self.page_size:
                    break
                after = page[-1]["sort"]
            sweep.hits = hits[:MAX_DOCUMENTS]
        except (ApiError, ESConnectionError, ESConnectionTimeout):
            return
        finally:
            try:
                searcher.counter.pit += 1
                es.close_point_in_time(id=pit_id)
            except Exception:  # noqa: S110 (a point in time expires on its own after keep_alive)
                pass

    def _apply(self, sweep: _Index) -> None:
        assert sweep.hits is not None
        judged = {_key(h) for h in sweep.hits}
        flats: dict[tuple[str, str], FlatEvent] = {}
        for res in sweep.results:
            pred = self._judge(res)
            if pred is None:
                continue
            start, end = epoch_ms(iso(res.job.window.start)), epoch_ms(iso(res.job.window.end))
            kept = [h for h in res.hits if _key(h) not in judged]
            found = []
            for hit in sweep.hits:
                ms = _ms(hit, sweep.time_field)
                if ms is None or start is None or end is None or not start <= ms < end:
                    continue
                key = _key(hit)
                if key not in flats:
                    flats[key] = flat_event(hit.get("_source") or {})
                if pred(flats[key]):
                    found.append(hit)
            dropped = len(res.hits) - len(kept)
            if not found and not dropped:
                continue
            merged = sorted(kept + found, key=lambda h: _ms(h, sweep.time_field) or 0)
            res.total = max(0, res.total - dropped) + len(found)
            res.hits = merged[: res.job.limit]
