"""Pure planning: which rules are due, which window each searches, what is a gap.

A rule's window is ``[checkpoint − look-back, now − ingest delay)``: overlapping the last
window by the look-back catches late events, and the alert fingerprint makes the overlap
harmless. When the checkpoint is far behind (a late cycle, an outage), the normal window
covers only the latest interval and the rest is recorded as a gap, filled in chunks; a checkpoint less than
a minute behind is not a gap, its window just covers the delay.
Times are epoch seconds here; the store keeps ISO-8601 strings.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from soar.scheduler.rules import ScheduledRule

GAP_FACTOR = 3.0  # a checkpoint more than this many intervals behind means cycles were missed ...
# ... and more than ``min_gap`` seconds (settings.detection_min_gap): a late cycle's window simply grows (a search of
# a minute more is cheap). Without it, at a 1 s interval one cycle longer than 3 s (1,000 rules) had every rule record
# a gap, store round trips each, so the next cycle was later still: it never caught up (issue #19).
MIN_GAP = 60.0
GAP_CHUNK = 3600.0  # a gap is filled one chunk (seconds) per search at most


@dataclass(frozen=True)
class Window:
    start: float
    end: float

    @property
    def seconds(self) -> float:
        return max(0.0, self.end - self.start)


@dataclass(frozen=True)
class Plan:
    """What one run of a rule searches, and the gap it leaves for filling (if any)."""

    rule_id: str
    window: Window | None
    gap: Window | None = None


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(value: Any) -> float | None:
    """Epoch seconds from an ISO-8601 string (``Z`` or offset), a number, or None."""
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return _parse_text(str(value))


@lru_cache(maxsize=100_000)  # every tick reads every rule's checkpoint times again
def _parse_text(value: str) -> float | None:
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


@lru_cache(maxsize=100_000)
def _fraction(name: str) -> float:
    return int(hashlib.sha256(name.encode()).hexdigest()[:8], 16) / 2**32


def phase(rule: ScheduledRule) -> float:
    """Where in its interval a rule runs (from a hash of its id): rules spread over the interval."""
    return _fraction(rule.id) * rule.interval


def index_phase(rule: ScheduledRule) -> float:
    """One phase for every rule of an index (``detection_path: fetch``): they run in one cycle per interval."""
    return _fraction(rule.index) * rule.interval


def is_due(rule: ScheduledRule, checkpoint: Mapping[str, Any] | None, now: float, offset: float | None = None) -> bool:
    """Enabled, not disabled for its current content, and its next slot has begun.

    A rule runs once per interval at its own phase, so 500 rules at 5 s become ~100 a
    second instead of 500 every fifth second: smaller cycles, smoother load, and an event
    waits for a small cycle rather than a big one. Never twice within half an interval.
    ``offset`` replaces the rule's phase (:func:`index_phase` aligns the rules of an index).
    """
    if not rule.enabled:
        return False
    if checkpoint is None:
        return True
    if checkpoint.get("disabled") and checkpoint.get("content_hash") == rule.content_hash:
        return False
    last = parse_time(checkpoint.get("last_run_at"))
    if last is None:
        return True
    offset = phase(rule) if offset is None else offset
    slot_now = (now - offset) // rule.interval
    slot_last = (last - offset) // rule.interval
    return (slot_now > slot_last and now - last > rule.interval / 2) or now - last >= 2 * rule.interval


def plan_run(
    rule: ScheduledRule, checkpoint_end: float | None, now: float, ingest_delay: float, min_gap: float = MIN_GAP
) -> Plan:
    end = now - ingest_delay
    if checkpoint_end is None:
        return Plan(rule.id, Window(end - rule.interval - rule.lookback, end))
    if end <= checkpoint_end:
        return Plan(rule.id, None)
    if end - checkpoint_end > max(GAP_FACTOR * rule.interval, min_gap):
        gap = Window(checkpoint_end - rule.lookback, end - rule.interval)
        return Plan(rule.id, Window(end - rule.interval - rule.lookback, end), gap)
    return Plan(rule.id, Window(checkpoint_end - rule.lookback, end))


def chunks(window: Window, size: float = GAP_CHUNK) -> list[Window]:
    """Split a long window (a gap, a backfill) into searches of at most ``size`` seconds."""
    out: list[Window] = []
    start = window.start
    while start < window.end:
        end = min(window.end, start + size)
        out.append(Window(start, end))
        start = end
    return out


def suppression_bucket(event_time: float, window: float) -> float:
    """The start of the suppression window an event falls in (fixed buckets of event time)."""
    return (event_time // window) * window
