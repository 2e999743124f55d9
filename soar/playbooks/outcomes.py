"""How a run record tells what happened: dry run versus done, why a step was skipped, in which order.

Pure. The engine stamps run documents with ``dry_run``, skip reasons and the run's own event
sequence (``seq``, a counter in the run raised on every state change: ``Run.tick``); the CLI, Slack
cards, the report, the demo and the metrics read them through these functions, so every surface
says the same thing: a dry run *planned*, it never *succeeded*.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from soar.records.run import Run, StepResult, run_planned, step_planned

DRY_RUN = "planned (dry run)"
# What a status means when nothing was touched (the status itself stays the state machine's).
DRY_LABELS: dict[str, str] = {
    "succeeded": DRY_RUN,
    "failed": "failed (dry run)",
    "rolled_back": "rolled back (dry run)",
    "running": "running (dry run)",
    "retrying": "retrying (dry run)",
}

# Why a step did not run, by cause; ``{detail}`` is filled in by the engine.
SKIP_REASONS: dict[str, str] = {
    "condition": "condition `when: {detail}` was false",
    "no_items": "for_each `{detail}` gave no items",
    "aborted": "not run: the run stopped after {detail}",
    "rolled_back": "not run: the run was rolled back ({detail})",
}


def shown_status(status: str, dry_run: bool) -> str:
    """The status a person reads: under a dry run ``succeeded`` becomes ``planned (dry run)``."""
    return DRY_LABELS.get(status, status) if dry_run else status


def skip_reason(cause: str, detail: str = "") -> str:
    return SKIP_REASONS[cause].format(detail=detail)


def _attempts(step: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [
        a
        for i in step.get("instances") or []
        if isinstance(i, Mapping)
        for a in i.get("attempts") or []
        if isinstance(a, Mapping)
    ]


def planned_only(step: Mapping[str, Any]) -> bool:
    """A step (or instance) that touched nothing: recorded ``dry_run``, or (older records) every attempt was."""
    if isinstance(step.get("dry_run"), bool):
        return bool(step["dry_run"])
    attempts = _attempts(step) if "instances" in step else [a for a in step.get("attempts") or [] if a]
    return bool(attempts) and all(a.get("dry_run") for a in attempts)


def run_is_dry(run: Mapping[str, Any]) -> bool:
    """A dry run: recorded so when it started, or (older records) every attempt of every step was a dry one."""
    if isinstance(run.get("dry_run"), bool):
        return bool(run["dry_run"])
    steps = run.get("steps") or {}
    attempts = [a for s in steps.values() if isinstance(s, Mapping) for a in _attempts(s)]
    return bool(attempts) and all(a.get("dry_run") for a in attempts)


def step_status(step: Mapping[str, Any]) -> str:
    """A step's status as shown, with why it was skipped."""
    status = shown_status(str(step.get("status") or "?"), planned_only(step))
    reason = step.get("skip_reason")
    return f"{status}: {reason}" if status == "skipped" and reason else status


def shown_step(step: StepResult) -> str:
    """``step_status`` of a typed step record."""
    status = shown_status(step.status, step_planned(step))
    return f"{status}: {step.skip_reason}" if status == "skipped" and step.skip_reason else status


def step_order(step: Mapping[str, Any]) -> tuple[int, int, str]:
    """Sort key of a step record: the run's sequence when it began, else (older records) its start time."""
    seq = step.get("started_seq")
    if isinstance(seq, int) and not isinstance(seq, bool):
        return (0, seq, "")
    return (1, 0, str(step.get("started_at") or step.get("finished_at") or "9999"))


def in_order(steps: Mapping[str, Any] | Iterable[Any]) -> list[dict[str, Any]]:
    """Step records (a dict by id, or a list) as they happened, each with its ``id``."""
    if isinstance(steps, Mapping):
        items = [{"id": k, **v} for k, v in steps.items() if isinstance(v, Mapping)]
    else:
        items = [dict(s) for s in steps if isinstance(s, Mapping)]
    return sorted(items, key=step_order)


# Runs kept out of containment and automation figures, and why: a plan contained nothing, and neither did a
# run whose containment the policy refused (it ends at once: counted, it would be "resolved" in 0 s, unaided).
EXCLUDED: tuple[str, ...] = ("dry_run", "refused")


def refused_by_policy(run: Mapping[str, Any]) -> bool:
    steps = run.get("steps") or {}
    return any(
        isinstance(i, Mapping) and i.get("status") == "refused"
        for s in steps.values()
        if isinstance(s, Mapping)
        for i in s.get("instances") or []
    )


def excluded_as(run: Mapping[str, Any], *, contained: bool) -> str | None:
    """Why a run is left out of containment and automation figures (``EXCLUDED``), or None to count it."""
    if run_is_dry(run):
        return "dry_run"
    if refused_by_policy(run) and not contained:
        return "refused"
    return None


def human_decisions(run: Mapping[str, Any]) -> int:
    """Votes people cast on the run's approval requests, as the run recorded them."""
    steps = run.get("steps") or {}
    return sum(
        len(appr.get("approvers") or []) + len(appr.get("denials") or [])
        for s in steps.values()
        if isinstance(s, Mapping)
        for i in s.get("instances") or []
        if isinstance(i, Mapping) and isinstance(appr := i.get("approval"), Mapping)
    )


def run_excluded(run: Run, *, contained: bool) -> str | None:
    """``excluded_as`` of a typed run record."""
    if run_planned(run):
        return "dry_run"
    refused = any(i.status == "refused" for s in run.steps.values() for i in s.instances)
    return "refused" if refused and not contained else None


def run_votes(run: Run) -> int:
    """``human_decisions`` of a typed run record."""
    return sum(
        len(i.approval.approvers) + len(i.approval.denials)
        for s in run.steps.values()
        for i in s.instances
        if i.approval is not None
    )
