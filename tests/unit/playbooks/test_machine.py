"""The run machine without a store, a lock, an action or a clock: typed runs and facts in, transitions out."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from soar.playbooks import machine
from soar.playbooks.model import Step
from soar.policy import Decision
from soar.records import (
    Approval,
    ApprovalSnapshot,
    Attempt,
    Instance,
    PlaybookRef,
    RollbackPlan,
    Run,
    StepRef,
    StepResult,
    TargetRef,
    Vote,
)

SECTION = [StepRef("contain"), StepRef("note")]


def _run(*steps: StepResult, cursor: int = 0, **fields: Any) -> Run:
    return Run(
        id="run-1",
        playbook=PlaybookRef("contain"),
        alert_id="a-1",
        status="running",
        cursor=cursor,
        steps={s.id: s for s in steps},
        **fields,
    )


def _step(step_id: str = "contain", status: Any = "in_progress", **fields: Any) -> StepResult:
    return StepResult(id=step_id, status=status, **fields)


def _inst(key: str = "contain", status: Any = "succeeded", **fields: Any) -> Instance:
    return Instance(key=key, status=status, **fields)


def _approval(status: Any, *, denials: list[Vote] | None = None, expires_at: float = 100.0) -> Approval:
    return Approval(
        id="run-1.contain",
        run_id="run-1",
        step="contain",
        step_id="contain",
        status=status,
        expires_at=expires_at,
        denials=denials or [],
    )


def _pb_step(**fields: Any) -> Step:
    return Step.model_validate({"id": "contain", "uses": "testkit.contain", **fields})


def test_a_step_not_yet_reached_is_expanded_then_worked_on_then_passed() -> None:
    assert machine.decide(_run(), machine.Facts(SECTION)) == machine.Expand(StepRef("contain"))
    working = _step()
    assert machine.decide(_run(working), machine.Facts(SECTION)) == machine.RunStep(StepRef("contain"), working)
    for done in ("succeeded", "skipped"):
        assert machine.decide(_run(_step(status=done)), machine.Facts(SECTION)) == machine.NextStep("contain")
    assert machine.decide(_run(_step(status="succeeded"), cursor=1), machine.Facts(SECTION)) == machine.Expand(
        StepRef("note")
    )


@pytest.mark.parametrize(
    ("status", "on_failure", "phase", "expected"),
    [
        ("failed", "continue", "steps", machine.NextStep("contain", "failed")),
        ("denied", "continue", "steps", machine.NextStep("contain", "denied")),
        ("failed", "abort", "steps", machine.Finish("failed", "step contain failed: the host refused")),
        ("denied", "abort", "steps", machine.Finish("failed", "step contain the host refused")),
        ("failed", "rollback", "steps", machine.Rollback("step contain failed: the host refused")),
        ("failed", "abort", "rollback", machine.NextStep("contain", "failed")),  # a rollback goes on regardless
    ],
)
def test_on_failure_decides_what_a_failed_or_denied_step_leads_to(
    status: Any, on_failure: Any, phase: Any, expected: machine.Transition
) -> None:
    step = _step(status=status, on_failure=on_failure, error="the host refused")
    assert machine.decide(_run(step, phase=phase), machine.Facts(SECTION)) == expected


def test_the_end_of_a_section_finishes_the_run_by_what_failed() -> None:
    end = machine.Facts(SECTION)
    assert machine.decide(_run(cursor=2), end) == machine.Finish("succeeded")
    assert machine.decide(_run(cursor=2, failed_steps=["contain"]), end) == machine.Finish(
        "failed", "steps failed: contain"
    )
    plan = RollbackPlan("asked", [StepRef("revert_contain", explicit=False, uses="testkit.release")])
    rolling = {"phase": "rollback", "rollback": plan}
    assert machine.decide(_run(cursor=1, **rolling), machine.Facts(plan.steps)) == machine.Finish("rolled_back")
    # a step that failed before the rollback is not the rollback's failure; one of the plan's is
    assert machine.end_of_section(_run(cursor=1, failed_steps=["contain"], **rolling)) == machine.Finish("rolled_back")
    assert machine.end_of_section(_run(cursor=1, failed_steps=["revert_contain"], **rolling)) == machine.Finish(
        "failed", "rollback incomplete: revert_contain failed"
    )


def test_an_instance_waiting_for_people_goes_on_waits_or_ends_as_they_decided() -> None:
    assert machine.after_approval(None, 0.0) == machine.Settle("failed", "approval record missing")
    assert machine.after_approval(_approval("pending", expires_at=100.0), 40.0) == machine.Wait(60.0)
    assert machine.after_approval(_approval("pending", expires_at=100.0), 140.0) == machine.Wait(0.0)
    assert machine.after_approval(_approval("approved"), 0.0) == machine.Go()
    bob = Vote("bob", role="approver", via="slack", slack_user="UBOB")
    assert machine.after_approval(_approval("denied", denials=[bob]), 0.0) == machine.Settle(
        "denied", "denied by bob (Slack UBOB)"
    )
    assert machine.after_approval(_approval("expired"), 0.0) == machine.Settle("expired", "approval expired")


def test_a_lost_attempt_is_repeated_only_when_idempotent_and_not_too_often() -> None:
    assert machine.after_interruption(_inst(status="running", interruptions=1), idempotent=True) == machine.Go()
    assert machine.after_interruption(_inst(interruptions=machine.MAX_INTERRUPTIONS), idempotent=True) == machine.Go()
    too_often = machine.after_interruption(_inst(interruptions=machine.MAX_INTERRUPTIONS + 1), idempotent=True)
    assert too_often == machine.Settle(
        "interrupted", "worker lost mid-step; interrupted too often, so it is not repeated"
    )
    never = machine.after_interruption(_inst(interruptions=1), idempotent=False)
    assert isinstance(never, machine.Settle) and "not idempotent" in never.error


def test_an_attempt_is_retried_with_a_doubling_backoff_unless_refused_or_out_of_retries() -> None:
    step = _pb_step(retry={"count": 2, "backoff": 1.5})
    assert machine.after_attempt(step, 1, ok=True, refused=False) == machine.Done("succeeded")
    assert machine.after_attempt(step, 1, ok=False, refused=False) == machine.Retry(1.5)
    assert machine.after_attempt(step, 2, ok=False, refused=False) == machine.Retry(3.0)
    assert machine.after_attempt(step, 3, ok=False, refused=False) == machine.Done("failed")
    assert machine.after_attempt(step, 1, ok=False, refused=True) == machine.Done("failed")
    assert machine.after_attempt(None, 1, ok=False, refused=False) == machine.Done("failed")  # a derived revert


def test_the_backoff_left_counts_from_when_the_failed_attempt_finished() -> None:
    step = _pb_step(retry={"count": 3, "backoff": 10})
    finished = datetime(2026, 12, 6, 20, 0, 0, tzinfo=UTC)
    failed = Attempt(2, "failed", finished_at=finished.isoformat().replace("+00:00", "Z"))
    inst = _inst(status="ready", attempts=[failed])
    assert machine.backoff_left(step, inst, finished.timestamp() + 5) == 15.0  # 10 * 2 after the second attempt
    assert machine.backoff_left(step, inst, finished.timestamp() + 60) == 0.0
    assert machine.backoff_left(None, inst, 0.0) == 0.0
    assert machine.backoff_left(step, _inst(status="ready"), 0.0) == 0.0  # never attempted
    assert machine.backoff_left(step, _inst(attempts=[Attempt(1, "succeeded", finished_at="x")]), 0.0) == 0.0


def test_the_blast_radius_counts_the_other_instances_let_through() -> None:
    def target(host: str) -> TargetRef:
        return TargetRef("host", host, f"host:{host}")

    me = _inst("c[0]", "pending", targets=[target("web1")])
    step = _step(
        instances=[
            me,
            _inst("c[1]", "waiting_approval", targets=[target("web2")]),
            _inst("c[2]", "running", targets=[target("web3")]),
            _inst("c[3]", "succeeded", targets=[target("web4")]),  # done: counted as contained, not here
            _inst("c[4]", "pending", targets=[target("web5")]),  # not let through yet
        ]
    )
    assert machine.admitted(step, me) == {"host:web2", "host:web3"}


def test_a_step_concludes_from_its_instances() -> None:
    ok = _step(instances=[_inst(), _inst("c[1]", "skipped")])
    machine.conclude(ok)
    assert (ok.status, ok.error, ok.denied_by) == ("succeeded", None, None)

    bob = Vote("bob", role="approver", via="cli", at="t1", attributes={"env": ["prod"]})
    denied = _inst(status="denied", error="denied by bob", approval=ApprovalSnapshot("denied", denials=[bob]))
    one = _step(instances=[denied])
    machine.conclude(one)
    assert (one.status, one.error) == ("denied", "denied by bob")
    assert [v.to_doc() for v in one.denied_by or []] == [
        {"approver": "bob", "role": "approver", "via": "cli", "at": "t1"}
    ]

    mixed = _step(instances=[_inst("c[0]", "failed", error="boom"), _inst("c[1]", "refused", error="protected")])
    machine.conclude(mixed)
    assert (mixed.status, mixed.error) == ("failed", "c[0]: failed: boom; c[1]: refused: protected")


def test_what_a_step_did_is_what_its_attempts_did() -> None:
    planned = _step(instances=[_inst(attempts=[Attempt(1, "succeeded", dry_run=True)])], dry_run=False)
    machine.conclude(planned)
    assert planned.dry_run is True  # the setting forced a dry run mid-run: the step touched nothing
    real = _step(instances=[_inst(attempts=[Attempt(1, "succeeded", dry_run=False)])], dry_run=True)
    machine.conclude(real)
    assert real.dry_run is False
    untouched = _step(instances=[_inst("c[0]", "refused")], dry_run=True)
    machine.conclude(untouched)
    assert untouched.dry_run is True  # nothing was attempted: the step keeps the run's mode


def test_the_blast_radius_asked_of_the_policy_counts_what_the_run_holds_and_lets_through() -> None:
    def inst(key: str, status: Any, host: str) -> Instance:
        return _inst(key, status, targets=[TargetRef("host", host, f"host:{host}")])

    me = inst("c[0]", "pending", "web1")
    step = _step(instances=[me, inst("c[1]", "ready", "web2"), inst("c[2]", "pending", "web3")])
    run = _run(step, contained_targets=["host:web0"])
    assert machine.run_targets(run, step, me, gated=True, dry_run=False) == 3  # web0 held, web2 let through, web1
    assert machine.run_targets(run, step, me, gated=True, dry_run=True) == 2  # a planned web2 contains nothing
    assert machine.run_targets(run, step, me, gated=False, dry_run=False) == 1  # a notification adds no target


def test_a_rollback_needs_no_approval_but_a_refusal_still_stands() -> None:
    asked = machine.in_rollback(Decision("approve", ("prod",), approvals=2, roles=("approver",)))
    assert (asked.outcome, asked.reasons) == ("allow", ("rollback of an allowed step",))
    refused = Decision("refuse", ("protected host bastion-1",))
    assert machine.in_rollback(refused) is refused
