"""Celery tasks for playbooks (thin: the logic lives in soar.playbooks).

``handle_alert`` starts at most one run per (playbook, alert); ``advance`` does one
step attempt of a run and schedules the next; ``recover`` resumes runs a killed
worker left behind and wakes expired approvals. A worker starting up runs ``recover``.
"""

from __future__ import annotations

import logging
from typing import Any

from celery.signals import worker_ready

from soar.celery_app import app
from soar.config import get_settings
from soar.dispatch import CeleryDispatcher, Local, Task, dispatcher_for, handles
from soar.playbooks import dispatch, engine

log = logging.getLogger("soar.tasks.playbooks")


def _runtime() -> Any:
    return dispatch.runtime_for(get_settings())


@app.task(name=Task.HANDLE_ALERT.value)
def handle_alert(alert_id: str) -> list[str]:
    """Start the runs an alert triggers (a redelivered alert starts nothing new), then attach the alert to its
    incident (after: the response does not wait for the bookkeeping; attaching again changes nothing)."""
    from soar.incidents import attach_quietly

    settings = get_settings()
    rt = _runtime()
    try:
        started = engine.handle_alert(rt, alert_id)
        in_process = dispatcher_for(settings).in_process
        for run_id in started:
            if in_process:
                dispatch.kick(settings, run_id, runtime=rt)
            else:  # the first step runs here, saving a queue hop on the alert-to-first-step path
                _advance_and_schedule(run_id)
    finally:
        attach_quietly(rt.store, settings, alert_id)
    return started


@handles(Task.HANDLE_ALERT)
def _handle_alert_here(local: Local, alert_id: str) -> None:
    """Eager mode: a process that loaded this module runs the playbook engine for its new alerts."""
    handle_alert(alert_id)


@app.task(name=Task.ADVANCE.value)
def advance(run_id: str) -> str:
    """One step attempt of a run; the next one is another task (after a retry's backoff if any)."""
    return _advance_and_schedule(run_id)


def _advance_and_schedule(run_id: str) -> str:
    settings = get_settings()
    nxt = dispatch.advance(_runtime(), run_id)
    if nxt.kind in ("continue", "retry"):
        dispatch.schedule(settings, run_id, nxt.delay)
    elif nxt.kind == "paused" and nxt.delay > 0:
        dispatch.schedule(settings, run_id, nxt.delay + 1)  # wake up to expire the approval
    return nxt.kind


@app.task(name=Task.RECOVER.value)
def recover() -> list[str]:
    """Resume every run a lost worker left mid-step (once its lease runs out), and expire approvals on time."""
    settings = get_settings()
    runs = engine.resumable_runs(_runtime())
    for run_id, delay in runs:
        dispatch.schedule(settings, run_id, delay + 1 if delay > 0 else 0)
    return [run_id for run_id, _ in runs]


@worker_ready.connect
def _recover_on_start(sender: Any = None, **_: Any) -> None:
    settings = get_settings()
    if dispatcher_for(settings).in_process:
        return
    try:
        CeleryDispatcher().send(Task.RECOVER, queue=settings.response_queue)
    except Exception as exc:
        log.warning("could not schedule run recovery: %s", exc)
