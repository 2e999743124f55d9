"""Checkpoints and gaps in the store: what the scheduler remembers across restarts.

``checkpoints/<rule id>``: the end of the last window searched completely (``end``), the
last run's numbers and error, and whether the rule is disabled (for which content).
``gaps/<fingerprint>``: a window not yet searched — recorded create-only, so two workers
noticing the same gap record it once — with status ``open`` or ``filled``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from soar.alerts import fingerprint
from soar.scheduler.planning import Window, iso, parse_time
from soar.store import Conflict, Record, Store

CHECKPOINTS = "checkpoints"
GAPS = "gaps"


class Checkpoints(dict[str, dict[str, Any]]):
    """Checkpoints by rule id, as read, with each one's store version: what a cycle's versioned write expects."""

    def __init__(self, docs: Mapping[str, dict[str, Any]] | None = None, versions: Mapping[str, str] | None = None):
        super().__init__(docs or {})
        self.versions: dict[str, str] = dict(versions or {})  # none for checkpoints read without them

    @classmethod
    def of(cls, records: Iterable[Record]) -> Checkpoints:
        records = list(records)
        return cls({r.id: r.doc for r in records}, {r.id: r.version for r in records})

    def subset(self, ids: Iterable[str]) -> Checkpoints:
        wanted = [i for i in ids if i in self]
        return Checkpoints({i: self[i] for i in wanted}, {i: self.versions[i] for i in wanted if i in self.versions})


def load_checkpoints(store: Store, rule_ids: Iterable[str]) -> Checkpoints:
    ids = list(rule_ids)
    if not ids:
        return Checkpoints()
    return Checkpoints.of(store.find(CHECKPOINTS, {"rule_id": ids}, limit=len(ids) + 10))


ALL_CHECKPOINTS_LIMIT = 10_000


def all_checkpoints(store: Store) -> Checkpoints:
    return Checkpoints.of(store.find(CHECKPOINTS, limit=ALL_CHECKPOINTS_LIMIT))


@dataclass(frozen=True)
class Tally:
    """What one cycle adds to a rule's checkpoint: counters as deltas, the rest as this run saw it.

    Written as a change, not a copy of the checkpoint read at the cycle's start, so two cycles of one rule
    (two schedulers, a lease that expired under a slow one) both count and ``end`` only ever moves forward.
    """

    rule_id: str
    title: str
    content_hash: str
    at: str  # the cycle's time (ISO): the later run's "last_*" fields win, whichever writes last
    runs: int = 1  # 0: gap chunks only (their alerts count, the rule's window did not run)
    hits: int = 0
    alerts: int = 0
    capped: int = 0
    duration_ms: float = 0.0
    end: float | None = None  # the window searched completely (None: none, or it failed)
    error: str | None = None
    error_kind: str | None = None
    disable: bool = False
    counted_until: str | None = None  # alerts made up to then are counted (ISO; the later of two writers wins)


def merge_checkpoint(stored: Mapping[str, Any] | None, tally: Tally) -> dict[str, Any]:
    """The checkpoint after ``tally``: counters add, ``end`` takes the max, ``last_*`` are the latest run's."""
    old = dict(stored or {})
    doc = {**old, "rule_id": tally.rule_id, "title": tally.title, "content_hash": tally.content_hash}
    doc["runs_total"] = int(old.get("runs_total", 0)) + tally.runs
    doc["alerts_total"] = int(old.get("alerts_total", 0)) + tally.alerts
    if tally.error is not None:
        doc["errors_total"] = int(old.get("errors_total", 0)) + 1
    counted = [t for t in (old.get("counted_until"), tally.counted_until) if t is not None]
    if counted:
        doc["counted_until"] = max(counted, key=lambda t: parse_time(t) or 0.0)
    ends = [t for t in (parse_time(old.get("end")), tally.end) if t is not None]
    if ends:
        doc["end"] = iso(max(ends))
    latest = tally.runs and (parse_time(old.get("last_run_at")) or 0.0) <= (parse_time(tally.at) or 0.0)
    if not latest:  # an older run finishing last: its counts are in, its "last" view is not the latest
        return doc
    doc.update(last_run_at=tally.at, last_hits=tally.hits, last_alerts=tally.alerts, last_capped=tally.capped)
    doc["last_duration_ms"] = tally.duration_ms
    if tally.error is None:
        doc.update(last_error=None, error_kind=None, disabled=False, disabled_reason=None)
    else:
        doc.update(last_error=tally.error, error_kind=tally.error_kind, last_error_at=tally.at)
        if tally.disable:
            doc.update(disabled=True, disabled_reason=tally.error)
    return doc


WRITE_ROUNDS = 20


