"""Searching Elasticsearch for many rules at once: one ``_msearch``, combined searches, point-in-time paging.

Every search of a cycle (normal windows and gap chunks) goes out in one ``_msearch``
request. Within it, up to ``batch_size`` rules on the same index share one *combined*
search — each rule a named clause with its own window and exceptions, each hit saying
which clauses it matched — so Elasticsearch reads the index once for all of them. A
search whose first page is full is paged to the end with ``search_after`` inside a point
in time, so results beyond 10,000 hits are complete and consistent; where the server offers
no point in time, the window is halved until each part fits in one page.

Errors stay per rule: when a combined search fails (a rejected query, a missing index,
shard failures such as a mapping conflict, a timeout), its rules are searched again one
by one (an ``_msearch`` of single-rule searches), so only the rule at fault fails.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from elastic_transport import ConnectionError as ESConnectionError
from elastic_transport import ConnectionTimeout as ESConnectionTimeout
from elasticsearch import ApiError, Elasticsearch

from soar.scheduler.planning import Window
from soar.scheduler.query import combined_body, search_body
from soar.scheduler.rules import ScheduledRule

# Root-cause types meaning "this query will never work": the rule is disabled until it changes.
REJECTED = frozenset(
    {
        "query_shard_exception",
        "parsing_exception",
        "x_content_parse_exception",
        "query_string_parse_exception",
        "search_parse_exception",
        "illegal_argument_exception",
        "too_many_nested_clauses",
    }
)


@dataclass(frozen=True)
class SearchError:
    """Why one rule's search failed; ``disable`` when Elasticsearch rejected the query itself."""

    kind: str  # rejected | missing_index | shard_failures | timeout | unavailable | error
    message: str
    disable: bool = False


@dataclass(frozen=True)
class Job:
    """One search to run: a rule over a window; ``gap_id`` when it fills a recorded gap.

    ``part`` names the base rule when the search is one part of a correlation (its query
    is the base rule's, its id the correlation's, so the correlation's exceptions apply).
    """

    rule: ScheduledRule
    window: Window
    limit: int  # stop paging after this many hits
    gap_id: str | None = None
    part: str | None = None


@dataclass
class JobResult:
    job: Job
    hits: list[dict[str, Any]] = field(default_factory=list)
    total: int = 0
    error: SearchError | None = None
    events: list[Any] = field(default_factory=list)  # a correlation's base-rule events (CorrelationEvent)
    took: float = 0.0  # seconds Elasticsearch spent on the searches that served this job (shared when combined)

    @property
    def capped(self) -> int:
        return max(0, self.total - len(self.hits)) if self.error is None else 0


@dataclass
class RequestCounter:
    """How many requests the searches cost (the benchmark reports it)."""

    msearch: int = 0
    search: int = 0
    pit: int = 0

    @property
    def total(self) -> int:
        return self.msearch + self.search + self.pit


def _root_cause(error: Mapping[str, Any]) -> tuple[str, str]:
    causes = error.get("root_cause") or []
    cause = causes[0] if causes and isinstance(causes[0], Mapping) else error
    return str(cause.get("type", error.get("type", "error"))), str(cause.get("reason", error.get("reason", "")))


def classify(status: int, error: Any) -> SearchError:
    if not isinstance(error, Mapping):
        return SearchError("error", str(error)[:500])
    kind, reason = _root_cause(error)
    if kind == "index_not_found_exception" or status == 404:
        return SearchError("missing_index", f"{kind}: {reason}"[:500])
    if status in (400,) and (kind in REJECTED or error.get("type") in REJECTED or "parse" in kind):
        return SearchError("rejected", f"Elasticsearch rejected the query: {kind}: {reason}"[:500], disable=True)
    if status in (408, 504) or "timeout" in kind:
        return SearchError("timeout", f"{kind}: {reason}"[:500])
    return SearchError("error", f"{status} {kind}: {reason}"[:500])


def _check_response(resp: Mapping[str, Any]) -> SearchError | None:
    if resp.get("timed_out"):
        return SearchError("timeout", "the search timed out on Elasticsearch (partial results discarded)")
    shards = resp.get("_shards") or {}
    if shards.get("failed"):
        failures = shards.get("failures") or [{}]
        reason = failures[0].get("reason", {}) if isinstance(failures[0], Mapping) else {}
        kind, text = _root_cause(reason) if isinstance(reason, Mapping) else ("shard_failure", str(reason))
        if kind in REJECTED and shards.get("failed") == shards.get("total"):
            return SearchError("rejected", f"Elasticsearch rejected the query: {kind}: {text}"[:500], disable=True)
        return SearchError(
            "shard_failures", f"{shards['failed']} of {shards.get('total')} shards failed: {kind}: {text}"[:500]
        )
    return None


def _took(resp: Mapping[str, Any]) -> float:
    return float(resp.get("took") or 0) / 1000


def _hits(resp: Mapping[str, Any]) -> tuple[list[dict[str, Any]], int]:
    hits = resp.get("hits") or {}
    total = hits.get("total") or {}
    count = int(total.get("value", 0)) if isinstance(total, Mapping) else int(total or 0)
    return list(hits.get("hits") or []), count


