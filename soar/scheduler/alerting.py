"""From hits to alerts: fingerprints, suppression, exactly-once creation and the hand-off.

An alert's id is its fingerprint — rule id + the matched event (index and ``_id``), or,
for a suppressed rule, rule id + group-by values + suppression window — so it is written
once with ``Store.create`` however often a window is searched again. A created alert is
handed to the playbook engine (Celery task ``soar.playbooks.handle_alert``) and then
marked ``dispatched``; an alert found undispatched (the writer died in between) is
handed off again by the next run, so the hand-off is at-least-once and the alert exactly-once.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from soar.alerts import RuleRef, alert_from_events, fingerprint
from soar.scheduler.planning import parse_time, suppression_bucket
from soar.scheduler.rules import ScheduledRule
from soar.store import Conflict, Store
from soar.store.base import Record, get_path

KIND = "alerts"
MAX_EVENT_IDS = 1000  # event ids kept on a suppressed alert; beyond it they are counted in SEEN
SEEN = "suppressed_events"  # (alert, event) pairs of an alert past MAX_EVENT_IDS, so its count stays exact
Dispatch = Callable[[str], None]


@dataclass(frozen=True)
class Draft:
    """An alert about to be written, and the event times it covers (for latency)."""

    doc: dict[str, Any]
    event_ids: tuple[str, ...]
    event_times: tuple[float, ...]

    @property
    def id(self) -> str:
        return str(self.doc["id"])


def _ref(rule: ScheduledRule) -> RuleRef:
    return RuleRef(id=rule.id, title=rule.title, level=rule.level, tags=list(rule.tags))  # type: ignore[arg-type]


def _event(hit: Mapping[str, Any]) -> dict[str, Any]:
    return {**(hit.get("_source") or {}), "_id": hit.get("_id"), "_index": hit.get("_index")}


def drafts_for_hits(rule: ScheduledRule, hits: Sequence[Mapping[str, Any]], detected_at: str) -> list[Draft]:
    """The alerts these hits make, in hit order; one per event, or one per suppression group."""
    if not rule.suppress_by:
        out = []
        for hit in hits:
            ev = _event(hit)
            alert = alert_from_events(
                _ref(rule),
                [ev],
                [str(hit["_id"])],
                fingerprint_parts=(hit.get("_index"), hit["_id"]),
                detected_at=detected_at,
            )
            ts = parse_time(ev.get("@timestamp"))
            out.append(Draft(alert.to_doc(), (str(hit["_id"]),), (ts,) if ts is not None else ()))
        return out
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for hit in hits:
        ev = _event(hit)
        ts = parse_time(ev.get("@timestamp")) or 0.0
        values = tuple(_hashable(get_path(ev, f)) for f in rule.suppress_by)
        groups.setdefault((values, suppression_bucket(ts, rule.suppress_window)), []).append(ev)
    drafts = []
    for (values, bucket), events in groups.items():
        ids = [str(e["_id"]) for e in events]
        key = dict(zip(rule.suppress_by, values, strict=True))
        alert = alert_from_events(
            _ref(rule),
            events,
            ids[:MAX_EVENT_IDS],
            fingerprint_parts=("suppress", key, bucket),
            group={"key": key, "window_start": bucket, "window_seconds": rule.suppress_window},
            detected_at=detected_at,
        )
        doc = alert.to_doc()
        doc["suppressed_overflow"] = max(0, len(ids) - MAX_EVENT_IDS)
        doc["suppressed_count"] = len(ids) - 1
        times = tuple(t for t in (parse_time(e.get("@timestamp")) for e in events) if t is not None)
        drafts.append(Draft(doc, tuple(ids), times))
    return drafts


def _hashable(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    return value


@dataclass(frozen=True)
class Committed:
    alert_id: str
    created: bool
    detected_at: str | None = None  # of an alert that existed: when it was made (what counts it if uncounted)


class Settled:
    """Alert ids this process saw written *and* handed off in one store, so a window searched again (the
    look-back overlap re-finds every match two or three times) costs that store no request for them.

    Only plain alerts (one per event: nothing is ever added to them) are remembered, only after the store
    said they exist with ``dispatched: true``, and per store object; a new process starts empty and relies on
    create-only writes as before. Bounded: the oldest ids are forgotten first (then a re-found match is
    looked up in the store again). Each id keeps its alert's ``detected_at`` (how a cycle counts an alert an
    earlier one made but did not count).
    """

    LIMIT = 200_000

    def __init__(self) -> None:
        self._ids: weakref.WeakKeyDictionary[Any, dict[str, str | None]] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def __contains__(self, key: tuple[Store, str]) -> bool:
        store, alert_id = key
        with self._lock:
            try:
                return alert_id in self._ids.get(store, {})
            except TypeError:
                return False

    def detected_at(self, store: Store, alert_id: str) -> str | None:
        with self._lock:
            try:
                return self._ids.get(store, {}).get(alert_id)
            except TypeError:
                return None

    def add(self, store: Store, alert_id: str, detected_at: str | None = None) -> None:
        with self._lock:
            try:
                ids = self._ids.setdefault(store, {})
            except TypeError:  # a store that cannot be weakly referenced is not remembered
                return
            ids[alert_id] = detected_at
            while len(ids) > self.LIMIT:
                del ids[next(iter(ids))]


SETTLED = Settled()


def commit(store: Store, draft: Draft, dispatch: Dispatch) -> Committed:
    """Write the alert once; hand it off when new (or when an earlier writer died before the hand-off)."""
    plain = draft.doc.get("group") is None
    if plain and (store, draft.id) in SETTLED:
        return Committed(draft.id, False, SETTLED.detected_at(store, draft.id))
    doc = {**draft.doc, "dispatched": False}
    if len(draft.event_ids) > MAX_EVENT_IDS:  # before the alert exists: a crash in between leaves no undercount
        _see(store, draft.id, draft.event_ids)
    written = store.insert(KIND, draft.id, doc)
    if written is not None:
        if _hand_off(store, draft.id, dispatch, written) and plain:
            SETTLED.add(store, draft.id, doc.get("@timestamp"))
        return Committed(draft.id, True)
    existing = store.get(KIND, draft.id)
    if existing is None:  # deleted meanwhile; nothing to merge into
        return Committed(draft.id, False)
    if not plain:
        _merge_suppressed(store, draft)
    settled = _hand_off(store, draft.id, dispatch) if not existing.doc.get("dispatched") else True
    if settled and plain:
        SETTLED.add(store, draft.id, existing.doc.get("@timestamp"))
    return Committed(draft.id, False, existing.doc.get("@timestamp"))


def _hand_off(store: Store, alert_id: str, dispatch: Dispatch, written: Record | None = None) -> bool:
    """Hand the alert off, then mark it dispatched; True when the mark is known written.

    ``written``: the record just created, marked with its version in one write (no read); if someone
    changed it meanwhile, the mark is read-modify-written as usual.
    """
    dispatch(alert_id)
    if written is not None:
        try:
            store.update(KIND, alert_id, {**written.doc, "dispatched": True}, version=written.version)
            return True
        except Conflict:
            pass
    with suppress(Conflict):  # a writer that keeps racing us marks it (or the next cycle hands it off again)
        rec = store.mutate(
            KIND, alert_id, lambda doc: None if doc.get("dispatched") else {**doc, "dispatched": True}, retries=5
        )
        return rec is not None and bool(rec.doc.get("dispatched"))
    return False


def _see(store: Store, alert_id: str, event_ids: Sequence[str]) -> int:
    """Record the events of an overflowing alert once each; returns how many it has in all (exact)."""
    store.put_many(SEEN, {fingerprint(alert_id, e): {"alert_id": alert_id, "event_id": e} for e in event_ids})
    return store.count(SEEN, {"alert_id": alert_id})


def _merge_suppressed(store: Store, draft: Draft) -> None:
    """Add events of a later search to the existing alert of their suppression group (idempotently).

    Up to MAX_EVENT_IDS events the alert's own ``event_ids`` say which were counted; past
    that, every event id goes to SEEN (once per pair) and the count is SEEN's, re-read on
    each versioned update, so overlapping searches and concurrent writers count each event once.
    """

    def merge(current: dict[str, Any]) -> dict[str, Any] | None:
        known = list(current.get("event_ids") or [])
        seen = set(known)
        new = [i for i in draft.event_ids if i not in seen]
        if not new:
            return None
        doc = dict(current)
        room = max(0, MAX_EVENT_IDS - len(known))
        doc["event_ids"] = known + new[:room]
        overflowing = bool(current.get("suppressed_overflow"))
        if overflowing or len(new) > room:  # recording pairs in SEEN is idempotent: a retried change may redo it
            total = _see(store, draft.id, new if overflowing else known + new)  # known ids are in SEEN already
        else:
            total = len(doc["event_ids"])
        total = max(total, int(current.get("suppressed_count", 0)) + 1)
        doc["suppressed_count"] = total - 1
        doc["suppressed_overflow"] = total - len(doc["event_ids"])
        times = sorted(t for t in (doc.get("last_event_time"), draft.doc.get("last_event_time")) if t)
        if times:
            doc["last_event_time"] = times[-1]
        return doc

    with suppress(Conflict):  # ten lost races in a row: give up (each lost race was another writer's merge)
        store.mutate(KIND, draft.id, merge, retries=10)


def alert_id_for_event(rule_id: str, index: str, event_id: str) -> str:
    """The id the scheduler gives the alert of one matched event (tests and tools recompute it)."""
    return fingerprint(rule_id, index, event_id)