def write_tallies(store: Store, tallies: Sequence[Tally], read: Checkpoints) -> list[Tally]:
    """Add the tallies to their checkpoints under optimistic concurrency: one versioned bulk write, then the
    losers re-read and merged again. Returns the tallies written: all of them but after WRITE_ROUNDS lost races."""
    todo = {t.rule_id: t for t in tallies}
    unread = [i for i in todo if i not in read.versions]
    fresh = load_checkpoints(store, unread) if unread else Checkpoints()  # versions the caller did not have
    stored = {i: (read, fresh)[i not in read.versions] for i in todo}
    written: list[Tally] = []
    for _ in range(WRITE_ROUNDS):
        docs = {i: (merge_checkpoint(stored[i].get(i), t), stored[i].versions.get(i)) for i, t in todo.items()}
        lost = store.put_many_if(CHECKPOINTS, docs)
        written += [t for i, t in todo.items() if i not in lost]
        if not lost:
            break
        again = load_checkpoints(store, lost)
        todo = {i: todo[i] for i in lost}
        stored = dict.fromkeys(todo, again)
    return written


def checkpoint_end(doc: Mapping[str, Any] | None) -> float | None:
    return parse_time(doc.get("end")) if doc else None


def counted_until(doc: Mapping[str, Any] | None) -> float:
    """Until when the rule's alerts are in its ``alerts_total``: an alert of the rule made later, found again by
    a run, was made by a run that died before its checkpoint write, and counts now (once: this moves on).

    No checkpoint: none counted yet. A checkpoint written before this field existed: all of them (count none twice).
    """
    if not doc:
        return float("-inf")
    return parse_time(doc.get("counted_until")) or float("inf")


def record_gap(store: Store, rule_id: str, window: Window, reason: str, now: float) -> float:
    """Record a gap once; returns the seconds it adds (0 when already recorded).

    A gap's id is its rule and start, so the cycles that fail one after another during an
    outage (the checkpoint stays put) extend one open gap instead of recording one each; the
    part beyond a gap already filled becomes a gap of its own.
    """
    start = window.start
    for _ in range(10):
        if window.end <= start:
            return 0.0
        added, filled_until = _extend_gap(store, rule_id, start, window.end, reason, now)
        if filled_until is None:
            return added
        start = filled_until  # that gap is filled already: the rest of the window is a gap of its own
    return 0.0


def _extend_gap(
    store: Store, rule_id: str, start: float, end: float, reason: str, now: float
) -> tuple[float, float | None]:
    """Record the gap [start, end] or extend the open one starting at ``start``: (seconds added, None), or
    (0, where it ends) when the gap starting there is filled already."""
    added, filled_until = 0.0, None
    fresh: list[dict[str, Any]] = []

    def new_gap() -> dict[str, Any]:
        doc = _gap_doc(rule_id, Window(start, end), reason, now)
        fresh.append(doc)
        return doc

    def extend(doc: dict[str, Any]) -> dict[str, Any] | None:
        nonlocal added, filled_until
        added, filled_until = 0.0, None
        if fresh and doc is fresh[-1]:  # no gap started here yet: this one is written as it is
            added = end - start
            return doc
        recorded_end = parse_time(doc.get("end")) or start
        if recorded_end >= end:
            return None
        if doc.get("status") != "open":
            filled_until = recorded_end
            return None
        added = end - recorded_end
        return {**doc, "end": iso(end), "seconds": round(float(doc.get("seconds", 0)) + added, 3)}

    try:
        store.mutate(GAPS, fingerprint(rule_id, "gap", iso(start)), extend, create=new_gap, retries=10)
    except Conflict:
        return 0.0, None
    return added, filled_until


def _gap_doc(rule_id: str, window: Window, reason: str, now: float) -> dict[str, Any]:
    return {
        "rule_id": rule_id,
        "start": iso(window.start),
        "end": iso(window.end),
        "seconds": round(window.seconds, 3),
        "status": "open",
        "reason": reason,
        "recorded_at": iso(now),
    }


