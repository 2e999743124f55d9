"""One detection cycle: every due rule (and its open gaps) searched together, alerts written once.

The order matters for "0 missed, 0 duplicate": alerts are created (create-only, by
fingerprint) and handed off *before* the checkpoint moves past their window, so a
process killed anywhere leaves a checkpoint that makes the next run search the same
events again — which finds the same fingerprints and creates nothing twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from elasticsearch import Elasticsearch

from soar import metrics_prom as metrics
from soar.clock import SYSTEM, Clock
from soar.config import Settings
from soar.errors import SoarError
from soar.scheduler.alerting import KIND, Committed, Dispatch, Draft, commit, drafts_for_hits
from soar.scheduler.baselines import run_baseline_jobs
from soar.scheduler.correlate import (
    assemble,
    batchable,
    correlation_drafts,
    fetch_direct,
    narrow,
    part_jobs,
    raise_once,
)
from soar.scheduler.fetch import Fetcher, FetchStats
from soar.scheduler.planning import Window, chunks, iso, parse_time, plan_run
from soar.scheduler.rules import ScheduledRule
from soar.scheduler.search import Job, JobResult, RequestCounter, SearchError
from soar.scheduler.sources import ElasticsearchSource, EventSource
from soar.scheduler.state import (
    Checkpoints,
    Tally,
    advance_gaps,
    checkpoint_end,
    counted_until,
    load_checkpoints,
    open_gaps,
    record_gaps,
    write_tallies,
)
from soar.scope import Scopes, scopes_for
from soar.store import Store

log = logging.getLogger(__name__)

EXCEPTIONS = "exceptions"
MAX_GAP_JOBS = 4  # gap chunks searched per rule per cycle, so one long outage never stalls a cycle
# Events fetched per search. Not the alert cap: matches alerted by an earlier run (the look-back
# overlap) come first in time order and must not take the room of new ones; the cap counts new alerts.
FETCH_LIMIT = 100_000


@dataclass
class RuleRun:
    """What one rule did in one cycle (what ``soar detect status`` shows)."""

    rule_id: str
    window: Window | None = None
    hits: int = 0
    alerts: int = 0
    capped: int = 0
    seconds: float = 0.0
    error: SearchError | None = None
    gap: Window | None = None
    gap_seconds_filled: float = 0.0
    recounted: int = 0  # alerts an earlier run made and never counted (it died before its checkpoint write)


@dataclass
class CycleReport:
    started_at: float
    seconds: float = 0.0
    requests: RequestCounter = field(default_factory=RequestCounter)
    runs: dict[str, RuleRun] = field(default_factory=dict)
    created: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    counted: set[str] = field(default_factory=set)  # alert ids this cycle counts (made or recounted)


def _disabled(rule: ScheduledRule, checkpoint: Mapping[str, Any] | None) -> bool:
    """Disabled after Elasticsearch rejected this very content of the rule (a changed rule runs again)."""
    return bool(checkpoint and checkpoint.get("disabled") and checkpoint.get("content_hash") == rule.content_hash)


class Detector:
    """Runs cycles over a store and an event source; pure planning, I/O at the edges.

    ``events`` is an Elasticsearch client (production) or any EventSource, such as the
    embedded SQLite store the demo and ``--engine embedded`` use.
    """

    def __init__(
        self,
        settings: Settings,
        store: Store,
        events: Elasticsearch | EventSource,
        dispatch: Dispatch,
        *,
        clock: Clock = SYSTEM,
    ) -> None:
        self.settings = settings
        self.store = store
        self.source: EventSource = (
            ElasticsearchSource(events, search_timeout=settings.search_timeout)
            if isinstance(events, Elasticsearch)
            else events
        )
        self.dispatch = dispatch
        self.clock = clock.now  # the clock's now: a cycle only reads the time
        self.fetch_stats = FetchStats()  # what the fetch path did in the last cycle
        self._counted_until: dict[str, float] = {}  # per rule: alerts made up to then are in its alerts_total

    def _search(
        self, jobs: Sequence[Job], counter: RequestCounter, exceptions: list[dict[str, Any]] | None = None
    ) -> list[JobResult]:
        return self.source.search(
            jobs,
            self._exceptions() if exceptions is None else exceptions,
            counter,
            page_size=self.settings.detection_page_size,
            batch_size=self.settings.detection_batch_size,
        )

    def _jobs(self, rule: ScheduledRule, window: Window, gap_id: str | None = None) -> list[Job]:
        """A plain rule's search, or one search per base rule of a correlation (same ``_msearch``)."""
        if rule.correlation is not None and batchable(rule):
            return part_jobs(rule, window, FETCH_LIMIT, gap_id)
        return [Job(rule, window, FETCH_LIMIT, gap_id)]

    def _fetch(self, jobs: Sequence[Job], counter: RequestCounter, *, path: str | None = None) -> list[JobResult]:
        """Search every job at once; a correlation's parts come back as one result per window.

        On Elasticsearch, an index whose cycle is cheaper read once (:mod:`soar.scheduler.fetch`) answers its
        plain rules' normal windows in process; every other job goes into the cycle's ``_msearch``.
        """
        direct = [j for j in jobs if j.rule.query is None]
        queried = [j for j in jobs if j.rule.query is not None]
        found: list[JobResult] = []
        path = path or self.settings.detection_path
        if queried and path != "search" and isinstance(self.source, ElasticsearchSource):
            fetcher = Fetcher(
                self.source.es, page_size=self.settings.detection_page_size, timeout=self.source.search_timeout
            )
            exceptions = self._exceptions()
            found, queried, self.fetch_stats = fetcher.run(queried, exceptions, counter, path)
            found += self._search(queried, counter, exceptions) if queried else []
        elif queried:
            found = self._search(queried, counter)
        out = [res for res in found if res.job.part is None]
        parts: dict[tuple[str, str | None, float], list[JobResult]] = {}
        for res in found:
            if res.job.part is not None:
                parts.setdefault((res.job.rule.id, res.job.gap_id, res.job.window.start), []).append(res)
        for group in parts.values():
            out.append(assemble(group, narrow(group[0].job.rule, group[0].job.window)))
        exceptions = self._exceptions() if direct else []
        out += [fetch_direct(self.source, job, exceptions) for job in direct]
        return out

    def run(
        self,
        rules: Sequence[ScheduledRule],
        now: float | None = None,
        *,
        checkpoints: Mapping[str, dict[str, Any]] | None = None,
    ) -> CycleReport:
        """Search every given rule over its window (and its open gaps); write alerts; move checkpoints.

        ``checkpoints``: the rules' checkpoints as just read by the caller that decided they are due (the
        embedded scheduler, which runs the cycle itself under its own leases); otherwise they are read here.
        """
        now = self.clock() if now is None else now
        report = CycleReport(started_at=now)
        t0 = time.perf_counter()
        read = (
            load_checkpoints(self.store, [r.id for r in rules])
            if checkpoints is None
            else Checkpoints(checkpoints, getattr(checkpoints, "versions", None)).subset(r.id for r in rules)
        )  # without versions (a plain mapping), the checkpoint write reads them first
        rules = [
            r
            for r in rules
            if r.enabled
            and not _disabled(r, read.get(r.id))
            and (r.query is not None or r.correlation is not None or r.baseline is not None)
        ]
        self._counted_until = {r.id: counted_until(read.get(r.id)) for r in rules}
        jobs: list[Job] = []
        late: dict[str, Window] = {}
        for rule in rules:
            last_end = checkpoint_end(read.get(rule.id))
            plan = plan_run(rule, last_end, now, self.settings.detection_ingest_delay, self.settings.detection_min_gap)
            run = report.runs.setdefault(rule.id, RuleRun(rule.id, plan.window))
            if plan.gap is not None:
                late[rule.id] = run.gap = plan.gap
            if plan.window is not None:
                jobs += self._jobs(rule, plan.window)
        if late:  # after an outage every rule at once: one read and one write, not a round trip per rule
            added = record_gaps(self.store, late, "late cycle or Elasticsearch unavailable", now)
            for rule_id, seconds in added.items():
                metrics.GAP_SECONDS.labels(rule_id).inc(seconds)
        by_id = {r.id: r for r in rules}
        for rule_id, gaps in open_gaps(self.store, by_id).items():
            for gap_id, gap in gaps:
                for chunk in chunks(gap)[:MAX_GAP_JOBS]:
                    jobs += self._jobs(by_id[rule_id], chunk, gap_id)
        searched = [j for j in jobs if j.rule.baseline is None]
        results = self._fetch(searched, report.requests) if searched else []
        for res in results:
            self._alerts(res, report)
        results += run_baseline_jobs(self, [j for j in jobs if j.rule.baseline is not None], report)  # soar's types
        self._advance_gaps([r for r in results if r.job.gap_id], report)
        self._checkpoints(results, read, report, now)
        report.seconds = time.perf_counter() - t0
        metrics.CYCLE_SECONDS.observe(report.seconds)
        for run in report.runs.values():
            metrics.RULE_SECONDS.labels(run.rule_id).observe(run.seconds)
        return report

    def _exceptions(self) -> list[dict[str, Any]]:
        return [r.doc for r in self.store.find(EXCEPTIONS, {"status": "approved"}, limit=10_000)]

    def _commit(self, rule: ScheduledRule, drafts: Sequence[Draft], run: RuleRun, report: CycleReport) -> None:
        detected_at = self.clock()
        created = 0
        room = max(0, rule.max_alerts - run.alerts)  # the cap is per run, gap chunks included
        write = raise_once if rule.correlation is not None else commit  # a burst's id depends on the cut
        scopes = self._scopes() if drafts else None
        for n, draft in enumerate(drafts):
            if scopes is not None:
                draft = replace(draft, doc=scopes.enrich(draft.doc, rule.attributes))
            if created >= room:
                run.capped += self._not_alerted(drafts[n:])
                break
            written = write(self.store, draft, self.dispatch)
            if not written.created and self._uncounted(rule, written, report):
                run.recounted += 1
            if written.created:
                created += 1
                report.counted.add(written.alert_id)
                report.created.append(written.alert_id)  # a burst's claimed id, not always the draft's
                for ts in draft.event_times[:1]:
                    report.latencies.append(detected_at - ts)
                    metrics.EVENT_TO_ALERT.observe(max(0.0, detected_at - ts))
        run.alerts += created

    def _uncounted(self, rule: ScheduledRule, written: Committed, report: CycleReport) -> bool:
        """An alert made after its rule's checkpoint last counted (by a run that died before writing it), once."""
        made = parse_time(written.detected_at)
        if made is None or written.alert_id in report.counted:
            return False
        if made <= self._counted_until.get(rule.id, float("inf")):
            return False
        report.counted.add(written.alert_id)
        return True

    def _scopes(self) -> Scopes | None:
        """The inventory's labels for new alerts (what scoped principals filter on); None if it cannot be read.

        Enrichment is for reading: access decisions read the inventory again when they are made, so a broken
        inventory must not stop detection; it is logged once per cycle instead.
        """
        try:
            return scopes_for(self.settings)
        except SoarError as exc:
            log.warning("alerts of this cycle carry no inventory labels: %s", exc)
            return None

    def _not_alerted(self, drafts: Sequence[Draft]) -> int:
        """How many of the matches the cap left out have no alert yet (the rest were alerted before)."""
        ids = [d.id for d in drafts]
        known = 0
        for at in range(0, len(ids), 1000):
            chunk = ids[at : at + 1000]
            known += len(self.store.find(KIND, {"id": chunk}, limit=len(chunk)))
        return len(ids) - known

    def backfill(self, rule: ScheduledRule, window: Window) -> CycleReport:
        """Search a window by hand (``soar detect backfill``); checkpoints are left alone."""
        report = CycleReport(started_at=self.clock())
        t0 = time.perf_counter()
        report.runs[rule.id] = RuleRun(rule.id, window)
        jobs = [job for chunk in chunks(window) for job in self._jobs(rule, chunk)]
        if rule.baseline is not None:  # soar's own rule types: aggregations, no history build needed
            jobs = []
            run_baseline_jobs(self, [Job(rule, chunk, FETCH_LIMIT) for chunk in chunks(window)], report, build=False)
        for res in sorted(self._fetch(jobs, report.requests, path="search"), key=lambda r: r.job.window.start):
            self._alerts(res, report)
        report.seconds = time.perf_counter() - t0
        return report

    def _alerts(self, res: JobResult, report: CycleReport) -> None:
        rule = res.job.rule
        run = report.runs.setdefault(rule.id, RuleRun(rule.id, res.job.window))
        run.seconds += res.took  # its search (shared with the rules searched with it), then its alerts
        if res.error is not None:
            run.error = run.error or res.error
            return
        t0 = time.perf_counter()
        hits = len(res.hits) or len(res.events)
        run.hits += hits
        run.capped += res.capped
        metrics.RULE_HITS.labels(rule.id).inc(hits)
        if rule.correlation is not None:
            drafts = correlation_drafts(rule, res.events, self.clock())
        else:
            drafts = drafts_for_hits(rule, res.hits, iso(self.clock()))
        self._commit(rule, drafts, run, report)
        run.seconds += time.perf_counter() - t0

    def _advance_gaps(self, results: list[JobResult], report: CycleReport) -> None:
        by_gap: dict[str, list[JobResult]] = {}
        for res in results:
            by_gap.setdefault(str(res.job.gap_id), []).append(res)
        filled: dict[str, float] = {}
        for gap_id, parts in by_gap.items():
            for res in sorted(parts, key=lambda r: r.job.window.start):
                if res.error is not None:
                    break
                filled[gap_id] = res.job.window.end
                report.runs[res.job.rule.id].gap_seconds_filled += res.job.window.seconds
        advance_gaps(self.store, filled, {res.job.rule.id for res in results}, self.clock())

    def _checkpoints(self, results: list[JobResult], checkpoints: Checkpoints, report: CycleReport, now: float) -> None:
        """Add this cycle to the rules' checkpoints (versioned: see :func:`~soar.scheduler.state.write_tallies`);
        the Prometheus counters count what was written, so they and the checkpoints never disagree."""
        tallies: dict[str, Tally] = {}
        for res in sorted(results, key=lambda r: r.job.gap_id is not None):  # a rule's window before its gaps
            rule, stats = res.job.rule, report.runs[res.job.rule.id]
            if res.job.gap_id is not None:
                if rule.id not in tallies and stats.alerts:  # gap chunks only: their alerts still count
                    tallies[rule.id] = Tally(
                        rule.id, rule.title, rule.content_hash, iso(now), runs=0, alerts=stats.alerts + stats.recounted
                    )
                continue
            error = res.error
            tallies[rule.id] = Tally(
                rule.id,
                rule.title,
                rule.content_hash,
                iso(now),
                hits=stats.hits,
                alerts=stats.alerts + stats.recounted,
                capped=stats.capped,
                duration_ms=round(stats.seconds * 1000, 1),
                end=res.job.window.end if error is None else None,
                error=error.message if error else None,
                error_kind=error.kind if error else None,
                disable=bool(error and error.disable),
            )
            if error is not None and error.disable:
                log.warning("rule %s (%s) disabled: %s", rule.id, rule.source, error.message)
        if not tallies:
            return
        until = iso(self.clock())  # every alert this cycle counted was made before now
        written = write_tallies(self.store, [replace(t, counted_until=until) for t in tallies.values()], checkpoints)
        if len(written) < len(tallies):
            lost = sorted(set(tallies) - {t.rule_id for t in written})
            log.warning("checkpoints of %d rules not written (lost every race): %s", len(lost), ", ".join(lost[:10]))
        for tally in written:
            metrics.RULE_RUNS.labels(tally.rule_id).inc(tally.runs)
            metrics.RULE_ALERTS.labels(tally.rule_id).inc(tally.alerts)
            if tally.error_kind is not None:
                metrics.RULE_ERRORS.labels(tally.rule_id, tally.error_kind).inc()
