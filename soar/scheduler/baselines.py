"""soar's own rule types in the detection cycle: ``new_terms``, ``spike`` and ``silence`` (docs/baseline-rules.md).

They run as any rule does — due on their interval, one window per run planned from the checkpoint, gaps
recorded and filled in chunks, alerts created once by fingerprint before the checkpoint moves, exceptions
applied, ``soar detect status`` — only the search differs: aggregations (:mod:`.aggregations`), every
baseline rule of a cycle in one ``_msearch``.

``new_terms``: a value combination is *new* at time t when no base event holds it in ``[t − history, t)``.
The combinations of a window come from one composite aggregation (first and last time each); the state
store keeps, per combination, a few *marks* — times it was really seen — so a combination seen within the
history is known at once. The marks are built on a rule's first run from composite aggregations over the
history, then kept up to date from each window (never a rescan). Marks are only ever true sightings, so
they can only prove "not new"; a combination they cannot prove is *confirmed* on the events themselves
(its first event in ``[t − history, window end)``): exact whatever the state holds — after a restart, a
gap filled late, a backfill, a second scheduler. An alert is claimed in the combination's document (one
per first sighting: a claim within the history of another is the same one), its id the rule, the
combination and the first-seen time.

``spike`` and ``silence`` count per group in fixed buckets of their ``window`` (aligned on the epoch), each
bucket judged once it is complete (by every run whose window its end falls in: the same decision, the
same id). A silence is one alert per episode: consecutive silent buckets of a group extend the episode
claimed in the group's document. The inventory's hosts must report (a host that never did is silent too),
except a host isolated on purpose (a containment in force by ``hosts.isolate_host``).
"""

from __future__ import annotations

import bisect
import logging
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from soar.alerts import RuleRef, alert_from_events, fingerprint
from soar.config import Settings
from soar.errors import ContentError, SoarError
from soar.scheduler.aggregations import Aggregator, Answer, Ask, FirstAsk, Key, ms_window
from soar.scheduler.alerting import KIND as ALERTS
from soar.scheduler.alerting import Draft, drafts_for_hits
from soar.scheduler.correlate import _entities
from soar.scheduler.planning import Window, iso, parse_time
from soar.scheduler.rules import ScheduledRule, scheduled_rule
from soar.scheduler.search import Job, JobResult, SearchError
from soar.store import Conflict, Record, Store

if TYPE_CHECKING:
    from soar.detection._loading import Rule, RuleSet
    from soar.detection._soar_rules import Params

log = logging.getLogger(__name__)

STATE = "baselines"  # per rule and content: the new_terms history built, and when
TERMS = "baseline_terms"  # per rule, content and combination: marks (times seen) and first-seen claims
SILENCES = "baseline_silences"  # per rule, content and group: the silence episodes alerted
ISOLATE = "hosts.isolate_host"  # a host isolated by a run is expected to go quiet
MAX_MARKS = 16
WRITE_CHUNK = 1000


@dataclass(frozen=True)
class Baseline:
    """What a ScheduledRule of a soar rule type runs: its type, parameters and base selection."""

    type: str
    params: Params
    query: dict[str, Any]  # the base selection as Elasticsearch query DSL
    base: Rule  # the base selection as a Sigma rule (the embedded engine compiles it to SQL)


class Detector(Protocol):
    """What a baseline job needs of the cycle's detector (:class:`soar.scheduler.cycle.Detector`)."""

    settings: Settings
    store: Store
    source: Any
    clock: Any

    def _exceptions(self) -> list[dict[str, Any]]: ...

    def _commit(self, rule: ScheduledRule, drafts: Sequence[Draft], run: Any, report: Any) -> None: ...


CycleReport = Any  # soar.scheduler.cycle.CycleReport (not imported: the cycle imports this module)


# --- loading ---------------------------------------------------------------------------------------------