def record_gaps(store: Store, gaps: Mapping[str, Window], reason: str, now: float) -> dict[str, float]:
    """:func:`record_gap` for many rules (rule id -> window) in two requests, a read and a versioned bulk write,
    not a round trip or two per rule: after an outage every rule is late at once, and gap bookkeeping that grows
    with the rules would make the cycle that records them late again. Returns the seconds each adds. A gap filled
    already, or one another writer changed meanwhile, goes through :func:`record_gap` alone."""
    added = dict.fromkeys(gaps, 0.0)
    ids = {rule_id: fingerprint(rule_id, "gap", iso(w.start)) for rule_id, w in gaps.items() if w.end > w.start}
    if not ids:
        return added
    found = _gaps_by_id(store, {"rule_id": list(ids), "start": sorted({iso(gaps[r].start) for r in ids})}, ids.values())
    docs: dict[str, tuple[Mapping[str, Any], str | None]] = {}
    alone: list[str] = []
    for rule_id, gap_id in ids.items():
        window, rec = gaps[rule_id], found.get(gap_id)
        if rec is None:
            docs[gap_id], added[rule_id] = (_gap_doc(rule_id, window, reason, now), None), window.seconds
        elif rec.doc.get("status") != "open":
            alone.append(rule_id)  # filled: the rest of the window is a gap of its own
        elif (recorded_end := parse_time(rec.doc.get("end")) or window.start) < window.end:
            more = window.end - recorded_end
            doc = {**rec.doc, "end": iso(window.end), "seconds": round(float(rec.doc.get("seconds", 0)) + more, 3)}
            docs[gap_id], added[rule_id] = (doc, rec.version), more
    by_gap = {gap_id: rule_id for rule_id, gap_id in ids.items()}
    for gap_id in store.put_many_if(GAPS, docs) if docs else set():
        added[by_gap[gap_id]] = 0.0
        alone.append(by_gap[gap_id])  # another writer got there first: as record_gap decides
    for rule_id in alone:
        added[rule_id] = record_gap(store, rule_id, gaps[rule_id], reason, now)
    return added


def _gaps_by_id(store: Store, where: Mapping[str, Any], wanted: Iterable[str]) -> dict[str, Record]:
    """The gaps of these ids, found by fields their documents hold (the id is a fingerprint of rule and start)."""
    ids = set(wanted)
    found = store.find(GAPS, dict(where), limit=4 * len(ids) + 100)
    return {rec.id: rec for rec in found if rec.id in ids}  # a gap not found (past the limit): one by one


def advance_gaps(store: Store, filled: Mapping[str, float], rule_ids: Iterable[str], now: float) -> None:
    """:func:`advance_gap` for many gaps (gap id -> filled up to) of these rules in a read and a versioned bulk
    write; a gap changed meanwhile is advanced alone."""
    if not filled:
        return
    docs: dict[str, tuple[Mapping[str, Any], str | None]] = {}
    found = _gaps_by_id(store, {"status": "open", "rule_id": sorted(set(rule_ids))}, filled)
    for gap_id in set(filled) - set(found):
        advance_gap(store, gap_id, filled[gap_id], now)
    for rec in found.values():
        if filled[rec.id] >= (parse_time(rec.doc.get("end")) or 0.0):
            docs[rec.id] = ({**rec.doc, "status": "filled", "filled_at": iso(now)}, rec.version)
        else:
            docs[rec.id] = ({**rec.doc, "start": iso(filled[rec.id])}, rec.version)
    for gap_id in store.put_many_if(GAPS, docs) if docs else set():
        advance_gap(store, gap_id, filled[gap_id], now)  # changed meanwhile: read again, one by one


def open_gaps(store: Store, rule_ids: Iterable[str]) -> dict[str, list[tuple[str, Window]]]:
    ids = list(rule_ids)
    out: dict[str, list[tuple[str, Window]]] = {}
    if not ids:
        return out
    for rec in store.find(GAPS, {"status": "open", "rule_id": ids}, order_by="start", limit=10_000):
        start, end = parse_time(rec.doc.get("start")), parse_time(rec.doc.get("end"))
        if start is not None and end is not None:
            out.setdefault(str(rec.doc["rule_id"]), []).append((rec.id, Window(start, end)))
    return out


def advance_gap(store: Store, gap_id: str, filled_until: float, now: float) -> None:
    """Mark the gap filled up to ``filled_until`` (closed when that reaches its end)."""

    def fill(doc: dict[str, Any]) -> dict[str, Any] | None:
        if doc.get("status") != "open":
            return None
        if filled_until >= (parse_time(doc.get("end")) or 0.0):
            return {**doc, "status": "filled", "filled_at": iso(now)}
        return {**doc, "start": iso(filled_until)}

    with suppress(Conflict):  # a writer that keeps racing us: the next cycle fills it again
        store.mutate(GAPS, gap_id, fill, retries=5)


def count_open_gaps(store: Store) -> dict[str, tuple[int, float]]:
    """rule id -> (open gaps, open seconds)."""
    out: dict[str, tuple[int, float]] = {}
    for rec in store.find(GAPS, {"status": "open"}, limit=10_000):
        n, secs = out.get(str(rec.doc.get("rule_id")), (0, 0.0))
        start, end = parse_time(rec.doc.get("start")) or 0.0, parse_time(rec.doc.get("end")) or 0.0
        out[str(rec.doc.get("rule_id"))] = (n + 1, secs + max(0.0, end - start))
    return out
