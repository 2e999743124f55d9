"""Celery tasks for notify (thin: the logic lives in ``soar.notify``)."""

from __future__ import annotations

from typing import Any

from soar.celery_app import app
from soar.config import get_settings
from soar.dispatch import CeleryDispatcher, Local, Task, handles
from soar.notify import Deliverer, interactions, service, transport_for
from soar.store import open_store
from soar.tasks.outage import GIVE_UP_AFTER, waiting_for_store

BUSY_RETRY = 1.0


@app.task(name=Task.RUN_EVENT.value, bind=True, max_retries=GIVE_UP_AFTER)
def run_event(self: Any, run_id: str, event: dict[str, Any]) -> dict[str, Any] | None:
    """A playbook run event → a reply in the incident's thread and an updated card (retried while the store
    is unreachable: its messages are keyed by the event, so a retry posts none twice)."""
    with waiting_for_store(self):
        return _run_event(run_id, event)
    return None


@handles(Task.RUN_EVENT)
def _run_event_here(local: Local, run_id: str, event: dict[str, Any]) -> None:
    """Eager mode: the same, in the process that published the event."""
    _run_event(run_id, event)


def _run_event(run_id: str, event: dict[str, Any]) -> dict[str, Any]:
    settings = get_settings()
    store = open_store(settings)
    try:
        thread = service.notify_run_event(settings, store, {**event, "run_id": event.get("run_id") or run_id})
    finally:
        store.close()
    return {"incident": thread.id, "channel": thread.channel, "revision": thread.revision}


@app.task(name=Task.NOTIFY_ALERT.value, bind=True, max_retries=None)
def alert(self: Any, alert_id: str) -> dict[str, Any] | None:
    """An alert's card (once per alert), for alerts no playbook picks up; a missing alert is reported, not retried
    (an unreachable store is: nothing else would post the card)."""
    with waiting_for_store(self):
        return _alert(alert_id)
    return None


def _alert(alert_id: str) -> dict[str, Any]:
    settings = get_settings()
    store = open_store(settings)
    try:
        record = store.get("alerts", alert_id)
        if record is None:
            return {"alert": alert_id, "error": "no such alert"}
        planned = service.planned_automation(settings, store, record.doc)
        thread = service.notify_alert(settings, store, record.doc, planned=planned)
    finally:
        store.close()
    return {"incident": thread.id, "channel": thread.channel}


@app.task(name=Task.DELIVER.value, bind=True, max_retries=GIVE_UP_AFTER)  # then the scheduler's sweep
def deliver(self: Any, channel: str) -> dict[str, Any] | None:
    """Send a channel's outbox; reschedule itself while messages wait for a retry."""
    with waiting_for_store(self):
        return _deliver(channel)
    return None


def _deliver(channel: str) -> dict[str, Any]:
    settings = get_settings()
    store = open_store(settings)
    try:
        deliverer = Deliverer(settings, store, transport_for(settings))
        report = deliverer.deliver(channel)
        # Busy: another worker holds the channel; one look again shortly, in case it finished before our message came.
        if report.busy and deliverer.claim_wake(channel, BUSY_RETRY):
            CeleryDispatcher().send(Task.DELIVER, [channel], queue=settings.notify_queue, countdown=BUSY_RETRY)
        elif report.retry_in is not None and not report.busy:
            CeleryDispatcher().send(Task.DELIVER, [channel], queue=settings.notify_queue, countdown=report.retry_in)
    finally:
        store.close()
    return {"channel": channel, "sent": report.sent, "busy": report.busy, "retry_in": report.retry_in}


@app.task(name=Task.INTERACTION.value, bind=True, max_retries=GIVE_UP_AFTER)
def interaction(self: Any, data: dict[str, Any]) -> dict[str, Any] | None:
    """A verified Slack button click: check the clicker's role and decide the approval (a person's decision:
    held while the store is out of reach, for minutes, not dropped)."""
    with waiting_for_store(self):
        return _interaction(data)
    return None


def _interaction(data: dict[str, Any]) -> dict[str, Any]:
    settings = get_settings()
    store = open_store(settings)
    try:
        return interactions.handle(settings, store, interactions.Interaction.from_dict(data))
    finally:
        store.close()