def baseline_rules(
    settings: Settings, paths: Sequence[Path], ruleset: RuleSet, compiled: Mapping[str, Any], errors: list[ContentError]
) -> list[ScheduledRule]:
    """The ``*.soar.yml`` rules under ``paths`` as ScheduledRules; every problem appended to ``errors``."""
    from soar.detection import CompileCache, compile_rules
    from soar.detection._files import rule_files
    from soar.detection._soar_rules import load_soar_rules

    loaded = load_soar_rules(rule_files(paths, soar=True), ruleset)
    errors.extend(loaded.errors)
    inline = [r.base for r in loaded.rules if r.base.id == r.id]
    own, compile_errors = compile_rules(
        inline, "elasticsearch", cache=CompileCache(settings.state_dir / "compile-cache")
    )
    errors.extend(compile_errors)
    queries = {c.rule_id: (c.dsl or {}).get("query") for c in [*own, *compiled.values()] if c.correlation is None}
    out: list[ScheduledRule] = []
    for rule in loaded.rules:
        query = queries.get(rule.base.id)
        if query is None:
            if rule.base.id != rule.id:  # the base's own error is reported with the base
                errors.append(rule.error(f"base: {rule.base.id} did not compile; this rule does not run", "base"))
            continue
        block = rule.data.get("soar")
        try:
            if isinstance(block, Mapping) and "suppress" in block and rule.type != "new_terms":
                raise rule.error(f"soar.suppress: a {rule.type} rule alerts once per group and window already", "soar")
            sched = scheduled_rule(
                rule_id=rule.id,
                title=rule.title,
                level=rule.level,
                tags=rule.tags,
                block=block,
                settings=settings,
                content_hash=rule.content_hash,
                path=str(rule.path),
                line=rule.line,
            )
            history = getattr(rule.params, "history", None)
            if history is not None and history < 2 * (sched.interval + sched.lookback):
                raise rule.error(
                    "new_terms.history: must be at least twice the rule's interval + lookback", "new_terms"
                )
        except ContentError as exc:
            errors.append(exc)
            continue
        out.append(replace(sched, baseline=Baseline(rule.type, rule.params, query, rule.base)))
    return out


# --- state: per-combination documents, cached per store ---------------------------------------------------


class _Docs:
    """Documents of the state store this process read or wrote, by store (a cache: marks only prove "seen")."""

    LIMIT = 500_000

    def __init__(self) -> None:
        self._by_store: weakref.WeakKeyDictionary[Any, dict[str, Record]] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def _of(self, store: Store) -> dict[str, Record]:
        try:
            return self._by_store.setdefault(store, {})
        except TypeError:
            return {}

    def read(self, store: Store, kind: str, ids: Sequence[str]) -> dict[str, Record]:
        with self._lock:
            known = self._of(store)
            out = {i: known[i] for i in ids if i in known}
        missing = [i for i in ids if i not in out]
        for at in range(0, len(missing), WRITE_CHUNK):
            chunk = missing[at : at + WRITE_CHUNK]
            for rec in store.find(kind, {"id": chunk}, limit=len(chunk)):
                out[rec.id] = rec
        self.remember(store, [out[i] for i in missing if i in out])
        return out

    def remember(self, store: Store, records: Sequence[Record]) -> None:
        with self._lock:
            known = self._of(store)
            for rec in records:
                known[rec.id] = rec
            while len(known) > self.LIMIT:
                del known[next(iter(known))]

    def forget(self, store: Store, ids: Sequence[str]) -> None:
        with self._lock:
            known = self._of(store)
            for i in ids:
                known.pop(i, None)


DOCS = _Docs()


class _Written:
    """First-sighting alerts this process wrote (or found written) per store: a claim of one of them, met again in
    the look-back overlap, needs no confirmation and no claim again. A new process starts empty (and completes a
    claim whose alert is missing, as ever)."""

    LIMIT = 200_000

    def __init__(self) -> None:
        self._ids: weakref.WeakKeyDictionary[Any, dict[str, None]] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def add(self, store: Store, ids: Sequence[str]) -> None:
        with self._lock, suppress(TypeError):
            known = self._ids.setdefault(store, {})
            known.update(dict.fromkeys(ids))
            while len(known) > self.LIMIT:
                del known[next(iter(known))]

    def has(self, store: Store, alert_id: str) -> bool:
        with self._lock:
            try:
                return alert_id in self._ids.get(store, {})
            except TypeError:
                return False


