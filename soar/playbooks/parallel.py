"""A batch of one for_each step's admitted instances, executed at once (one thread each).

The runner decides the instances one after another (policy, quota, blast radius, approvals), then
hands the allowed ones here. Each thread owns its instance; the run document is changed, saved and
published only under ``run.lock`` (see ``execute``), so no update is lost. Two instances that lock
the same target are never in one batch. The step then goes on like after one attempt: the earliest
retry if any instance must retry (a busy target lock, a failed attempt with retries left), else on.
The run's lease stays ahead of the batch (see ``HeldRun``): each attempt extends it, none shortens it,
every save renews it. If it ran out anyway and another worker took the run, this holder's next save
fails and ``advance`` stands down instead of failing a run that is no longer its own.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from soar.playbooks.execute import execute
from soar.playbooks.locks import Locks
from soar.playbooks.model import Step
from soar.playbooks.state import HeldRun, Next
from soar.records import Instance, StepResult


def width(step: Step | None, default: int) -> int:
    """How many instances of the step may run at once: its ``max_parallel``, else the setting."""
    if step is None or step.for_each is None:
        return 1
    return step.max_parallel or default


def canary_width(width: int, breaker_threshold: int) -> int:
    """The first batch of a containment step: at most as wide as the breaker's failures-in-a-row."""
    return max(1, min(width, breaker_threshold))


def run_batch(run: HeldRun, step: Step | None, step_rec: StepResult, batch: list[Instance], locks: Locks) -> Next:
    """Execute every instance of ``batch`` at once; return when all have finished their attempt."""
    tried = [len(inst.attempts) for inst in batch]
    with ThreadPoolExecutor(max_workers=len(batch), thread_name_prefix=f"soar-{step_rec.id}") as pool:
        futures = [pool.submit(execute, run, step, step_rec, inst, locks) for inst in batch]
    errors = [exc for f in futures if (exc := f.exception()) is not None]
    if errors:  # an engine error in one thread (a lost store): the others finished and are recorded
        raise errors[0]
    outcomes = [f.result() for f in futures]
    retries = [nxt for nxt in outcomes if nxt.kind == "retry"]
    if not retries:
        return Next("continue")
    waiting_lock = any(
        nxt.kind == "retry" and len(inst.attempts) == before
        for nxt, inst, before in zip(outcomes, batch, tried, strict=True)
    )
    with run.lock:
        run.record.status = "waiting_lock" if waiting_lock else "running"
        run.save()
    return min(retries, key=lambda nxt: nxt.delay)