def _items(group: Sequence[JobResult]) -> list[tuple[ScheduledRule, Window]]:
    return [(res.job.rule, res.job.window) for res in group]


def _fan_out(group: list[JobResult], hits: list[dict[str, Any]]) -> None:
    """Give each job the hits whose ``matched_queries`` name its clause; then apply its limit."""
    for res in group:
        res.hits, res.total = [], 0
    for hit in hits:
        names = hit.get("matched_queries") or []
        for name in names.keys() if isinstance(names, Mapping) else names:
            res = group[int(name)]
            res.total += 1
            if len(res.hits) < res.job.limit:
                res.hits.append(hit)


def _api_error(exc: ApiError) -> SearchError:
    body = exc.body
    return classify(int(exc.meta.status), body.get("error", body) if isinstance(body, Mapping) else exc.message)


def unavailable(exc: Exception) -> SearchError:
    from soar.connections import _reason

    return SearchError("unavailable", f"Elasticsearch is not reachable: {_reason(exc)}")


class Sweep(Protocol):
    """A second look at the jobs' hits whose first search rides in the cycle's ``_msearch``
    (:class:`soar.scheduler.overlong.OverlongSweep`)."""

    def searches(self, results: Sequence[JobResult]) -> list[dict[str, Any]]: ...

    def take(self, responses: Sequence[Mapping[str, Any]]) -> None: ...

    def finish(self, searcher: Searcher) -> None: ...


