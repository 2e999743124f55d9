"""The run machine: what happens next to a run, decided from its typed record and the facts the driver gathered.

Pure: no store, no lock, no clock, no action call. The driver (``soar.playbooks.runner``) reads the
playbook, the approval requests, the policy's counters and the time into facts, asks here for a
transition, and performs its effects (writes, locks, the action, audit, events) through its ports.

    decide(run, facts)            the run: expand the step at the cursor, work on it, move on, roll back, finish
    on_failure(run, step)         a failed or denied step under its on_failure
    end_of_section(run)           the run's end: succeeded, failed, rolled back (or its rollback incomplete)
    after_approval(approval, now) an instance waiting for people: go on, keep waiting, or end denied/expired
    after_interruption(...)       an instance whose worker was lost mid-attempt: again, or never
    after_attempt(...)            an attempt's result: done, retry after a backoff, or failed
    run_targets, in_rollback      what the policy is asked about a containment's blast radius, and in a rollback
    conclude(step)                a step's status once every instance is done
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from soar.playbooks.model import Step
from soar.policy import Decision
from soar.records import Approval, Instance, Run, StepRef, StepResult, Vote, instance_planned

MAX_INTERRUPTIONS = 3
ADMITTED = ("ready", "running", "waiting_approval")  # an instance let through and not yet finished
INSTANCE_DONE = ("succeeded", "failed", "refused", "denied", "expired", "interrupted", "skipped")
STEP_DONE = ("succeeded", "skipped", "failed", "denied")


@dataclass(frozen=True)
class Facts:
    """What the driver knows besides the run: the steps of the run's current phase (the playbook's steps, or its
    rollback plan), in order."""

    section: Sequence[StepRef]


# What a run does next (``decide``).


@dataclass(frozen=True)
class Expand:
    """Render the step at the cursor into its instances (or record it failed or skipped)."""

    entry: StepRef


@dataclass(frozen=True)
class RunStep:
    """Work on the step's instances that are not done."""

    entry: StepRef
    step: StepResult


@dataclass(frozen=True)
class NextStep:
    """Move the cursor past a finished step; ``unfinished``: list it among the run's failed or denied steps first."""

    step_id: str
    unfinished: Literal["failed", "denied"] | None = None


@dataclass(frozen=True)
class Rollback:
    """Start the rollback phase, saying why."""

    reason: str


@dataclass(frozen=True)
class Finish:
    """End the run with ``status`` (``error``: why it failed, set on the run first)."""

    status: Literal["succeeded", "failed", "rolled_back"]
    error: str | None = None


Transition = Expand | RunStep | NextStep | Rollback | Finish


def decide(run: Run, facts: Facts) -> Transition:
    """The run's next transition at its cursor."""
    if run.cursor >= len(facts.section):
        return end_of_section(run)
    entry = facts.section[run.cursor]
    step = run.steps.get(entry.id)
    if step is None:
        return Expand(entry)
    if step.status in ("failed", "denied"):
        return on_failure(run, step)
    if step.status in STEP_DONE:
        return NextStep(step.id)
    return RunStep(entry, step)


def on_failure(run: Run, step: StepResult) -> NextStep | Rollback | Finish:
    """A failed or denied step under its ``on_failure``.

    Under ``continue`` (and anywhere in the rollback phase) a denied step is listed in ``denied_steps`` (the run
    can still succeed: the on-call decided, nothing broke), a failed one in ``failed_steps`` (the run ends failed).
    """
    denied = step.status == "denied"
    if run.phase == "rollback" or step.on_failure == "continue":
        return NextStep(step.id, "denied" if denied else "failed")
    why = f"step {step.id} {step.error}" if denied else f"step {step.id} failed: {step.error}"
    if step.on_failure == "abort":
        return Finish("failed", why)
    return Rollback(why)


def end_of_section(run: Run) -> Finish:
    """How a run ends once its cursor is past its phase's last step."""
    failed = run.failed_steps or []
    if run.phase == "rollback":
        planned = {e.id for e in run.rollback.steps}
        failed = [sid for sid in failed if sid in planned]
        if failed:
            return Finish("failed", f"rollback incomplete: {', '.join(failed)} failed")
        return Finish("rolled_back")
    if failed:
        return Finish("failed", f"steps failed: {', '.join(failed)}")
    return Finish("succeeded")


# What an instance does next.


@dataclass(frozen=True)
class Go:
    """The instance is ready: execute an attempt."""


@dataclass(frozen=True)
class Wait:
    """Pause the run ``delay`` seconds (for people to decide, or a backoff to pass)."""

    delay: float


