"""Checkpoints and gaps in the store: what the scheduler remembers across restarts.

``checkpoints/<rule id>``: the end of the last window searched completely (``end``), the
last run's numbers and error, and whether the rule is disabled (for which content).
``gaps/<fingerprint>``: a window not yet searched — recorded create-only, so two workers
noticing the same gap record it once — with status ``open`` or ``filled``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
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


def all_checkpoints(store: Store) -> dict[str, dict[str, Any]]:
    return {r.id: r.doc for r in store.find(CHECKPOINTS, limit=10_000)}


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
        gap_id = fingerprint(rule_id, "gap", iso(start))
        doc = {
            "rule_id": rule_id,
            "start": iso(start),
            "end": iso(window.end),
            "seconds": round(window.end - start, 3),
            "status": "open",
            "reason": reason,
            "recorded_at": iso(now),
        }
        if store.create(GAPS, gap_id, doc):
            return window.end - start
        rec = store.get(GAPS, gap_id)
        if rec is None:
            continue
        recorded_end = parse_time(rec.doc.get("end")) or start
        if recorded_end >= window.end:
            return 0.0
        if rec.doc.get("status") != "open":
            start = recorded_end
            continue
        added = window.end - recorded_end
        extended = {**rec.doc, "end": iso(window.end), "seconds": round(float(rec.doc.get("seconds", 0)) + added, 3)}
        try:
            store.update(GAPS, gap_id, extended, version=rec.version)
            return added
        except Conflict:
            continue
    return 0.0


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
    for _ in range(5):
        rec = store.get(GAPS, gap_id)
        if rec is None or rec.doc.get("status") != "open":
            return
        end = parse_time(rec.doc.get("end")) or 0.0
        doc = dict(rec.doc)
        if filled_until >= end:
            doc.update(status="filled", filled_at=iso(now))
        else:
            doc["start"] = iso(filled_until)
        try:
            store.update(GAPS, gap_id, doc, version=rec.version)
            return
        except Conflict:
            continue


def count_open_gaps(store: Store) -> dict[str, tuple[int, float]]:
    """rule id -> (open gaps, open seconds)."""
    out: dict[str, tuple[int, float]] = {}
    for rec in store.find(GAPS, {"status": "open"}, limit=10_000):
        n, secs = out.get(str(rec.doc.get("rule_id")), (0, 0.0))
        start, end = parse_time(rec.doc.get("start")) or 0.0, parse_time(rec.doc.get("end")) or 0.0
        out[str(rec.doc.get("rule_id"))] = (n + 1, secs + max(0.0, end - start))
    return out
