"""Alert triage by a person: acknowledge (stops the MTTA clock) and close (stops MTTR when nothing ran)."""

from __future__ import annotations

from typing import Any, Literal

from soar.alerts import utcnow_iso
from soar.audit import record
from soar.config import Settings
from soar.errors import InputError, NotFound
from soar.review.feedback import ALERTS
from soar.store import Store

Status = Literal["acknowledged", "closed"]
STAMP = {"acknowledged": "acknowledged_at", "closed": "closed_at"}


def set_alert_status(
    store: Store, settings: Settings, alert_id: str, status: Status, *, actor: str, role: str, note: str = ""
) -> dict[str, Any]:
    """Move an alert to ``status``; the first time of each stays (a repeat changes nothing)."""
    if status not in STAMP:
        raise InputError(f"status: must be acknowledged or closed, got {status!r}")
    changed = False

    def change(doc: dict[str, Any]) -> dict[str, Any] | None:
        nonlocal changed
        changed = False
        if doc.get(STAMP[status]) and (doc.get("status") == status or status == "acknowledged"):
            return None  # idempotent
        now = utcnow_iso()
        doc[STAMP[status]] = doc.get(STAMP[status]) or now
        if status == "closed":
            doc.setdefault("acknowledged_at", now)
        doc["status"] = "closed" if status == "closed" or doc.get("status") == "closed" else status
        doc[f"{status}_by"] = actor
        changed = True
        return doc

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
