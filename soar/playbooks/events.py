"""Run events: every state change of a run is published for the on-call (Slack) and the log.

The engine calls :func:`publish`; it sends the task ``soar.notify.run_event`` (owned by the
notify area, named through :mod:`soar.dispatch`) on the notify queue, or runs it in-process
in eager mode. Publishing never fails a run: a broken notifier is logged, not raised.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Literal

from soar.alerts import utcnow_iso
from soar.config import Settings
from soar.dispatch import Task, dispatcher_for
from soar.records import Run

EventType = Literal[
    "run_started",
    "step_started",
    "step_finished",
    "approval_requested",
    "approval_decided",
    "verification",
    "rollback",
    "run_finished",
    "containment_drifted",  # the containment watch (soar.containment): a containment in force is not what it was
    "containment_repaired",
    "containment_escalated",
    "containment_released",
]
EVENT_TYPES: tuple[str, ...] = EventType.__args__  # type: ignore[attr-defined]
TASK_NAME = Task.RUN_EVENT

log = logging.getLogger("soar.playbooks.events")

_seq_lock = threading.Lock()
_last_seq = 0


def next_seq() -> int:
    """A number that orders a run's events as they happened.

    Events are handled by several workers at once and arrive in any order; the receiver keeps
    the state of the newest. Nanoseconds of the wall clock (shared by the processes a run moves
    between), strictly increasing within a process so two events in the same tick stay ordered.
    """
    global _last_seq
    with _seq_lock:
        _last_seq = max(time.time_ns(), _last_seq + 1)
        return _last_seq


def make_event(event_type: EventType, run: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """The event dict of the agreed shape: type, run_id, playbook, alert, at, seq, dry_run, plus step/approval.

    ``seq`` also goes into ``run["event_seq"]``: saved with the run, it keeps a run's events in order
    when the run moves to a worker on a machine whose clock is behind.
    """
    seq = run["event_seq"] = max(next_seq(), int(run.get("event_seq") or 0) + 1)
    playbook = (run.get("playbook") or {}).get("name")
    return _event(event_type, seq, run["id"], playbook, run.get("status"), run.get("dry_run"), run.get("alert"), extra)


def run_event(event_type: EventType, run: Run, **extra: Any) -> dict[str, Any]:
    """``make_event`` of a typed run (its ``event_seq`` raised the same way)."""
    seq = run.event_seq = max(next_seq(), (run.event_seq or 0) + 1)
    return _event(event_type, seq, run.id, run.playbook.name, run.status, run.dry_run, run.alert, extra)


def _event(
    event_type: EventType,
    seq: int,
    run_id: Any,
    playbook: Any,
    status: Any,
    dry_run: Any,
    alert: dict[str, Any] | None,
    extra: dict[str, Any],
) -> dict[str, Any]:
    alert = alert or {}
    rule = alert.get("rule") or {}
    event: dict[str, Any] = {
        "type": event_type,
        "run_id": run_id,
        "playbook": playbook,
        "status": status,
        "dry_run": bool(dry_run),
        "alert": {
            "id": alert.get("id"),
            "rule": {"id": rule.get("id"), "title": rule.get("title"), "level": rule.get("level")},
            "host": alert.get("host") or {},
            "user": alert.get("user") or {},
            "source": alert.get("source") or {},
        },
        "at": utcnow_iso(),
        "seq": seq,
    }
    event.update(extra)
    return event


def publish(settings: Settings, run_id: str, event: dict[str, Any]) -> None:
    """Send ``soar.notify.run_event(run_id, event)``; in eager mode call it here. Never raises."""
    try:
        if not dispatcher_for(settings).send(TASK_NAME, [run_id, event], queue=settings.notify_queue):
            log.info("run %s: %s", run_id, event.get("type"))
    except Exception as exc:  # a notifier problem must never stop a containment
        log.warning("run %s: could not publish %s event: %s", run_id, event.get("type"), exc)
