"""Run records: one ``runs`` document per (playbook, alert fingerprint), updated optimistically.

The run id is derived from the playbook name and the alert id, and the document is
created create-only, so a redelivered or duplicate alert never starts a second run.
Steps live inside the run document (one atomic write per state change); approvals
are their own ``approvals`` documents. Rendered parameters are stored with secrets
redacted; the playbook text is stored so a resumed run follows the version it began with.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from typing import Any

from soar.clock import SYSTEM, Clock, iso
from soar.config import Settings
from soar.playbooks.model import Playbook
from soar.records import PlaybookRef, Run
from soar.records import run as run_record
from soar.store import Record, Store

RUNS = "runs"
APPROVALS = "approvals"
TERMINAL = run_record.TERMINAL
MAX_UPDATE_RETRIES = 50

log = logging.getLogger("soar.playbooks")


def run_id_for(playbook_name: str, alert_id: str) -> str:
    return "run-" + hashlib.sha256(f"{playbook_name}\x00{alert_id}".encode()).hexdigest()[:24]


def alert_summary(alert: dict[str, Any]) -> dict[str, Any]:
    rule = alert.get("rule") or {}
    return {
        "id": alert.get("id"),
        "rule": {k: rule.get(k) for k in ("id", "title", "level", "tags")},
        "severity": alert.get("severity"),
        "host": alert.get("host") or {},
        "user": alert.get("user") or {},
        "source": alert.get("source") or {},
    }


def requester_of(alert: dict[str, Any], origin: str) -> str:
    """Who asked for a run: the principal that sent its alert through the webhook, else soar's own detection."""
    sent = str(alert.get("origin") or "")
    if sent.startswith("webhook:"):
        return sent.removeprefix("webhook:")
    return "automation:scheduler" if origin == "alert" else f"automation:{origin}"


def new_run(
    playbook: Playbook,
    alert: dict[str, Any],
    *,
    origin: str,
    inputs: dict[str, Any] | None = None,
    requested_by: str | None = None,
    clock: Clock = SYSTEM,
) -> Run:
    now = iso(clock)
    return Run(
        id=run_id_for(playbook.name, str(alert["id"])),
        playbook=PlaybookRef(playbook.name, str(playbook.path), playbook.version_hash, playbook.text),
        alert_id=alert["id"],
        status="running",
        rule_id=(alert.get("rule") or {}).get("id"),
        alert=alert,
        origin=origin,
        requested_by=requested_by or requester_of(alert, origin),
        inputs={**playbook.spec.inputs, **(inputs or {})},
        created_at=now,
        updated_at=now,
    )


def mutate(
    store: Store, run_id: str, change: Callable[[dict[str, Any]], Any], *, clock: Clock = SYSTEM
) -> tuple[Record, Any]:
    """Apply ``change`` to the run document under optimistic concurrency (``Store.mutate``); its result too."""
    out: list[Any] = [None]

    def apply(doc: dict[str, Any]) -> dict[str, Any]:
        out[0] = change(doc)
        doc["updated_at"] = iso(clock)
        return doc

    rec = store.mutate(RUNS, run_id, apply, retries=MAX_UPDATE_RETRIES)
    if rec is None:
        raise KeyError(run_id)
    return rec, out[0]


def redacted(value: Any, settings: Settings) -> Any:
    """Secret-looking keys masked, every configured secret cut out of strings.

    The one collector (``soar.audit.redact.configured_secrets``: SecretStr settings, URL passwords, the
    principals' tokens, the generated audit key) serves run records, step outputs, audit entries and
    reports alike, so what one of them hides none of the others shows.
    """
    from soar.audit.redact import configured_secrets, redact

    return redact(value, configured_secrets(settings))


def audit(
    store: Store,
    settings: Settings,
    action: str,
    target: str | None,
    details: dict[str, Any],
    *,
    actor: str = "automation:playbooks",
) -> None:
    """Append to the audit chain; an audit failure is logged loudly but never half-runs a containment.

    ``actor`` is who did it: the engine by default, the human principal for a person's decision.
    """
    try:
        from soar.audit import record

        record(store, actor=actor, action=action, target=target, details=details, settings=settings)
    except Exception as exc:
        from soar.connections import unreachable

        if unreachable(exc):  # kept until the store answers (soar.audit.spool), not lost
            from soar.audit.spool import spool

            try:
                spool(settings, actor=actor, action=action, target=target, details=details)
                log.warning("audit record %s for %s spooled: the state store is unreachable", action, target)
                return
            except OSError as spool_exc:
                exc = spool_exc
        log.error("audit record %s for %s failed: %s", action, target, exc)
