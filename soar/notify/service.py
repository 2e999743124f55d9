"""The notify façade the rest of soar calls: enqueue, then have the outbox delivered.

With eager dispatch (embedded mode, :mod:`soar.dispatch`) delivery runs in-process right away;
otherwise a ``soar.notify.deliver`` task per channel does it on a worker, and
reschedules itself while messages wait for a retry.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from functools import partial
from typing import Any

from soar.clock import SYSTEM, Clock
from soar.config import Settings
from soar.dispatch import Task, dispatcher_for
from soar.notify import incidents
from soar.notify.delivery import Deliverer, DeliveryReport
from soar.notify.outbox import Message, channels_with_open_messages, enqueue, key_for
from soar.notify.transport import Transport, transport_for
from soar.records import Thread
from soar.store import Store, open_store

log = logging.getLogger("soar.notify")

DELIVER_TASK = Task.DELIVER


def deliver(settings: Settings, store: Store, channel: str, transport: Transport | None = None) -> DeliveryReport:
    """One delivery pass over a channel's outbox."""
    return Deliverer(settings, store, transport or transport_for(settings)).deliver(channel)


def deliver_all(settings: Settings, store: Store, transport: Transport | None = None) -> list[DeliveryReport]:
    transport = transport or transport_for(settings)
    return [deliver(settings, store, ch, transport) for ch in channels_with_open_messages(store)]


def kick(settings: Settings, store: Store, channels: Iterable[str], *, countdown: float | None = None) -> None:
    """Have these channels delivered: in-process when eager (retries on a timer), else by a worker."""
    dispatcher = dispatcher_for(settings, store)
    for channel in sorted(set(channels)):
        dispatcher.send(
            DELIVER_TASK,
            [channel],
            queue=settings.notify_queue,
            countdown=countdown,
            here=partial(_deliver_here, settings, store, channel),
        )


def _deliver_here(settings: Settings, store: Store, channel: str) -> None:
    """Eager mode: deliver now, and retry on a timer what must wait."""
    report = deliver(settings, store, channel)
    retry_in = BUSY_RETRY if report.busy else report.retry_in
    if retry_in is not None:
        _retry_later(settings, channel, retry_in)


# A retry lives in a Celery ETA task (worker) or a timer (embedded): a worker restarted at the wrong
# moment can hold it for the broker's visibility timeout. The scheduler sweeps, so a waiting message
# is tried again within SWEEP_GRACE of its due time whatever happened to its retry.
SWEEP_GRACE = 30.0
SWEEP_INTERVAL = 30.0


def sweep(settings: Settings, store: Store, clock: Clock = SYSTEM) -> list[str]:
    """Deliver the channels whose next attempt is overdue by more than SWEEP_GRACE; returns them."""
    channels = channels_with_open_messages(store, overdue_before=clock.now() - SWEEP_GRACE)
    kick(settings, store, channels)
    return channels


# Embedded mode has no worker to schedule retries on: a daemon timer per (store, channel) does it
# while the process lives (`soar api`, the demo). The outbox itself is in the store, so a process
# that starts (`soar api`, `soar scheduler`) resumes what an earlier one left (`resume_in_background`);
# `soar notify deliver` catches up from a shell or cron.
BUSY_RETRY = 1.0
_timers: dict[tuple[str, str], threading.Timer] = {}
_timers_lock = threading.Lock()
_resumed: set[str] = set()


def resume(settings: Settings, store: Store, transport: Transport | None = None) -> list[DeliveryReport]:
    """Deliver what is due of every waiting message, whoever enqueued it; in embedded mode keep retrying.

    Due times, the channel lease and idempotency keys hold as in any pass: a message is sent once,
    not before its next attempt, and one whose answer was lost is looked up before it is posted again.
    """
    reports = deliver_all(settings, store, transport)
    if dispatcher_for(settings).in_process:  # no worker reschedules what waits: this process does
        for report in reports:
            retry_in = BUSY_RETRY if report.busy else report.retry_in
            if retry_in is not None:
                _retry_later(settings, report.channel, retry_in)
    return reports


def resume_in_background(settings: Settings) -> bool:
    """Once per process and state: :func:`resume` on a daemon thread (startup must not wait for Slack)."""
    key = str(settings.state_dir.resolve())
    with _timers_lock:
        if key in _resumed:
            return False
        _resumed.add(key)
    transport_for(settings)  # says now, at startup, what a webhook cannot do
    threading.Thread(target=_resume_quietly, args=(settings,), name="soar-notify-resume", daemon=True).start()
    return True