class Searcher:
    """Runs jobs against one Elasticsearch client; one instance per cycle or per process."""

    def __init__(
        self,
        es: Elasticsearch,
        *,
        page_size: int,
        batch_size: int,
        exceptions: Sequence[Mapping[str, Any]] = (),
        counter: RequestCounter | None = None,
        combine: bool = True,
        timeout: float | None = None,
        sweep: Sweep | None = None,
    ) -> None:
        self.sweep = sweep
        self.combine = combine
        self.timeout = timeout
        self.es = es
        self.page_size = page_size
        self.batch_size = batch_size
        self.exceptions = list(exceptions)
        self.counter = counter or RequestCounter()

    def run(self, jobs: Sequence[Job]) -> list[JobResult]:
        """All jobs in one ``_msearch`` of combined searches; a group that fails is retried rule by rule."""
        results = [JobResult(job) for job in jobs]
        extra = self.sweep.searches(results) if self.sweep is not None and results else []
        retry = self._combined(self._groups(results), extra) if self.combine else results
        for start in range(0, len(retry), self.batch_size):
            self._batch(retry[start : start + self.batch_size])
        for res in retry:
            if res.error is None and len(res.hits) < min(res.total, res.job.limit) and len(res.hits) >= 1:
                self._page(res)
        if self.sweep is not None and results:
            self.sweep.finish(self)
        return results

    def _groups(self, results: list[JobResult]) -> list[list[JobResult]]:
        by_index: dict[str, list[JobResult]] = {}
        for res in results:
            by_index.setdefault(res.job.rule.index, []).append(res)
        return [
            group[i : i + self.batch_size] for group in by_index.values() for i in range(0, len(group), self.batch_size)
        ]

    def _combined(self, groups: list[list[JobResult]], extra: Sequence[dict[str, Any]] = ()) -> list[JobResult]:
        """Run each group as one search (all in one ``_msearch``, with the sweep's ``extra`` lines after them);
        returns the results to retry one by one."""
        if not groups:
            return []
        searches: list[dict[str, Any]] = []
        for group in groups:
            searches.append({"index": group[0].job.rule.index})
            searches.append(self._timed(combined_body(_items(group), self.exceptions, size=self.page_size)))
        searches += [line if "index" in line else self._timed(line) for line in extra]
        try:
            self.counter.msearch += 1
            resp = self.es.msearch(searches=searches)
        except (ESConnectionError, ESConnectionTimeout) as exc:
            for group in groups:
                for res in group:
                    res.error = unavailable(exc)
            return []
        except ApiError:
            return [res for group in groups for res in group]
        retry: list[JobResult] = []
        if self.sweep is not None and extra:
            self.sweep.take(resp["responses"][len(groups) :])
        for group, item in zip(groups, resp["responses"][: len(groups)], strict=True):
            for res in group:
                res.took += _took(item)
            if "error" in item or _check_response(item) is not None:
                retry += group  # isolate the rule at fault (rejected query, shard failures, timeout)
                continue
            hits, total = _hits(item)
            if len(hits) < total:
                paged = self._page_combined(group, sum(r.job.limit for r in group))
                if paged is None:
                    retry += group
                    continue
                hits = paged
            _fan_out(group, hits)
        return retry

    def _page_combined(self, group: list[JobResult], limit: int) -> list[dict[str, Any]] | None:
        """Every hit of a combined search, paged in a point in time; None on any error (retried per rule)."""
        try:
            self.counter.pit += 1
            pit_id = self.es.open_point_in_time(index=group[0].job.rule.index, keep_alive="1m")["id"]
        except (ApiError, ESConnectionError, ESConnectionTimeout):
            return None
        hits: list[dict[str, Any]] = []
        after: list[Any] | None = None
        try:
            while len(hits) < limit:
                items = _items(group)
                body = combined_body(items, self.exceptions, size=self.page_size, pit_id=pit_id, search_after=after)
                body = self._timed(body)
                self.counter.search += 1
                resp = self.es.search(**body).body
                pit_id = resp.get("pit_id", pit_id)
                for res in group:
                    res.took += _took(resp)
                if _check_response(resp) is not None:
                    return None
                page, _ = _hits(resp)
                hits.extend(page)
                if len(page) < self.page_size:
                    break
                after = page[-1]["sort"]
        except (ApiError, ESConnectionError, ESConnectionTimeout):
            return None
        finally:
            self._close_pit(pit_id)
        return hits

    def _timed(self, body: dict[str, Any]) -> dict[str, Any]:
        """Bound the search on the server: a slow rule comes back ``timed_out`` (its own error), not the request."""
        return {**body, "timeout": f"{round(self.timeout * 1000)}ms"} if self.timeout else body

    def _size(self, job: Job) -> int:
        return max(1, min(self.page_size, job.limit))

    def _batch(self, batch: list[JobResult]) -> None:
        searches: list[dict[str, Any]] = []
        for res in batch:
            searches.append({"index": res.job.rule.index})
            body = search_body(res.job.rule, res.job.window, self.exceptions, size=self._size(res.job))
            searches.append(self._timed(body))
        try:
            self.counter.msearch += 1
            resp = self.es.msearch(searches=searches)
        except (ESConnectionError, ESConnectionTimeout) as exc:
            for res in batch:
                res.error = unavailable(exc)
            return
        except ApiError as exc:
            err = _api_error(exc)
            for res in batch:
                res.error = err
            return
        for res, item in zip(batch, resp["responses"], strict=True):
            res.took += _took(item)
            if "error" in item:
                res.error = classify(int(item.get("status", 500)), item["error"])
                continue
            res.error = _check_response(item)
            if res.error is None:
                res.hits, res.total = _hits(item)

    def _page(self, res: JobResult) -> None:
        """Fetch the whole result in a point in time (restarting from the first hit, for consistency)."""
        job = res.job
        try:
            self.counter.pit += 1
            pit_id = self.es.open_point_in_time(index=job.rule.index, keep_alive="1m")["id"]
        except (ESConnectionError, ESConnectionTimeout) as exc:
            res.error = unavailable(exc)
            return
        except ApiError as exc:
            error = _api_error(exc)
            if error.kind == "missing_index":
                res.error = error
            else:  # the server offers no point in time (or no more of them): page without one
                self._page_by_time(res)
            return
        hits: list[dict[str, Any]] = []
        after: list[Any] | None = None
        try:
            while len(hits) < job.limit:
                size = min(self.page_size, job.limit - len(hits))
                body = self._timed(
                    search_body(job.rule, job.window, self.exceptions, size=size, pit_id=pit_id, search_after=after)
                )
                self.counter.search += 1
                resp = self.es.search(**body).body
                pit_id = resp.get("pit_id", pit_id)
                res.took += _took(resp)
                err = _check_response(resp)
                if err is not None:
                    res.error = err
                    return
                page, total = _hits(resp)
                res.total = max(res.total, total)
                hits.extend(page)
                if len(page) < size:
                    break
                after = page[-1]["sort"]
            res.hits = hits
        except (ESConnectionError, ESConnectionTimeout) as exc:
            res.error = unavailable(exc)
        except ApiError as exc:
            res.error = _api_error(exc)
        finally:
            self._close_pit(pit_id)

    def _page_by_time(self, res: JobResult) -> None:
        """Page without a point in time: halve the window until each part fits in one page.

        Parts are searched in time order, one page each, so nothing rests on a sort tiebreaker
        (which ``search_after`` without a point in time would need). A part under 2 ms that
        still overflows keeps its first page; the rest counts as capped.
        """
        job = res.job
        parts = [job.window]
        hits: list[dict[str, Any]] = []
        try:
            while parts and len(hits) < job.limit:
                part = parts.pop(0)
                body = self._timed(search_body(job.rule, part, self.exceptions, size=self.page_size))
                self.counter.search += 1
                resp = self.es.search(index=job.rule.index, **body).body  # no point in time names it here
                res.took += _took(resp)
                res.error = _check_response(resp)
                if res.error is not None:
                    return
                page, count = _hits(resp)
                if len(page) < count and part.seconds >= 0.002:
                    middle = (part.start + part.end) / 2
                    parts[:0] = [Window(part.start, middle), Window(middle, part.end)]
                    continue
                hits.extend(page)
        except (ESConnectionError, ESConnectionTimeout) as exc:
            res.error = unavailable(exc)
            return
        except ApiError as exc:
            res.error = _api_error(exc)
            return
        res.hits = hits[: job.limit]

    def _close_pit(self, pit_id: str) -> None:
        try:
            self.counter.pit += 1
            self.es.close_point_in_time(id=pit_id)
        except Exception:  # noqa: S110 (a point in time expires on its own after keep_alive)
            pass
