"""Checkpoints and gaps in the store: what the scheduler remembers across restarts.

``checkpoints/<rule id>``: the end of the last window searched completely (``end``), the
last run's numbers and error, and whether the rule is disabled (for which content).
``gaps/<fingerprint>``: a window not yet searched — recorded create-only, so two workers
noticing the same gap record it once — with status ``open`` or ``filled``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from contextlib import suppress
from typing import Any

from soar.alerts import fingerprint
from soar.scheduler.planning import Window, iso, parse_time
from soar.store import Conflict, Store

CHECKPOINTS = "checkpoints"
GAPS = "gaps"


def load_checkpoints(store: Store, rule_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    ids = list(rule_ids)
    if not ids:
        return {}
    return {r.id: r.doc for r in store.find(CHECKPOINTS, {"rule_id": ids}, limit=len(ids) + 10)}


ALL_CHECKPOINTS_LIMIT = 10_000


def all_checkpoints(store: Store) -> dict[str, dict[str, Any]]:
    return {r.id: r.doc for r in store.find(CHECKPOINTS, limit=ALL_CHECKPOINTS_LIMIT)}


def checkpoint_end(doc: Mapping[str, Any] | None) -> float | None:
    return parse_time(doc.get("end")) if doc else None


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
        doc = {
            "rule_id": rule_id,
            "start": iso(start),
            "end": iso(end),
            "seconds": round(end - start, 3),
            "status": "open",
            "reason": reason,
            "recorded_at": iso(now),
        }
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
