"""Celery task of the containment watch (thin: the logic lives in ``soar.containment``)."""

from __future__ import annotations

from typing import Any

from soar.celery_app import app
from soar.config import get_settings
from soar.containment import watch
from soar.dispatch import Local, Task, handles
from soar.store import open_store
from soar.tasks.outage import waiting_for_store


@app.task(name=Task.CHECK_CONTAINMENT.value, bind=True)
def check(self: Any, containment_id: str, holder: str) -> str | None:
    """Prove one containment again under the lease ``holder`` took; record, tell and repair by policy. With the
    store out of reach it is dropped (one line when it goes down): the watch sends it again when due."""
    with waiting_for_store(self, retry=False):
        settings = get_settings()
        store = open_store(settings)
        try:
            rec = watch.check(settings, store, containment_id, holder)
        finally:
            store.close()
        return None if rec is None else rec.last_outcome
    return None


@handles(Task.CHECK_CONTAINMENT)
def _check_here(local: Local, containment_id: str, holder: str) -> None:
    """Eager mode: the look runs in the process whose watch pass claimed it, on its store."""
    if local.store is None:
        check(containment_id, holder)
    else:
        watch.check(local.settings, local.store, containment_id, holder)
