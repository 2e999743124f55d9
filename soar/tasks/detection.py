"""Celery tasks for detection (thin: the logic lives in soar.scheduler)."""

from __future__ import annotations

from typing import Any

from soar.celery_app import app
from soar.config import get_settings
from soar.dispatch import Task
from soar.tasks.outage import waiting_for_store


@app.task(name=Task.RUN_RULES.value, bind=True, acks_late=True, ignore_result=False)  # the cycle report, kept 24 h
def run_rules(self: Any, rule_ids: list[str]) -> dict[str, Any] | None:
    """Run one cycle for these rules (sent together by the scheduler), then release their leases. With the
    store out of reach it is dropped (one line when it goes down): the next tick sends the window again."""
    from soar.scheduler.runtime import detector_for, leases_for
    from soar.scheduler.service import run_rule_ids

    settings = get_settings()
    try:
        with waiting_for_store(self, retry=False):
            return run_rule_ids(settings, detector_for(settings), rule_ids)
        return None
    finally:
        leases_for(settings).release(rule_ids)