WRITTEN = _Written()


def forget_process_state() -> None:
    """Drop what this process remembers (as a restarted process has nothing): tests and benchmarks."""
    global DOCS, WRITTEN
    DOCS, WRITTEN = _Docs(), _Written()


UNKNOWN = ""  # the version of a document this process wrote without reading it back (read it before writing again)


def _write_marks(store: Store, docs: Mapping[str, tuple[dict[str, Any], str | None]]) -> None:
    """Versioned writes of mark updates; a lost race is dropped (marks are a cache: someone else wrote it).

    What was written stays cached, its version unknown: decisions read the marks from the cache (no store
    request per cycle), and only a document about to be written again is read back first."""
    items = list(docs.items())
    for at in range(0, len(items), WRITE_CHUNK):
        chunk = dict(items[at : at + WRITE_CHUNK])
        assert all(v != UNKNOWN for _, v in chunk.values()), [
            (i, v, d.get("key")) for i, (d, v) in chunk.items() if v == UNKNOWN
        ]
        lost = store.put_many_if(TERMS, chunk)
        DOCS.forget(store, list(lost))
        DOCS.remember(store, [Record(i, doc, UNKNOWN) for i, (doc, _) in chunk.items() if i not in lost])
        if lost:
            log.debug("%d mark writes lost a race (dropped: marks are a cache)", len(lost))


def _prev(marks: Sequence[int], t: int) -> int | None:
    at = bisect.bisect_left(marks, t)
    return marks[at - 1] if at else None


def _add_marks(marks: Sequence[int], new: Sequence[int]) -> list[int]:
    return sorted(set(marks) | set(new))[-MAX_MARKS:]


# --- one cycle's jobs -------------------------------------------------------------------------------------


@dataclass
class _Work:
    """One job of a baseline rule and what it produced."""

    job: Job
    asks: list[int] = field(default_factory=list)  # indexes into the cycle's asks
    buckets: list[float] = field(default_factory=list)
    drafts: list[Draft] = field(default_factory=list)
    hits: int = 0
    error: SearchError | None = None


def aggregator_for(det: Detector) -> Aggregator | None:
    from soar.scheduler.aggregations import ElasticsearchAggregator, EmbeddedAggregator
    from soar.scheduler.sources import ElasticsearchSource, EmbeddedSource

    if isinstance(det.source, ElasticsearchSource):
        return ElasticsearchAggregator(det.source.es, timeout=det.source.search_timeout)
    if isinstance(det.source, EmbeddedSource):
        return EmbeddedAggregator(det.source.events, det.source.compiled)
    return None


