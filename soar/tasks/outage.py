"""A task that finds the state store out of reach waits for it instead of failing.

The response path's tasks (``handle_alert``, ``advance``, ``notify.run_event``) are retried with capped
exponential backoff and jitter while the store is unreachable (refused, reset, timed out, answering 503):
one log line when the worker finds it down and one when it is back (``soar.liveness``), never a
traceback. Retrying is safe: an alert starts one run however often it is handled, and an ``advance``
retried under its task id (the same lease owner) takes its run back as a worker that died there would
be replaced: from the last completed step, an interrupted non-idempotent step never repeated.

A task that gives up (``advance`` after ~7 minutes of outage) leaves its run to ``recover``, which a
worker sends when it starts and again when it finds the store back. Called directly (eager mode, the
embedded default) the error goes to the caller, whose own retry hands the work off again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from soar.config import get_settings
from soar.connections import unreachable
from soar.dispatch import CeleryDispatcher, Task
from soar.liveness import backoff, reason, store_dependency

log = logging.getLogger("soar.tasks.outage")

BACKOFF_BASE = 1.0  # seconds before the first retry (then doubling, jittered in [½, 1])
BACKOFF_CAP = 30.0
GIVE_UP_AFTER = 24  # retries: about 7 minutes of outage at the cap, then ``recover`` resumes the run


def retry_delay(retries: int) -> float:
    """Seconds before retry ``retries`` (0-based) of a task that found the store down."""
    return backoff(retries, base=BACKOFF_BASE, cap=BACKOFF_CAP)


@contextmanager
def waiting_for_store(task: Any, *, retry: bool = True) -> Iterator[None]:
    """Run a bound task's body; an unreachable store makes it a retry (or, past ``task.max_retries``, a
    warning and nothing: the run is ``recover``'s). Any other error propagates as before.

    ``retry=False``: work that is sent again anyway (a detection cycle: the scheduler's next tick searches
    the window again) is dropped, said only by the store's down line."""
    settings = get_settings()
    store = store_dependency(settings)
    try:
        yield
    except Exception as exc:
        if not unreachable(exc):
            raise
        store.failed(exc)  # one line when it goes down, then a reminder every 5 minutes
        request = task.request
        if request.called_directly or request.is_eager:  # in-process: the caller's retry
            raise
        if not retry:
            return
        if task.max_retries is not None and request.retries >= task.max_retries:
            log.warning(
                "%s%s: gave up after %d retries, the state store still unreachable (%s); recovery resumes it",
                task.name, list(request.args or ()), request.retries, reason(exc),
            )  # fmt: skip
            return
        raise task.retry(exc=exc, countdown=retry_delay(request.retries)) from None
    if not store.up:
        store.ok()  # "is back after N s"
        _recover_soon(settings)


def _recover_soon(settings: Any) -> None:
    """The store is back: resume any run whose task gave up meanwhile (``recover`` is idempotent)."""
    try:
        CeleryDispatcher().send(Task.RECOVER, queue=settings.response_queue)
    except Exception as exc:  # the broker is down as well: a worker starting up recovers
        log.warning("could not schedule run recovery: %s", reason(exc))
