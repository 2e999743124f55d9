"""What people do to an incident — acknowledge, close, reopen, assign, note — each audited with the principal.

The incident named may have been merged since it was shown: the change goes to the live incident
(``merged_into``), so an acknowledgement is never written into a husk nobody reads.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from soar.alerts import utcnow_iso
from soar.audit import record
from soar.config import Settings
from soar.errors import InputError, NotFound
from soar.incidents.attach import live_id
from soar.records.incident import KIND, MAX_NOTE, Incident, Note
from soar.store import Store

StatusChange = Literal["acknowledged", "closed", "open"]


def _change(
    store: Store,
    settings: Settings,
    incident_id: str,
    apply: Callable[[Incident, str], bool],
    *,
    action: str,
    actor: str,
    role: str,
    details: dict[str, Any],
) -> tuple[dict[str, Any], bool]:
    target = live_id(store, incident_id)
    changed = False

    def change(doc: dict[str, Any]) -> dict[str, Any] | None:
        nonlocal changed
        inc = Incident.from_doc(doc, target)
        now = utcnow_iso()
        changed = apply(inc, now)
        if not changed:
            return None
        inc.updated_at = now
        return inc.to_doc()

    rec = store.mutate(KIND, target, change)
    if rec is None:
        raise NotFound(f"unknown incident id {incident_id!r}")
    if changed:
        record(store, actor=actor, action=action, target=target, details={"role": role, **details}, settings=settings)
    return rec.doc, changed


def set_status(
    store: Store, settings: Settings, incident_id: str, status: StatusChange, *, actor: str, role: str, note: str = ""
) -> tuple[dict[str, Any], bool]:
    """Acknowledge, close or reopen (``open``); (the incident, whether it changed: a repeat changes nothing)."""
    if status == "open":
        return _change(
            store, settings, incident_id, lambda inc, now: inc.reopen(actor, now),
            action="incident.reopened", actor=actor, role=role, details={"note": note},
        )  # fmt: skip
    if status not in ("acknowledged", "closed"):
        raise InputError(f"status: must be acknowledged, closed or open, got {status!r}")
    return _change(
        store, settings, incident_id, lambda inc, now: inc.triage(status, actor, now),
        action=f"incident.{status}", actor=actor, role=role, details={"note": note},
    )  # fmt: skip


def assign(
    store: Store, settings: Settings, incident_id: str, owner: str | None, *, actor: str, role: str, note: str = ""
) -> tuple[dict[str, Any], bool]:
    """Give the incident to a principal (None: nobody)."""
    return _change(
        store, settings, incident_id, lambda inc, now: inc.assign(owner, actor, now),
        action="incident.assigned", actor=actor, role=role, details={"owner": owner, "note": note},
    )  # fmt: skip


def add_note(
    store: Store, settings: Settings, incident_id: str, text: str, *, actor: str, role: str
) -> tuple[dict[str, Any], bool]:
    """Append a note as its author wrote it (kept verbatim; rendered escaped)."""
    text = text.strip()
    if not text:
        raise InputError("note: empty")
    if len(text) > MAX_NOTE:
        raise InputError(f"note: at most {MAX_NOTE} characters, got {len(text)}")
    return _change(
        store, settings, incident_id, lambda inc, now: inc.add_note(Note.new(actor, text, now)),
        action="incident.noted", actor=actor, role=role, details={"note": text},
    )  # fmt: skip
