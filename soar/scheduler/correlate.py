"""Correlation rules in the same cycle: their base rules' searches ride in the cycle's ``_msearch``.

A correlation over a window becomes one search *part* per base rule (the base rule's query
over the window widened by the timespan, so a burst that straddles two windows is seen
whole), searched together with every other due rule and paged the same way. The parts'
hits become the evaluator's events (``evaluate_correlation``, sliding windows), and each
match becomes an alert whose id is rule + group key + the match's first event time.

Windows of the same rule overlap (look-back, widening, gap chunks, backfills), and a burst
seen from a later start slides into a match with another first event, so another id:
create-only alone cannot keep it one alert. A match overlapping a burst already claimed
for the same group is not raised again, and the claim is atomic: the spans alerted per
(rule, group key) live in one versioned document (``BURSTS``), and a match is raised only
by the writer whose versioned update adds its span. Concurrent searches cut differently
(two backfills, a backfill and the cycle) decide against the same document, so one wins.
A correlation whose base rules cannot be searched as queries (a chained correlation) is
fetched by the detection engine instead (``EventSource.correlation_events``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from elastic_transport import ConnectionError as ESConnectionError
from elastic_transport import ConnectionTimeout as ESConnectionTimeout
from elasticsearch import ApiError

from soar.alerts import RuleRef, alert_from_events, fingerprint
from soar.detection import CorrelationEvent, evaluate_correlation
from soar.detection.elastic import hit_events
from soar.errors import SoarError
from soar.scheduler.alerting import KIND, Committed, Dispatch, Draft, commit
from soar.scheduler.planning import Window, iso, parse_time
from soar.scheduler.rules import ScheduledRule
from soar.scheduler.search import Job, JobResult, SearchError, _api_error, unavailable
from soar.scheduler.sources import EventSource
from soar.store import Conflict, Store

BURSTS = "correlation_bursts"  # per (rule, group key): the spans alerted and their alert ids
CLAIM_TRIES = 100  # each lost race is another writer's progress; past this something is wrong


def widen(rule: ScheduledRule, window: Window) -> Window:
    return Window(window.start - float(rule.correlation.reach), window.end)  # chained: the inner windows too


def narrow(rule: ScheduledRule, wide: Window) -> Window:
    """The window a widened search was made for (its parts are grouped back by it)."""
    return Window(wide.start + float(rule.correlation.reach), wide.end)


def batchable(rule: ScheduledRule) -> bool:
    """Every base rule is a plain query (a chained correlation's base is itself a correlation)."""
    return all(base.dsl is not None and base.correlation is None for base in rule.correlation.rules)


def part_jobs(rule: ScheduledRule, window: Window, limit: int, gap_id: str | None = None) -> list[Job]:
    """One search per base rule over the widened window; exceptions apply as the correlation's own."""
    wide = widen(rule, window)
    return [
        Job(replace(rule, query=dict(base.dsl["query"])), wide, limit, gap_id, part=base.rule_id)
        for base in rule.correlation.rules
    ]


def assemble(parts: Sequence[JobResult], window: Window) -> JobResult:
    """The parts of one correlation over one window as one result (its events; the first error)."""
    first = parts[0].job
    out = JobResult(Job(replace(first.rule, query=None), window, first.limit, first.gap_id))
    for res in parts:
        if res.error is not None:
            out.error = out.error or res.error
            continue
        out.total += res.total
        out.hits.extend(res.hits)
        for hit in res.hits:
            out.events.extend(hit_events(str(res.job.part), first.rule.correlation, hit))
    if out.error is not None:
        out.hits, out.events = [], []
    return out


def fetch_direct(source: EventSource, job: Job, exceptions: Sequence[Mapping[str, Any]]) -> JobResult:
    """A correlation the cycle cannot batch, fetched by the detection engine; errors stay with the rule."""
    res = JobResult(job)
    try:
        res.events = list(source.correlation_events(job.rule, widen(job.rule, job.window), exceptions))
    except (ESConnectionError, ESConnectionTimeout) as exc:
        res.error = unavailable(exc)
    except ApiError as exc:
        res.error = _api_error(exc)
    except SoarError as exc:
        res.error = SearchError("error", str(exc)[:500])
    except Exception as exc:  # a bug or an unexpected answer fails this rule's run, never the cycle
        res.error = SearchError("error", f"correlation failed: {type(exc).__name__}: {exc}"[:500])
    res.total = len(res.events)
    return res


def _entities(group: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """ECS entity objects from the group-by values (``user.name`` -> ``{"user": {"name": ...}}``)."""
    out: dict[str, dict[str, Any]] = {}
    for name, value in group.items():
        head, _, rest = name.partition(".")
        if rest and head in ("host", "user", "source", "destination", "process", "file", "url"):
            out.setdefault(head, {})[rest] = value
    return out


def correlation_drafts(rule: ScheduledRule, events: Iterable[CorrelationEvent], detected_at: float) -> list[Draft]:
    """The alerts the matches over ``events`` would make; ``raise_once`` decides which are new."""
    spec = rule.correlation
    drafts: list[Draft] = []
    for match in evaluate_correlation(spec, events):
        key_id = fingerprint(rule.id, "group", match.group)
        start, end = match.start.timestamp(), match.end.timestamp()
        ref = RuleRef(id=rule.id, title=rule.title, level=rule.level, tags=list(rule.tags))  # type: ignore[arg-type]
        alert = alert_from_events(
            ref,
            [],
            [str(r) for r in match.refs],
            fingerprint_parts=("correlation", match.group, iso(start)),
            group={
                "key": dict(match.group),
                "key_id": key_id,
                "window_start": iso(start),
                "window_end": iso(end),
                "value": match.value,
                "type": spec.type,
            },
            detected_at=iso(detected_at),
        )
        doc = alert.to_doc() | _entities(match.group)
        doc.update(first_event_time=iso(start), last_event_time=iso(end))
        drafts.append(Draft(doc, tuple(str(r) for r in match.refs), (end,)))
    return drafts


def raise_once(store: Store, draft: Draft, dispatch: Dispatch) -> Committed:
    """Write a match's alert unless an overlapping burst of its group was claimed first.

    A claimed burst whose alert is missing (its writer died between claim and create, or is
    just about to create) is written from this match under the claimed id: create-only keeps
    it one alert, and a crash never loses it.
    """
    claimed = claim(store, draft)
    if claimed == draft.id:
        return commit(store, draft, dispatch)
    if store.get(KIND, claimed) is not None:
        return Committed(claimed, False)
    return commit(store, replace(draft, doc={**draft.doc, "id": claimed}), dispatch)


def claim(store: Store, draft: Draft) -> str:
    """The id of the alert for this match's burst: its own when its span is added, else the overlapping one's."""
    key_id = str(draft.doc["group"]["key_id"])
    span = {
        "alert_id": draft.id,
        "first_event_time": draft.doc["first_event_time"],
        "last_event_time": draft.doc["last_event_time"],
    }
    rule_id = draft.doc["rule"]["id"]
    claimed = draft.id

    def add_span(doc: dict[str, Any]) -> dict[str, Any] | None:
        nonlocal claimed
        taken = overlapping(doc["spans"], span)
        claimed = draft.id if taken is None else str(taken["alert_id"])
        return None if taken is not None else {**doc, "spans": [*doc["spans"], span]}

    def first_spans() -> dict[str, Any]:  # no bursts document yet: start from the alerts raised already
        return {"rule_id": rule_id, "key_id": key_id, "spans": raised_spans(store, rule_id, key_id)}

    try:
        store.mutate(BURSTS, key_id, add_span, create=first_spans, retries=CLAIM_TRIES)
    except Conflict:
        raise Conflict(f"{BURSTS}/{key_id}: lost {CLAIM_TRIES} races in a row") from None
    return claimed


def overlapping(spans: Iterable[Mapping[str, Any]], span: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The first of ``spans`` whose events overlap ``span``'s (times inclusive), if any."""
    start, end = parse_time(span["first_event_time"]), parse_time(span["last_event_time"])
    if start is None or end is None:
        return None
    for other in spans:
        first, last = parse_time(other.get("first_event_time")), parse_time(other.get("last_event_time"))
        if first is not None and last is not None and start <= last and end >= first:
            return other
    return None


def raised_spans(store: Store, rule_id: str, key_id: str) -> list[dict[str, Any]]:
    """The spans of the group's alerts written before its ``BURSTS`` document existed (an upgrade)."""
    return [
        {
            "alert_id": rec.id,
            "first_event_time": rec.doc.get("first_event_time"),
            "last_event_time": rec.doc.get("last_event_time"),
        }
        for rec in store.find(KIND, {"rule.id": rule_id, "group.key_id": key_id}, limit=10_000)
    ]
