"""Prometheus metrics of continuous detection, and the endpoint that serves them.

With several worker processes (Celery's prefork pool), set ``PROMETHEUS_MULTIPROC_DIR``
(prometheus-client's multiprocess mode): each process writes its values to files there
and the endpoint sums them. ``soar worker`` empties the directory when it starts, before
its pool forks, so values of an earlier run are never summed into this one.
"""

from __future__ import annotations

import os
from collections import Counter as Counter_
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    start_http_server,
)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
if os.environ.get(MULTIPROC_ENV):  # the metrics below open their files there as they are defined
    Path(os.environ[MULTIPROC_ENV]).mkdir(parents=True, exist_ok=True)

CYCLE_SECONDS = Histogram(
    "soar_detection_cycle_seconds",
    "Wall time of one detection cycle (all rules due together)",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120),
)
RULE_SECONDS = Histogram(
    "soar_detection_rule_seconds",
    "Time of one rule's run within a cycle (its share of the _msearch plus alert writing)",
    ["rule"],
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 30),
)
# Runs, alerts and errors count what the cycles added to the stored checkpoints (their versioned write), so
# these and ``runs_total``/``alerts_total``/``errors_total`` of ``soar detect status`` move together.
RULE_RUNS = Counter("soar_detection_rule_runs_total", "Runs of a rule (its window searched, or failed)", ["rule"])
RULE_HITS = Counter("soar_detection_rule_hits_total", "Events matched by a rule", ["rule"])
RULE_ALERTS = Counter("soar_detection_rule_alerts_total", "Alerts created by a rule", ["rule"])
RULE_ERRORS = Counter("soar_detection_rule_errors_total", "Failed rule runs, by kind of error", ["rule", "kind"])
GAP_SECONDS = Counter("soar_detection_gap_seconds_total", "Seconds of event time recorded as gaps", ["rule"])
EVENT_TO_ALERT = Histogram(
    "soar_detection_event_to_alert_seconds",
    "From an event's @timestamp to its alert's creation",
    buckets=(0.5, 1, 2, 3, 5, 7, 10, 15, 30, 60, 120, 300, 900),
)

# Set by the scheduler each tick from the stored checkpoints, so a restart shows the same states at once
# (the counters above start again from zero; a rule disabled before the restart is still disabled here).
RULES = Gauge(
    "soar_detection_rules",
    "Rules by state: ok, error, disabled (query rejected), never run, off, invalid (did not load)",
    ["state"],
    multiprocess_mode="livemax",
)
RULE_DISABLED = Gauge(
    "soar_detection_rule_disabled",
    "1 while a rule is disabled because Elasticsearch rejects its query (until its content changes)",
    ["rule"],
    multiprocess_mode="livemax",
)
_shown: dict[str, set[str]] = {"state": set(), "rule": set()}  # label values set so far, to zero the gone

# Response: dry runs and runs whose containment the policy refused are counted under ``excluded`` and kept
# out of the automation and time-to-contain figures (soar.review.metrics says why).
RUNS_FINISHED = Counter(
    "soar_playbook_runs_finished_total",
    "Playbook runs finished, by status; excluded=dry_run|refused are left out of the figures below",
    ["status", "excluded"],
)
RUNS_AUTOMATED = Counter(
    "soar_playbook_runs_automated_total", "Counted runs (not dry, not refused) that finished with no human decision"
)
TIME_TO_CONTAIN = Histogram(
    "soar_playbook_time_to_contain_seconds",
    "Alert → first verified containment, counted runs that contained something",
    buckets=(1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600),
)


def observe_run(run: dict[str, Any]) -> None:
    """Count a run as it finishes (the first time: a later rollback is not a second run)."""
    from soar.review.metrics import run_figures

    figures = run_figures(run)
    RUNS_FINISHED.labels(status=figures["status"], excluded=figures["excluded"] or "no").inc()
    if figures["automated"]:
        RUNS_AUTOMATED.inc()
    if figures["mttc"] is not None:
        TIME_TO_CONTAIN.observe(max(0.0, figures["mttc"]))


def set_rule_states(states: Mapping[str, str], invalid: int) -> None:
    """Publish the scheduler's view: how many rules are in each state, and which are disabled."""
    counts = dict(Counter_(states.values()), invalid=invalid)
    for state in _shown["state"] | counts.keys():
        RULES.labels(state=state).set(counts.get(state, 0))
    disabled = {rule for rule, state in states.items() if state == "disabled"}
    for rule in _shown["rule"] | disabled:  # 0 once enabled again (its content changed) or gone
        RULE_DISABLED.labels(rule=rule).set(1 if rule in disabled else 0)
    _shown["state"] |= counts.keys()
    _shown["rule"] |= disabled


def multiprocess_dir() -> Path | None:
    value = os.environ.get(MULTIPROC_ENV)
    return Path(value) if value else None


def reset_multiprocess_dir() -> Path | None:
    """Empty (or create) the multiprocess directory: files of dead processes would be summed forever."""
    directory = multiprocess_dir()
    if directory is None:
        return None
    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.glob("*.db"):
        old.unlink(missing_ok=True)
    return directory


def mark_process_dead(pid: int) -> None:
    """A pool process exited: drop its live-gauge files (its counters and histograms stay summed)."""
    if multiprocess_dir() is not None:
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def registry() -> CollectorRegistry | None:
    """The registry to expose: the multiprocess aggregate when configured, else the default one."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        reg = CollectorRegistry()
        multiprocess.MultiProcessCollector(reg)  # type: ignore[no-untyped-call]
        return reg
    return None


def exposition() -> bytes:
    """The metrics in Prometheus text format (what the endpoint serves)."""
    reg = registry()
    return generate_latest(reg) if reg is not None else generate_latest()


def serve(port: int, addr: str = "127.0.0.1") -> None:
    """Serve /metrics on ``addr:port`` from a background thread."""
    reg = registry()
    if reg is not None:
        start_http_server(port, addr=addr, registry=reg)
    else:
        start_http_server(port, addr=addr)
