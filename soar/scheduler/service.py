"""What the CLI and the tasks call: run rules by id, backfill a window, report status, run the scheduler."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from soar.config import Settings
from soar.errors import InputError
from soar.liveness import Heartbeat, heartbeat_path, store_dependency, wait_for
from soar.scheduler.cycle import CycleReport, Detector
from soar.scheduler.loading import load_scheduled_rules
from soar.scheduler.loop import RUN_RULES, Chore, Scheduler, lease_ttl
from soar.scheduler.planning import Window, iso, parse_time
from soar.scheduler.rules import rule_state
from soar.scheduler.state import all_checkpoints, count_open_gaps
from soar.store import Store


def summary(report: CycleReport) -> dict[str, Any]:
    return {
        "seconds": round(report.seconds, 4),
        "requests": report.requests.total,
        "alerts": len(report.created),
        "rules": {
            rid: {
                "hits": run.hits,
                "alerts": run.alerts,
                "capped": run.capped,
                "error": run.error.message if run.error else None,
                "gap": [iso(run.gap.start), iso(run.gap.end)] if run.gap else None,
            }
            for rid, run in report.runs.items()
        },
    }


def run_rule_ids(
    settings: Settings,
    detector: Detector,
    rule_ids: Sequence[str],
    checkpoints: Mapping[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """One cycle for the given rules (unknown ids, e.g. a rule deleted since it was sent, are skipped)."""
    rules, _ = load_scheduled_rules(settings)
    wanted = set(rule_ids)
    return summary(detector.run([r for r in rules if r.id in wanted], checkpoints=checkpoints))


def backfill(settings: Settings, detector: Detector, rule_ref: str, start: str, end: str) -> CycleReport:
    """Search ``[start, end)`` for one rule by hand; InputError names the bad option."""
    t1, t2 = parse_time(start), parse_time(end)
    if t1 is None:
        raise InputError(f"--from: not an ISO-8601 time: {start!r}")
    if t2 is None:
        raise InputError(f"--to: not an ISO-8601 time: {end!r}")
    if t2 <= t1:
        raise InputError("--to: must be after --from")
    rules, _ = load_scheduled_rules(settings)
    rule = next((r for r in rules if rule_ref in (r.id, r.title)), None)
    if rule is None:
        raise InputError(f"--rule: no schedulable rule {rule_ref!r} under {settings.content_root}/rules")
    return detector.backfill(rule, Window(t1, t2))


@dataclass(frozen=True)
class StatusRow:
    rule_id: str
    title: str
    state: str  # ok | error | disabled | never run | off | invalid
    last_run: str | None
    duration_ms: float | None
    hits: int | None
    alerts: int | None
    errors: int
    open_gaps: int
    gap_seconds: float
    last_error: str | None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def status(settings: Settings, store: Store) -> list[StatusRow]:
    """Per rule: last run, duration, hits, alerts, errors, open gaps; a rule that did not load shows its error."""
    rules, errors = load_scheduled_rules(settings)
    checkpoints = all_checkpoints(store)
    gaps = count_open_gaps(store)
    rows = [
        StatusRow(str(err.source or "?"), "(not loaded)", "invalid", None, None, None, None, 1, 0, 0.0, str(err))
        for err in errors
    ]
    for rule in rules:
        ck = checkpoints.get(rule.id) or {}
        n_gaps, gap_secs = gaps.get(rule.id, (0, 0.0))
        state = rule_state(rule, ck)
        rows.append(
            StatusRow(
                rule_id=rule.id,
                title=rule.title,
                state=state,
                last_run=ck.get("last_run_at"),
                duration_ms=ck.get("last_duration_ms"),
                hits=ck.get("last_hits"),
                alerts=ck.get("last_alerts"),
                errors=int(ck.get("errors_total", 0)),
                open_gaps=n_gaps,
                gap_seconds=round(gap_secs, 1),
                last_error=ck.get("disabled_reason") or ck.get("last_error"),
            )
        )
    return rows


def run_scheduler(
    settings: Settings, stop: threading.Event, tick_seconds: float = 1.0, lease_seconds: float | None = None
) -> None:
    """The scheduler process: in embedded mode it runs the cycles itself, else it sends them to workers."""
    from soar.dispatch import configure, dispatcher_for
    from soar.scheduler.runtime import detector_for, leases_for, store_for

    configure(settings)
    dispatcher = dispatcher_for(settings)
    leases = leases_for(settings)

    def run_here(rule_ids: list[str]) -> None:
        try:  # the checkpoints this tick read fresh to find them due: not read twice
            run_rule_ids(settings, detector_for(settings), rule_ids, scheduler.due_checkpoints)
        finally:
            leases.release(rule_ids)

    def send(rule_ids: list[str]) -> None:
        dispatcher.send(RUN_RULES, [rule_ids], queue=settings.detection_queue, here=lambda: run_here(rule_ids))

    ttl = (lambda _rule: lease_seconds) if lease_seconds else lease_ttl
    heartbeat = Heartbeat("scheduler", heartbeat_path(settings.state_dir, "scheduler"))
    # started during an outage: wait for the store (it installs its index template when it opens) instead of exiting
    opening = store_dependency(settings)
    store = wait_for(
        lambda: store_for(settings),
        opening,
        stop,
        on_wait=lambda: heartbeat.beat(ready=False, dependencies=[opening]),
    )
    if store is None:  # stopped while waiting
        return
    scheduler = Scheduler(
        settings, store, leases, send, ttl=ttl, chores=scheduler_chores(settings, store), heartbeat=heartbeat
    )
    scheduler.run_forever(stop, tick_seconds)


WATCH_PASS_INTERVAL = 5.0  # seconds between looks for due containments (each has its own interval, jittered)
INCIDENT_SWEEP_INTERVAL = 600.0  # seconds between looks for alerts no incident holds (the first at start)
AUDIT_SPOOL_INTERVAL = 30.0  # seconds between appends of audit entries spooled while the store was away


def scheduler_chores(settings: Settings, store: Store) -> list[Chore]:
    """What the scheduler does besides detection: re-try Slack messages whose retry was lost, send the
    re-verification of every containment in force that is due (soar.containment), attach to their
    incidents the recent alerts a stopped process left unattached (soar.incidents.deferred), and append the
    audit entries spooled while the store was out of reach (soar.audit.spool)."""
    from soar.audit.spool import replay
    from soar.containment.watch import watch_pass
    from soar.dispatch import dispatcher_for
    from soar.incidents import deferred
    from soar.notify.service import SWEEP_INTERVAL, sweep

    dispatcher = dispatcher_for(settings, store)
    return [
        Chore("notify-sweep", SWEEP_INTERVAL, lambda: sweep(settings, store)),
        Chore("containment-watch", WATCH_PASS_INTERVAL, lambda: watch_pass(settings, store, dispatcher)),
        Chore("incidents-sweep", INCIDENT_SWEEP_INTERVAL, lambda: deferred.sweep(store, settings)),
        Chore("audit-spool", AUDIT_SPOOL_INTERVAL, lambda: replay(store, settings)),
    ]