def _resume_quietly(settings: Settings) -> None:
    """Resume once the store answers (a process started during an outage waits with it, saying so once)."""
    from soar.liveness import store_dependency, wait_for

    store = wait_for(lambda: open_store(settings), store_dependency(settings), threading.Event())
    if store is None:
        return
    try:
        resume(settings, store)
    except Exception as exc:  # a thread has no one to raise to; the next start or `soar notify deliver` tries again
        log.warning("resuming Slack delivery failed: %s", type(exc).__name__, exc_info=log.isEnabledFor(logging.DEBUG))
    finally:
        store.close()


def _retry_later(settings: Settings, channel: str, delay: float) -> None:
    key = (str(settings.state_dir.resolve()), channel)
    with _timers_lock:
        if key in _timers:
            return
        timer = threading.Timer(min(max(delay, 0.05), 300.0), _retry, args=(settings, channel, key))
        timer.daemon = True
        _timers[key] = timer
        timer.start()


def _retry(settings: Settings, channel: str, key: tuple[str, str]) -> None:
    with _timers_lock:
        _timers.pop(key, None)
    try:
        store = open_store(settings)
        try:
            report = deliver(settings, store, channel)
        finally:
            store.close()
    except Exception:  # a timer thread has no one to raise to
        log.exception("retrying Slack delivery to %s failed", channel)
        return
    retry_in = BUSY_RETRY if report.busy else report.retry_in
    if retry_in is not None:
        _retry_later(settings, channel, retry_in)


def notify_run_event(settings: Settings, store: Store, event: Mapping[str, Any]) -> Thread:
    """A playbook run event → the incident's thread (reply + card update). Returns the thread."""
    thread = incidents.handle_event(settings, store, event)
    kick(settings, store, [thread.channel])
    return thread


def notify_alert(settings: Settings, store: Store, alert: Mapping[str, Any], *, planned: str | None = None) -> Thread:
    """Post an alert's card (once per alert, however often this is called)."""
    thread = incidents.open_thread(settings, store, alert, planned=planned)
    kick(settings, store, [thread.channel])
    return thread


def planned_automation(settings: Settings, store: Store, alert: Mapping[str, Any]) -> str:
    """What automation will do about an alert, for its card: the playbooks it triggers, or none."""
    try:
        from soar.playbooks import dispatch, triggers

        names = [pb.name for pb in triggers.triggered(dispatch.runtime_for(settings, store).playbooks.playbooks, alert)]
    except Exception as exc:  # broken content must not keep the on-call from seeing the alert
        log.warning("cannot tell which playbooks alert %s triggers: %s", alert.get("id"), exc)
        return "unknown (playbooks could not be loaded)"
    return ("playbook " + ", ".join(names)) if names else "no playbook matches: triage by hand"


def notify_text(
    settings: Settings,
    store: Store,
    text: str,
    *,
    channel: str | None = None,
    run_id: str | None = None,
    key: str | None = None,
) -> Message:
    """A free-text message: a reply in the run's incident thread when there is one, else a post to ``channel``."""
    from soar.notify.cards import escape

    thread = incidents.thread_for_run(store, run_id) if run_id else None
    target = thread.card if thread and not channel else None
    chan = channel or (thread.channel if thread else settings.slack_default_channel)
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": escape(text)}}]
    message = Message(
        key=key or key_for("text", run_id, chan, text),
        op="post",
        kind="reply" if target else "card",
        channel=chan,
        text=escape(text, 3000),
        blocks=blocks,
        target=target,
        incident=thread.id if thread else None,
    )
    enqueue(store, message)
    kick(settings, store, [chan])
    return message


def ephemeral(
    settings: Settings,
    store: Store,
    *,
    channel: str,
    user: str,
    text: str,
    key: str,
    thread_target: str | None = None,
) -> None:
    """A message only ``user`` sees (refusals of an approval click)."""
    from soar.notify.cards import escape

    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": escape(text)}}]
    enqueue(
        store,
        Message(
            key=key,
            op="ephemeral",
            kind="ephemeral",
            channel=channel,
            user=user,
            text=escape(text),  # Slack parses the fallback text as mrkdwn too
            blocks=blocks,
            target=thread_target,
        ),
    )
    kick(settings, store, [channel])
