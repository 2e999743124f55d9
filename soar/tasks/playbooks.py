"""Celery tasks for playbooks (thin: the logic lives in soar.playbooks).

``handle_alert`` starts at most one run per (playbook, alert); ``advance`` does one
step attempt of a run and schedules the next; ``recover`` resumes runs a killed
worker left behind and wakes expired approvals. A worker starting up runs ``recover``, and so does one
that finds the state store back after an outage (``soar.tasks.outage``: the tasks wait it out, retried).
"""

from __future__ import annotations

import logging
from typing import Any

from celery.signals import worker_ready

from soar.celery_app import app
from soar.config import get_settings
from soar.connections import unreachable
from soar.dispatch import CeleryDispatcher, Local, Task, dispatcher_for, handles
from soar.playbooks import dispatch, engine
from soar.tasks.outage import GIVE_UP_AFTER, waiting_for_store

log = logging.getLogger("soar.tasks.playbooks")


def _runtime() -> Any:
    return dispatch.runtime_for(get_settings())


@app.task(name=Task.HANDLE_ALERT.value, bind=True, max_retries=None)  # nothing else would start its runs
def handle_alert(self: Any, alert_id: str) -> list[str] | None:
    """Start the runs an alert triggers (a redelivered alert starts nothing new), then attach the alert to its
    incident (after: the response does not wait for the bookkeeping; attaching again changes nothing).

    Retried while the store is unreachable; an attempt that created a run and lost the store before the run's
    first step is made good by the next: every unfinished run of the alert is moved on (under this task's id,
    so a lease the lost attempt took is taken back; a run another worker holds is left to it)."""
    with waiting_for_store(self):
        return _handle_alert(alert_id, owner=self.request.id)
    return None


def _handle_alert(alert_id: str, owner: str | None) -> list[str]:
    from soar.incidents import attach_quietly

    settings = get_settings()
    rt = _runtime()
    try:
        runs = engine.start_runs(rt, alert_id)
        in_process = dispatcher_for(settings).in_process
        for run_id, _created in runs:  # one that existed: a finished run is left at once, a held one to its holder
            if in_process:
                dispatch.kick(settings, run_id, runtime=rt)
            else:  # the first step runs here, saving a queue hop on the alert-to-first-step path
                _advance_and_schedule(run_id, owner)
    except Exception as exc:
        if not unreachable(exc):  # an outage is retried whole: the retry attaches it
            attach_quietly(rt.store, settings, alert_id)
        raise
    attach_quietly(rt.store, settings, alert_id, retried=owner is not None)
    return [run_id for run_id, created in runs if created]


@handles(Task.HANDLE_ALERT)
def _handle_alert_here(local: Local, alert_id: str) -> None:
    """Eager mode: a process that loaded this module runs the playbook engine for its new alerts."""
    _handle_alert(alert_id, None)


@app.task(name=Task.ADVANCE.value, bind=True, max_retries=GIVE_UP_AFTER)
def advance(self: Any, run_id: str) -> str | None:
    """One step attempt of a run; the next one is another task (after a retry's backoff if any).

    Its lease is taken under the task's id, which a retry keeps: a retry after the store went away mid-step
    takes the run back at once and goes on as a new worker would after a crash there."""
    with waiting_for_store(self):
        return _advance_and_schedule(run_id, self.request.id)
    return None


def _advance_and_schedule(run_id: str, owner: str | None = None) -> str:
    settings = get_settings()
    nxt = dispatch.advance(_runtime(), run_id, owner)
    if nxt.kind in ("continue", "retry"):
        dispatch.schedule(settings, run_id, nxt.delay)
    elif nxt.kind == "paused" and nxt.delay > 0:
        dispatch.schedule(settings, run_id, nxt.delay + 1)  # wake up to expire the approval
    return nxt.kind


@app.task(name=Task.RECOVER.value, bind=True, max_retries=None)
def recover(self: Any) -> list[str] | None:
    """Resume every run a lost worker left mid-step (once its lease runs out), expire approvals on time, and
    append the audit entries this worker spooled while the store was out of reach."""
    from soar.audit.spool import replay

    with waiting_for_store(self):
        settings = get_settings()
        rt = _runtime()
        replay(rt.store, settings)
        runs = engine.resumable_runs(rt)
        for run_id, delay in runs:
            dispatch.schedule(settings, run_id, delay + 1 if delay > 0 else 0)
        return [run_id for run_id, _ in runs]
    return None


@worker_ready.connect
def _recover_on_start(sender: Any = None, **_: Any) -> None:
    settings = get_settings()
    if dispatcher_for(settings).in_process:
        return
    try:
        CeleryDispatcher().send(Task.RECOVER, queue=settings.response_queue)
    except Exception as exc:
        log.warning("could not schedule run recovery: %s", exc)
