"""Alert triage by a person: acknowledge (stops the MTTA clock) and close (stops MTTR when nothing ran)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from soar.alerts import utcnow_iso
from soar.audit import record
from soar.config import Settings
from soar.errors import InputError, NotFound
from soar.records.alert import AlertState, Triage
from soar.review.feedback import ALERTS
from soar.store import Store

Status = Triage


def set_alert_status(
    store: Store, settings: Settings, alert_id: str, status: Status, *, actor: str, role: str, note: str = ""
) -> dict[str, Any]:
    """Move an alert to ``status``; the first time of each stays (a repeat changes nothing)."""
    if status not in ("acknowledged", "closed"):
        raise InputError(f"status: must be acknowledged or closed, got {status!r}")
    changed = False

    def change(doc: dict[str, Any]) -> dict[str, Any] | None:
        nonlocal changed
        state = AlertState.from_doc(doc, alert_id)
        changed = state.triage(status, actor, utcnow_iso())
        return state.to_doc() if changed else None  # a repeat changes nothing

    rec = store.mutate(ALERTS, alert_id, change)
    if rec is None:
        raise NotFound(f"unknown alert id {alert_id!r}")
    if changed:
        record(
            store,
            actor=actor,
            action=f"alert.{status}",
            target=alert_id,
            details={"role": role, "note": note},
            settings=settings,
        )
    return rec.doc


def _change_alert(
    store: Store,
    settings: Settings,
    alert_id: str,
    apply: Callable[[AlertState, str], bool],
    *,
    action: str,
    actor: str,
    role: str,
    details: dict[str, Any],
) -> tuple[dict[str, Any], bool]:
    changed = False

    def change(doc: dict[str, Any]) -> dict[str, Any] | None:
        nonlocal changed
        state = AlertState.from_doc(doc, alert_id)
        changed = apply(state, utcnow_iso())
        return state.to_doc() if changed else None

    rec = store.mutate(ALERTS, alert_id, change)
    if rec is None:
        raise NotFound(f"unknown alert id {alert_id!r}")
    if changed:
        record(store, actor=actor, action=action, target=alert_id, details={"role": role, **details}, settings=settings)
    return rec.doc, changed


def assign_alert(
    store: Store, settings: Settings, alert_id: str, assignee: str | None, *, actor: str, role: str, note: str = ""
) -> tuple[dict[str, Any], bool]:
    """Give an alert to a principal (None: take it back); audited with who did it. (doc, whether it changed)"""
    return _change_alert(
        store, settings, alert_id, lambda s, now: s.assign(assignee, actor, now),
        action="alert.assigned", actor=actor, role=role, details={"assignee": assignee, "note": note},
    )  # fmt: skip


def reopen_alert(
    store: Store, settings: Settings, alert_id: str, *, actor: str, role: str, note: str = ""
) -> tuple[dict[str, Any], bool]:
    """Open a closed alert again; audited. (doc, whether it changed: False when it was not closed)"""
    return _change_alert(
        store, settings, alert_id, lambda s, now: s.reopen(actor, now),
        action="alert.reopened", actor=actor, role=role, details={"note": note},
    )  # fmt: skip
