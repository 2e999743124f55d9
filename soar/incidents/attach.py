"""Attaching an alert to its incident: the store's side of ``soar.incidents.grouping``.

Every path that creates an alert calls ``attach`` once it is stored (the scheduler's and the webhook's
hand-off, ``playbooks run``); attaching again is harmless (the hand-off is at-least-once). Four writes,
each safe to repeat and to race:

1. the key's ledger, under ``Store.mutate``: which session (incident id) the alert is in now;
2. the alert's membership (``incident_alerts``, one document per alert): the incident it was placed in;
3. incidents the placement absorbed are marked ``merged_into`` the survivor (a missing one is written as
   that mark, so a slower writer's update of it cannot bring it back);
4. the survivor, under ``Store.mutate(create=...)``: the alert's summary, the absorbed incidents' notes and
   owner, the alert count. Written into an incident that was merged meanwhile, the summary follows
   ``merged_into`` to the live one too: its scope must cover every alert (``Scopes.of_incident``).

An incident's alerts are the memberships naming it or an incident it absorbed, so a merge moves no alert.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from soar.alerts import utcnow_iso
from soar.audit import record
from soar.config import Settings
from soar.connections import unreachable
from soar.errors import NotFound
from soar.incidents.grouping import GroupKey, Ledger, Placement, alert_time_ms, group_key, iso_ms, place
from soar.records.incident import AUTOMATION, KIND, Incident, scope_source
from soar.store import Store

KEYS = "incident_keys"  # one ledger per group key
MEMBERS = "incident_alerts"  # one document per alert: {alert_id, incident_id, key, at}
ALERTS = "alerts"
NEW = "\x00new"  # marks the document ``create`` made, for ``change`` to tell (never written)
MAX_HOPS = 50  # merged_into links followed at most (a cycle would be a bug: never loop on it)

log = logging.getLogger("soar.incidents")


@dataclass(frozen=True)
class Attached:
    incident_id: str  # the live incident the alert is in
    new_alert: bool  # False: the alert was attached before (nothing counted twice)


def attach(store: Store, settings: Settings, alert: Mapping[str, Any]) -> Attached:
    """Put a stored alert into its incident (creating or merging incidents as the grouping says)."""
    alert_id = str(alert["id"])
    key = group_key(alert, settings.incident_group_by)
    at = alert_time_ms(alert)
    window = round(settings.incident_window * 1000)
    placed: list[Placement] = []

    def change(doc: dict[str, Any]) -> dict[str, Any] | None:
        placed[:] = [place(Ledger.from_doc(doc), at, alert_id, window)]
        return placed[0].ledger.to_doc() if placed[0].changed else None

    store.mutate(KEYS, key.id, change, create=lambda: Ledger(key).to_doc())
    session = placed[0].session
    new_alert = _member(store, alert_id, session.id, key, iso_ms(at))
    stored = store.get(KIND, session.id) if session.absorbed else None  # (most alerts merge nothing: no read)
    known = set(Incident.from_doc(stored.doc, session.id).absorbed) if stored else set()
    folded = [_mark_merged(store, old, session.id, key) for old in session.absorbed if old not in known]
    count = store.count(MEMBERS, {"incident_id": [session.id, *session.absorbed]})
    source, at_iso, now = scope_source(dict(alert)), iso_ms(at), utcnow_iso()
    reopened = False

    fresh = False

    def update(doc: dict[str, Any]) -> dict[str, Any]:
        nonlocal reopened, fresh
        fresh = doc.pop(NEW, False) is True  # this attempt starts the incident (the write is then create-only)
        inc = Incident.from_doc(doc, session.id)
        for other in folded:
            if other.id not in inc.absorbed:
                inc.take_over(other)
        inc.absorbed = sorted(set(inc.absorbed) | set(session.absorbed))
        inc.join(dict(alert), at_iso, source)
        inc.first_at, inc.last_at = (
            min(inc.first_at, iso_ms(session.start)),
            max(inc.last_at, iso_ms(session.end)),
        )
        inc.alert_count = max(inc.alert_count, count)
        reopened = new_alert and inc.merged_into is None and inc.reopen(AUTOMATION, now)
        inc.updated_at = now
        return inc.to_doc()

    def new() -> dict[str, Any]:
        return {**Incident.new(session.id, key.to_doc(), at_iso, now).to_doc(), NEW: True}

    rec = store.mutate(KIND, session.id, update, create=new)
    live = session.id
    if rec is not None and rec.doc.get("merged_into"):  # merged meanwhile: the live one must cover this alert too
        live = _follow_join(store, str(rec.doc["merged_into"]), alert, at_iso, source)
    if fresh:
        _audit(store, settings, "incident.created", session.id, {"key": key.to_doc(), "alert_id": alert_id})
    if folded:
        _audit(store, settings, "incident.merged", session.id, {"absorbed": [o.id for o in folded]})
    if reopened:
        _audit(store, settings, "incident.reopened", session.id, {"reason": "a new alert", "alert_id": alert_id})
    return Attached(live, new_alert)


def attach_id(store: Store, settings: Settings, alert_id: str) -> Attached:
    rec = store.get(ALERTS, alert_id)
    if rec is None:
        raise NotFound(f"unknown alert id {alert_id!r}")
    return attach(store, settings, {**rec.doc, "id": rec.id})


def attach_quietly(store: Store, settings: Settings, alert_id: str, *, retried: bool = False) -> str | None:
    """``attach_id`` for the hand-off: incident bookkeeping must never stop the response, so a failure is
    logged (the alert stays unattached until it is handed off again) and None returned.

    ``retried``: the caller is a task retried while the store is out of reach, so that error is raised
    for the retry (which attaches it) instead of a line per alert."""
    try:
        return attach_id(store, settings, alert_id).incident_id
    except Exception as exc:  # any failure here must not stop the playbooks
        if retried and unreachable(exc):
            raise
        log.error("alert %s was not attached to an incident: %s", alert_id, exc)
        return None


def _member(store: Store, alert_id: str, incident_id: str, key: GroupKey, at: str) -> bool:
    """Record which incident the alert was placed in; True the first time (the alert is new to incidents)."""
    doc = {"alert_id": alert_id, "incident_id": incident_id, "key": key.to_doc(), "at": at}
    if store.insert(MEMBERS, alert_id, doc) is not None:
        return True
    store.mutate(MEMBERS, alert_id, lambda d: None if d.get("incident_id") == incident_id else {**d, **doc})
    return False


def _mark_merged(store: Store, old: str, into: str, key: GroupKey) -> Incident:
    """Point an absorbed incident at its survivor; the incident as marked (its state is folded by the caller)."""

    def mark(doc: dict[str, Any]) -> dict[str, Any] | None:
        return None if doc.get("merged_into") == into else {**doc, "merged_into": into}

    def tombstone() -> dict[str, Any]:
        now = utcnow_iso()
        return Incident.new(old, key.to_doc(), now, now).to_doc()

    rec = store.mutate(KIND, old, mark, create=tombstone)
    assert rec is not None  # created when missing
    return Incident.from_doc(rec.doc, old)


def _follow_join(store: Store, start: str, alert: Mapping[str, Any], at: str, source: dict[str, Any]) -> str:
    """Write the alert's summary and an exact count into the live incident ``start`` was merged into (again if
    that one is merged meanwhile: its merger may have read it before this write)."""
    current = start
    for _ in range(MAX_HOPS):
        live = live_id(store, current)
        rec = store.get(KIND, live)
        absorbed = list(rec.doc.get("absorbed") or []) if rec else []
        count = store.count(MEMBERS, {"incident_id": [live, *absorbed]})  # this alert's membership is written

        def join(doc: dict[str, Any], iid: str = live, n: int = count) -> dict[str, Any]:
            inc = Incident.from_doc(doc, iid)
            inc.join(dict(alert), at, source)
            inc.alert_count = max(inc.alert_count, n)
            return inc.to_doc()

        written = store.mutate(KIND, live, join)
        if written is None or not written.doc.get("merged_into"):
            return live
        current = live
    raise RuntimeError(f"incident {start}: more than {MAX_HOPS} merges to follow")


def _audit(store: Store, settings: Settings, action: str, target: str, details: dict[str, Any]) -> None:
    record(
        store,
        actor=AUTOMATION,
        action=action,
        target=target,
        details={"role": "automation", **details},
        settings=settings,
    )


def live_id(store: Store, incident_id: str) -> str:
    """The incident an id now names: itself, or the one it was merged into (following every merge)."""
    current = incident_id
    for _ in range(MAX_HOPS):
        rec = store.get(KIND, current)
        if rec is None or not rec.doc.get("merged_into"):
            return current
        current = str(rec.doc["merged_into"])
    return current


def incident_of_alert(store: Store, alert_id: str) -> str | None:
    """The live incident of an alert, or None when it was never attached."""
    rec = store.get(MEMBERS, alert_id)
    return live_id(store, str(rec.doc["incident_id"])) if rec else None