@dataclass(frozen=True)
class Settle:
    """The instance ends without (another) attempt, with ``status`` and ``error``."""

    status: Literal["failed", "denied", "expired", "interrupted"]
    error: str


@dataclass(frozen=True)
class Retry:
    """The attempt failed with retries left: again after ``after`` seconds."""

    after: float


@dataclass(frozen=True)
class Done:
    """The attempt is the instance's outcome: ``succeeded`` or ``failed``."""

    status: Literal["succeeded", "failed"]


def after_approval(approval: Approval | None, now: float) -> Go | Wait | Settle:
    """An instance waiting for its approval request (``None``: the request is gone). An expired request is
    expired in the store by the driver before it asks (so ``status`` says so)."""
    if approval is None:
        return Settle("failed", "approval record missing")
    if approval.status == "pending":
        return Wait(max(0.0, approval.expires_at - now))
    if approval.status == "approved":
        return Go()
    if approval.status == "denied":
        return Settle("denied", "denied by " + ", ".join(v.who for v in approval.denials))
    return Settle("expired", "approval expired")


def after_interruption(inst: Instance, *, idempotent: bool) -> Go | Settle:
    """An instance whose previous holder died mid-attempt (``interruptions`` counts this one): an idempotent action
    is attempted again, a few times at most; a non-idempotent one is never repeated blindly."""
    if idempotent and inst.interruptions <= MAX_INTERRUPTIONS:
        return Go()
    why = "not idempotent" if not idempotent else "interrupted too often"
    return Settle("interrupted", f"worker lost mid-step; {why}, so it is not repeated")


def after_attempt(step: Step | None, n: int, *, ok: bool, refused: bool) -> Done | Retry:
    """Attempt ``n``'s result under the step's retry policy; a refusal by the action itself is never retried."""
    if ok:
        return Done("succeeded")
    if step is not None and n <= step.retry.count and not refused:
        return Retry(step.retry.backoff * (2 ** (n - 1)))
    return Done("failed")


def backoff_left(step: Step | None, inst: Instance, now: float) -> float:
    """Seconds before a failed attempt may be retried (its backoff, counted from when it finished)."""
    last = inst.last_attempt
    if step is None or last is None or last.status != "failed" or not last.finished_at:
        return 0.0
    backoff = step.retry.backoff * 2.0 ** (last.n - 1)
    finished = datetime.fromisoformat(last.finished_at).timestamp()
    return max(0.0, finished + backoff - now)


def admitted(step: StepResult, inst: Instance) -> set[str]:
    """Targets of the step's other instances admitted but not yet finished (a parallel batch, an approval
    pending): the blast radius counts them, so a wide for_each cannot pass the limit before any ran."""
    return {
        key for other in step.instances if other is not inst and other.status in ADMITTED for key in other.target_keys
    }


def run_targets(run: Run, step: StepResult, inst: Instance, *, gated: bool, dry_run: bool) -> int:
    """What the blast radius counts for a containment instance: the run's contained targets, the step's other
    instances let through (unless the run only plans: a planned containment contains nothing), and its own."""
    if not gated:
        return len(set(run.contained_targets))
    contained = set(run.contained_targets) | inst.target_keys
    if not dry_run:
        contained |= admitted(step, inst)
    return len(contained)


def in_rollback(decision: Decision) -> Decision:
    """The policy in a rollback phase: undoing an allowed step needs no approval; a refusal still stands."""
    return decision if decision.outcome == "refuse" else Decision("allow", ("rollback of an allowed step",))


def conclude(step: StepResult) -> None:
    """A step's status, error and mode from its instances, once every one of them is done."""
    instances = step.instances
    bad = sorted({i.status for i in instances} - {"succeeded", "skipped"})
    # A denial is a decision, not a fault: the step is ``denied`` (naming who) and on_failure says what follows.
    step.status = ("denied" if bad == ["denied"] else "failed") if bad else "succeeded"
    if bad == ["denied"]:
        step.denied_by = [v.brief() for v in _denials(instances)]
    if bad:
        step.error = "; ".join(
            (i.error or "denied")
            if bad == ["denied"] and len(instances) == 1
            else f"{i.key}: {i.status}: {i.error or ''}".rstrip(": ")
            for i in instances
            if i.status not in ("succeeded", "skipped")
        )
    attempted = [i for i in instances if i.attempts]
    if attempted:  # what the step did is what its attempts did (the setting can force a dry run mid-run)
        step.dry_run = all(instance_planned(i) for i in attempted)


def _denials(instances: Sequence[Instance]) -> list[Vote]:
    return [v for i in instances for v in (i.approval.denials if i.approval else [])]