def buckets(window: Window, size: float) -> list[float]:
    """Starts of the fixed buckets of ``size`` (aligned on the epoch) that end within ``(start, end]``."""
    first = (window.start // size) * size
    out = []
    b = first
    while b + size <= window.end:
        if b + size > window.start:
            out.append(b)
        b += size
    return out


def run_baseline_jobs(
    det: Detector, jobs: Sequence[Job], report: CycleReport, *, build: bool = True
) -> list[JobResult]:
    """Evaluate the jobs of baseline rules; write their alerts (through the detector); one result per job.

    ``build``: a new_terms rule without its history builds it first (a cycle); a backfill does not need it.
    """
    if not jobs:
        return []
    t0 = time.perf_counter()
    agg = aggregator_for(det)
    works = [_Work(job) for job in jobs]
    if agg is None:
        for w in works:
            w.error = SearchError("error", "this event source answers no aggregations (soar rule types)")
    else:
        _evaluate(det, agg, works, report, build)
    share = (time.perf_counter() - t0) / len(works)
    results = []
    for w in works:
        rule = w.job.rule
        run = report.runs[rule.id]  # the cycle (or the backfill) planned it
        run.seconds += share
        res = JobResult(w.job, error=w.error)
        if w.error is not None:
            run.error = run.error or w.error
        else:
            run.hits += w.hits
            det._commit(rule, w.drafts, run, report)  # create-only by fingerprint, before the checkpoint moves
            if rule.baseline.type == "new_terms" and not run.capped:
                WRITTEN.add(det.store, [d.id for d in w.drafts])
        results.append(res)
    return results


def _evaluate(det: Detector, agg: Aggregator, works: list[_Work], report: CycleReport, build: bool) -> None:
    exceptions = det._exceptions()
    asks: list[Ask] = []
    builds: dict[str, tuple[ScheduledRule, int]] = {}
    for w in works:
        rule, spec = w.job.rule, w.job.rule.baseline
        window = ms_window(w.job.window)
        if spec.type == "new_terms":
            if build and w.job.gap_id is None and rule.id not in builds and not _built(det.store, rule):
                history = Window(window.start - spec.params.history, window.start)
                builds[rule.id] = (rule, len(asks))
                asks.append(Ask(rule, spec.params.fields, history))
            w.asks.append(len(asks))
            asks.append(Ask(rule, spec.params.fields, window))
            continue
        p = spec.params
        for b in buckets(window, p.window):
            cur = Window(b, b + p.window)
            if spec.type == "spike":
                before = Window(b - p.baseline, b)
                asks.append(Ask(rule, p.by, Window(before.start, cur.end), {"cur": cur, "base": before}))
            else:
                recent = Window(b - p.seen_within, b)
                asks.append(Ask(rule, p.by, Window(recent.start, cur.end), {"cur": cur, "recent": recent}))
            w.asks.append(len(asks) - 1)
            w.buckets.append(b)
    answers = agg.groups(asks, exceptions, report.requests) if asks else []
    for rule, at in builds.values():
        if answers[at].error is None:
            _store_history(det.store, rule, answers[at], asks[at].window)
    for w in works:
        failed = next((answers[i].error for i in w.asks if answers[i].error is not None), None)
        if failed is not None:
            w.error = failed
    live = [w for w in works if w.error is None]
    _new_terms(det, agg, [w for w in live if w.job.rule.baseline.type == "new_terms"], answers, exceptions, report)
    for w in live:
        kind = w.job.rule.baseline.type
        if kind == "spike":
            _spike(w, answers)
        elif kind == "silence":
            _silence(det, w, answers, exceptions)


def _ref(rule: ScheduledRule) -> RuleRef:
    return RuleRef(id=rule.id, title=rule.title, level=rule.level, tags=list(rule.tags))  # type: ignore[arg-type]


def _key_doc(fields: Sequence[str], key: Key) -> dict[str, str]:
    return dict(zip(fields, key, strict=True))


# --- new_terms --------------------------------------------------------------------------------------------


def _state_id(rule: ScheduledRule) -> str:
    return fingerprint(rule.id, "baseline", rule.content_hash)


def _term_id(rule: ScheduledRule, key: Key) -> str:
    return fingerprint(rule.id, "terms", rule.content_hash, list(key))


def _term_doc(rule: ScheduledRule, key: Key) -> dict[str, Any]:
    """A combination's document before anything is known of it (``id`` too: the stores find documents by field)."""
    return {"id": _term_id(rule, key), "rule_id": rule.id, "key": list(key), "marks": [], "alerted": []}


def _built(store: Store, rule: ScheduledRule) -> bool:
    rec = DOCS.read(store, STATE, [_state_id(rule)]).get(_state_id(rule))
    return rec is not None and bool(rec.doc.get("built"))


def _store_history(store: Store, rule: ScheduledRule, answer: Answer, window: Window) -> None:
    """The history's combinations as marks (create-only: a document already there has fresher ones)."""
    docs: dict[str, tuple[dict[str, Any], str | None]] = {}
    for key, group in answer.groups.items():
        doc = _term_doc(rule, key) | {"marks": _add_marks([], [group.first_ms, group.last_ms])}
        docs[doc["id"]] = (doc, None)
    _write_marks(store, docs)
    state = {"id": _state_id(rule), "rule_id": rule.id, "content_hash": rule.content_hash, "built": True}
    state["built_at"] = iso(time.time())
    state.update(history_start=iso(window.start), history_end=iso(window.end), terms=len(answer.groups))
    rec = store.put(STATE, _state_id(rule), state)
    DOCS.remember(store, [rec])
    log.info(
        "rule %s: new_terms history built over %s .. %s: %d combinations",
        rule.id,
        state["history_start"],
        state["history_end"],
        len(docs),
    )


def _new_terms(
    det: Detector,
    agg: Aggregator,
    works: list[_Work],
    answers: list[Answer],
    exceptions: Sequence[Mapping[str, Any]],
    report: CycleReport,
) -> None:
    store = det.store
    confirm: list[tuple[_Work, Key, int]] = []
    writes: dict[str, tuple[dict[str, Any], str | None]] = {}
    for w in works:
        rule, p = w.job.rule, w.job.rule.baseline.params
        answer = answers[w.asks[0]]
        w.hits = len(answer.groups)
        history_ms = int(p.history * 1000)
        ids = {key: _term_id(rule, key) for key in answer.groups}
        docs = DOCS.read(store, TERMS, list(ids.values()))
        due: list[Key] = []  # combinations whose marks are worth a write
        for key, group in answer.groups.items():
            rec = docs.get(ids[key])
            marks = list(rec.doc.get("marks") or []) if rec else []
            seen = _prev(marks, group.first_ms)
            if (seen is None or group.first_ms - seen > history_ms) and not _alerted(store, rec, group.first_ms):
                confirm.append((w, key, group.first_ms))  # not proven seen within the history: ask the events
            newest = marks[-1] if marks else None
            fresh = seen is None and group.first_ms not in marks  # a first sighting the marks do not hold yet
            if rec is None or newest is None or group.last_ms > newest + history_ms // 64 or fresh:
                due.append(key)
        stale = [ids[k] for k in due if ids[k] in docs and docs[ids[k]].version == UNKNOWN]
        if stale:  # written by this process since it read them: read back their versions first
            DOCS.forget(store, stale)
            docs.update(DOCS.read(store, TERMS, stale))
        for key in due:
            group, rec = answer.groups[key], docs.get(ids[key])
            doc = dict(rec.doc) if rec else _term_doc(rule, key)
            doc["marks"] = _add_marks(list(doc.get("marks") or []), [group.first_ms, group.last_ms])
            writes[ids[key]] = (doc, rec.version if rec else None)
    asks = [
        FirstAsk(
            w.job.rule,
            w.job.rule.baseline.params.fields,
            key,
            Window((t - int(w.job.rule.baseline.params.history * 1000)) / 1000, ms_window(w.job.window).end),
        )
        for w, key, t in confirm
    ]
    firsts = agg.firsts(asks, exceptions, report.requests)
    new: list[tuple[_Work, Key, int, dict[str, Any]]] = []
    for (w, key, t), first in zip(confirm, firsts, strict=True):
        if first.error is not None:
            w.error = w.error or first.error
            continue
        if first.hit is None:
            continue  # gone since (deleted, or excepted meanwhile)
        seen_at = parse_time((first.hit.get("_source") or {}).get("@timestamp"))
        if seen_at is not None and round(seen_at * 1000) >= t:
            new.append((w, key, round(seen_at * 1000), first.hit))
    _write_marks(store, writes)  # marks first: a crash after them only costs a confirmation next time
    for w, key, t, hit in new:
        if w.error is None:
            draft = _first_seen_draft(det, w.job.rule, key, t, hit)
            if draft is not None:
                w.drafts.append(draft)


def _alerted(store: Store, rec: Record | None, t: int) -> bool:
    """This sighting is one this process alerted (claimed at this very time, its alert written): nothing to redo."""
    claims = rec.doc.get("alerted") or [] if rec is not None else []
    return any(int(a["t"]) == t and WRITTEN.has(store, str(a["alert_id"])) for a in claims)


def _first_seen_draft(det: Detector, rule: ScheduledRule, key: Key, t: int, hit: dict[str, Any]) -> Draft | None:
    """The alert of a first sighting, unless another sighting within the history claimed it first."""
    p = rule.baseline.params
    fields = p.fields
    if rule.suppress_by:
        draft = drafts_for_hits(rule, [hit], iso(det.clock()))[0]
    else:
        event = {**(hit.get("_source") or {}), "_id": hit.get("_id"), "_index": hit.get("_index")}
        key_doc = _key_doc(fields, key)
        alert = alert_from_events(
            _ref(rule),
            [event],
            [str(hit["_id"])],
            fingerprint_parts=("new_terms", key_doc, iso(t / 1000)),
            group={"key": key_doc, "type": "new_terms", "first_seen": iso(t / 1000), "history_seconds": p.history},
            detected_at=iso(det.clock()),
        )
        draft = Draft(alert.to_doc(), (str(hit["_id"]),), (t / 1000,))
    claimed = _claim(det.store, TERMS, _term_id(rule, key), rule, key, t, int(p.history * 1000), draft.id)
    if claimed == draft.id:
        return draft
    if det.store.get(ALERTS, claimed) is not None:
        return None  # the same first sighting, claimed (and alerted) already
    return replace(draft, doc={**draft.doc, "id": claimed})  # its claimer died before writing it: write it now


def _claim(
    store: Store, kind: str, doc_id: str, rule: ScheduledRule, key: Key, t: int, reach: int, alert_id: str
) -> str:
    """The alert id for a sighting at ``t``: its own when added, else that of a claim less than ``reach`` away."""
    claimed = alert_id

    def add(doc: dict[str, Any]) -> dict[str, Any] | None:
        nonlocal claimed
        alerted = list(doc.get("alerted") or [])
        taken = next((a for a in alerted if abs(int(a["t"]) - t) < reach), None)
        claimed = alert_id if taken is None else str(taken["alert_id"])
        if taken is not None:
            return None
        keep = [a for a in alerted if int(a["t"]) >= t - 4 * reach]
        return {**doc, "alerted": [*keep, {"t": t, "alert_id": alert_id}]}

    try:
        rec = store.mutate(
            kind,
            doc_id,
            add,
            create=lambda: _term_doc(rule, key),
            retries=50,
        )
    except Conflict:
        raise Conflict(f"{kind}/{doc_id}: lost 50 races in a row") from None
    DOCS.forget(store, [doc_id])
    if rec is not None:
        DOCS.remember(store, [rec])
    return claimed


# --- spike ------------------------------------------------------------------------------------------------


def _spike(w: _Work, answers: list[Answer]) -> None:
    rule = w.job.rule
    p = rule.baseline.params
    for at, b in zip(w.asks, w.buckets, strict=True):
        groups = answers[at].groups
        w.hits += len(groups)
        for key, group in groups.items():
            cur, base = group.counts.get("cur", 0), group.counts.get("base", 0)
            expected = base * p.window / p.baseline
            if cur < p.min_count or cur < p.ratio * expected:
                continue
            key_doc = _key_doc(p.by, key)
            info = {"count": cur, "baseline_count": base, "expected": round(expected, 3), "ratio": p.ratio}
            alert = alert_from_events(
                _ref(rule),
                [],
                [],
                fingerprint_parts=("spike", key_doc, iso(b)),
                group={"key": key_doc, "type": "spike", "window_start": iso(b), "window_seconds": p.window, **info},
            )
            doc = alert.to_doc() | _entities(key_doc)
            doc.update(first_event_time=iso(b), last_event_time=iso(b + p.window))
            w.drafts.append(Draft(doc, (), (max(group.first_ms / 1000, b),)))


# --- silence ----------------------------------------------------------------------------------------------


def _canonical(value: str) -> str:
    return value.strip().lower().rstrip(".")


def _expected_hosts(det: Detector, labels: Mapping[str, str]) -> dict[str, str]:
    """canonical name, alias or address -> the inventory name, for the inventory hosts with ``labels``."""
    from soar.scope import scopes_for

    inventory = scopes_for(det.settings).inventory  # read again only when the file's content changed
    if inventory is None:
        return {}
    out: dict[str, str] = {}
    for host in inventory:
        if all(host.labels.get(k) == v for k, v in labels.items()):
            for name in (host.name, host.address, *host.aliases):
                out.setdefault(_canonical(name), host.name)
    return out


def isolated_hosts(store: Store) -> set[str]:
    """Hosts a run isolated on purpose (a verified ``hosts.isolate_host`` containment in force), canonical."""
    from soar.records.containment import KIND as CONTAINMENTS

    found = store.find(CONTAINMENTS, {"state": "in_force"}, limit=10_000)
    return {_canonical(str(r.doc["host"])) for r in found if r.doc.get("action") == ISOLATE and r.doc.get("host")}


def _silence(det: Detector, w: _Work, answers: list[Answer], exceptions: Sequence[Mapping[str, Any]]) -> None:
    from soar.scheduler.sources import excepted

    rule = w.job.rule
    p = rule.baseline.params
    try:
        names = _expected_hosts(det, p.labels) if p.inventory else {}
    except SoarError as exc:
        w.error = SearchError("error", f"the inventory this silence rule expects cannot be read: {exc}")
        return
    quiet = isolated_hosts(det.store) if p.by == ("host.name",) else set()
    for at, b in zip(w.asks, w.buckets, strict=True):
        listed = {(n,) for n in names.values()}
        counts: dict[Key, tuple[int, int]] = dict.fromkeys(listed, (0, 0))  # group -> (in the bucket, before it)
        for found, group in answers[at].groups.items():
            key = (names.get(_canonical(found[0]), found[0]),) if p.inventory else found
            cur, recent = counts.get(key, (0, 0))
            counts[key] = (cur + group.counts.get("cur", 0), recent + group.counts.get("recent", 0))
        w.hits += len(answers[at].groups)
        for key, (cur, recent) in sorted(counts.items()):
            key_doc = _key_doc(p.by, key)
            if cur >= p.min_count or excepted(key_doc, exceptions, rule.id):
                continue
            if p.by == ("host.name",) and _canonical(key[0]) in quiet:
                continue
            draft = _silence_draft(det, rule, key, b, cur, recent, key in listed)
            if draft is not None:
                w.drafts.append(draft)


def _silence_draft(
    det: Detector, rule: ScheduledRule, key: Key, b: float, cur: int, recent: int, listed: bool
) -> Draft | None:
    """One alert per silence episode: a silent bucket next to one already alerted extends that episode."""
    p = rule.baseline.params
    key_doc = _key_doc(p.by, key)
    alert_id = fingerprint(rule.id, "silence", key_doc, iso(b))
    doc_id = fingerprint(rule.id, "silence", rule.content_hash, list(key))
    claimed = alert_id

    def extend(doc: dict[str, Any]) -> dict[str, Any] | None:
        nonlocal claimed
        episodes = list(doc.get("episodes") or [])
        for n, ep in enumerate(episodes):
            if ep["since"] - p.window <= b <= ep["until"] + p.window:
                claimed = str(ep["alert_id"])
                if ep["since"] <= b <= ep["until"]:
                    return None
                episodes[n] = {**ep, "since": min(ep["since"], b), "until": max(ep["until"], b)}
                return {**doc, "episodes": episodes}
        claimed = alert_id
        keep = [ep for ep in episodes if ep["until"] >= b - 30 * 86400][-50:]
        return {**doc, "episodes": [*keep, {"since": b, "until": b, "alert_id": alert_id}]}

    with suppress(Conflict):
        det.store.mutate(
            SILENCES, doc_id, extend, create=lambda: {"rule_id": rule.id, "key": list(key), "episodes": []}, retries=50
        )
    if claimed != alert_id and det.store.get(ALERTS, claimed) is not None:
        return None
    info = {"count": cur, "min_count": p.min_count, "events_before": recent, "in_inventory": listed}
    alert = alert_from_events(
        _ref(rule),
        [],
        [],
        fingerprint_parts=("silence", key_doc, iso(b)),
        group={"key": key_doc, "type": "silence", "window_start": iso(b), "window_seconds": p.window, **info},
    )
    doc = alert.to_doc() | _entities(key_doc)
    doc.update(id=claimed, first_event_time=iso(b), last_event_time=iso(b + p.window))
    return Draft(doc, (), (b + p.window,))


__all__ = ["Baseline", "baseline_rules", "buckets", "isolated_hosts", "run_baseline_jobs"]
