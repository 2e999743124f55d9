"""Rate caps and the circuit breaker, kept in the store so every worker sees the same counts.

A rate cap is a set of numbered slots per clock hour (``quota`` documents created
create-only, so concurrent workers can never exceed it), fewer the previous hour's
slots still inside the last 60 minutes (a sliding hour). The breaker counts
failures in a row per action and opens for a while after N.
"""

from __future__ import annotations

import itertools
import weakref
from datetime import UTC, datetime
from typing import Any

from soar.policy import Policy
from soar.store import Conflict, Store

QUOTA = "quota"
BREAKERS = "breakers"


def hour_bucket(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).strftime("%Y%m%d%H")


# Per-store hints so a storm does not rescan the quota documents for every containment.
_NEXT_SLOT: weakref.WeakKeyDictionary[Any, dict[tuple[str, str], int]] = weakref.WeakKeyDictionary()
_PREVIOUS: weakref.WeakKeyDictionary[Any, dict[tuple[str, str], tuple[float, list[float]]]] = (
    weakref.WeakKeyDictionary()
)
PREVIOUS_TTL = 30.0


def _recent_previous(store: Store, scope: str, previous: str, now: float) -> int:
    per_store = _PREVIOUS.setdefault(store, {})
    cached = per_store.get((scope, previous))
    if cached is None or now - cached[0] > PREVIOUS_TTL:
        recs = store.find(QUOTA, {"scope": scope, "bucket": previous}, limit=100_000)
        cached = (now, [float(r.doc.get("at") or 0) for r in recs])
        per_store[(scope, previous)] = cached
    return sum(1 for at in cached[1] if at > now - 3600)


def _reserve(store: Store, scope: str, cap: int, owner: str, now: float) -> str | None:
    """A numbered slot in this clock hour, fewer the slots of the previous hour still inside the last 60 minutes.

    Numbered create-only slots make the cap exact under concurrent workers; subtracting the
    previous hour's recent slots makes it a sliding hour (no double burst at the boundary).
    """
    bucket, previous = hour_bucket(now), hour_bucket(now - 3600)
    limit = cap - _recent_previous(store, scope, previous, now)
    hints = _NEXT_SLOT.setdefault(store, {})
    start = hints.get((scope, bucket))
    if start is None:
        start = store.count(QUOTA, {"scope": scope, "bucket": bucket})
    for i in itertools.chain(range(start, limit), range(min(start, limit))):
        slot = f"{scope}-{bucket}-{i:06d}"
        if store.create(QUOTA, slot, {"scope": scope, "bucket": bucket, "owner": owner, "at": now}):
            hints[(scope, bucket)] = i + 1
            return slot
    return None


def reserve_containment(
    store: Store, policy: Policy, rule_id: str | None, owner: str, now: float
) -> tuple[list[str], str | None]:
    """Take one global and one per-rule slot for the hour of ``now``; (slots, None) or ([], why the cap is reached)."""
    caps = policy.rate_caps
    taken: list[str] = []
    wanted: list[tuple[str, int, str]] = []
    if caps.contain_per_hour is not None:
        wanted.append(("global", caps.contain_per_hour, f"rate cap: {caps.contain_per_hour} containments per hour"))
    if caps.contain_per_rule_per_hour is not None:
        wanted.append(
            (
                f"rule.{rule_id or 'none'}",
                caps.contain_per_rule_per_hour,
                f"rate cap: {caps.contain_per_rule_per_hour} containments per hour for rule {rule_id}",
            )
        )
    for scope, cap, why in wanted:
        slot = _reserve(store, scope, cap, owner, now)
        if slot is None:
            release(store, taken)
            return [], why
        taken.append(slot)
    return taken, None


def release(store: Store, slots: list[str]) -> None:
    for slot in slots:
        store.delete(QUOTA, slot)


def breaker_open(store: Store, action: str, now: float) -> bool:
    rec = store.get(BREAKERS, action)
    return rec is not None and float(rec.doc.get("open_until") or 0) > now


def record_outcome(store: Store, policy: Policy, action: str, ok: bool, now: float) -> bool:
    """Count a result; True when this failure just opened the breaker."""
    opened = False

    def change(doc: dict[str, Any]) -> dict[str, Any] | None:
        nonlocal opened
        opened = False
        if ok:
            if int(doc["failures"]) == 0 and not doc.get("open_until"):
                return None  # nothing to reset (and no document made for an action that never failed)
            return {**doc, "failures": 0, "open_until": 0}
        failures = int(doc["failures"]) + 1
        if failures < policy.circuit_breaker.failures_in_a_row:
            return {**doc, "failures": failures}
        opened = True
        return {**doc, "failures": 0, "open_until": now + policy.circuit_breaker.pause_minutes * 60}

    try:
        store.mutate(
            BREAKERS, action, change, create=lambda: {"action": action, "failures": 0, "open_until": 0}, retries=20
        )
    except Conflict:
        return False
    return opened
