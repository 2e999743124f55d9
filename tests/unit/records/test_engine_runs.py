"""Run documents the engine wrote (``engine_runs.json``, one per kind of run) read back into the typed model and
write back identically: the engine keeps its runs as ``Run`` and saves ``to_doc()``, so the stored format is
exactly what ``from_doc`` reads, and nothing the engine writes is left to ``extra`` (unmodelled)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from soar.records import Attempt, Instance, Run, TargetRef, Vote
from soar.records._read import Reader

CASES: list[dict[str, Any]] = json.loads((Path(__file__).parent / "engine_runs.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("case", CASES, ids=[c["case"] for c in CASES])
def test_an_engine_run_round_trips_identically(case: dict[str, Any]) -> None:
    doc = case["run"]
    run = Run.from_doc(doc)
    assert json.dumps(run.to_doc(), sort_keys=True) == json.dumps(doc, sort_keys=True)
    assert Run.from_doc(run.to_doc()) == run


@pytest.mark.parametrize("case", CASES, ids=[c["case"] for c in CASES])
def test_the_model_knows_every_field_the_engine_writes(case: dict[str, Any]) -> None:
    run = Run.from_doc(case["run"])
    unmodelled = [("run", run.extra), ("rollback", run.rollback.extra)]
    unmodelled += [(f"rollback.steps.{e.id}", e.extra) for e in run.rollback.steps]
    for step in run.steps.values():
        unmodelled.append((f"steps.{step.id}", step.extra))
        for inst in step.instances:
            unmodelled.append((f"steps.{step.id}.{inst.key}", inst.extra))
            unmodelled += [(f"steps.{step.id}.{inst.key}.attempts[{a.n}]", a.extra) for a in inst.attempts]
            unmodelled += [(f"steps.{step.id}.{inst.key}.targets.{t.key}", t.extra) for t in inst.targets]
            for name, part in (("decision", inst.decision), ("result", inst.result)):
                unmodelled.append((f"steps.{step.id}.{inst.key}.{name}", part.extra if part is not None else {}))
    assert [(where, sorted(extra)) for where, extra in unmodelled if extra] == []


def test_the_cases_cover_what_the_engine_records() -> None:
    runs = [Run.from_doc(c["run"]) for c in CASES]
    instances = [i for r in runs for s in r.steps.values() for i in s.instances]
    assert {r.status for r in runs} >= {"succeeded", "failed", "rolled_back", "waiting_approval"}
    assert any(r.dry_run for r in runs) and any(r.denied_steps for r in runs)
    assert any(e.explicit for r in runs for e in r.rollback.steps)
    assert any(not e.explicit and e.params for r in runs for e in r.rollback.steps)
    assert any(s.skip_reason for r in runs for s in r.steps.values())
    assert {i.status for i in instances} >= {"succeeded", "failed", "refused", "denied", "waiting_approval"}
    assert any(i.approval is not None for i in instances) and any(len(i.attempts) > 1 for i in instances)
    assert all(i.call_params is not None for i in instances)
    assert all(
        isinstance(t, TargetRef) and t.key == f"{t.kind}:{t.name or t.value}" for i in instances for t in i.targets
    )
    assert {i.decision.outcome for i in instances if i.decision} >= {"allow", "approve", "refuse"}
    assert any(i.result is not None and i.result.ok for i in instances)
    assert any(i.result is not None and not i.result.ok and i.result.error for i in instances)
    votes = [v for i in instances if i.approval for v in (*i.approval.approvers, *i.approval.denials)]
    assert votes and all(isinstance(v, Vote) and v.approver for v in votes)
    denied = [v for r in runs for s in r.steps.values() for v in s.denied_by or []]
    assert denied and all("attributes" not in v.to_doc() for v in denied)


def test_parts_an_older_record_lacks_stay_absent_and_numbers_keep_their_type() -> None:
    """A vote without ``attributes`` (or a role), a result without ``verification``, a decision with an integer
    timeout: each is written back exactly as it was read."""
    vote = {"approver": "bob", "via": "slack", "at": None}
    inst = {
        "key": "isolate",
        "status": "denied",
        "targets": [{"kind": "host", "value": "web1", "key": "host:web1"}],
        "decision": {"outcome": "approve", "reasons": ["prod"], "approvals": 1, "roles": ["approver"], "timeout": 600},
        "result": {"ok": False, "error": "refused", "output": {}, "verified": None},
        "approval": {"status": "denied", "approvers": [], "denials": [vote], "required": 1},
    }
    read = Instance.read(Reader("runs", "run-1", inst))
    assert read.approval is not None and read.approval.denials[0].to_doc() == vote
    assert read.decision is not None and read.decision.to_doc()["timeout"] == 600
    assert read.targets[0].to_doc() == inst["targets"][0]  # type: ignore[index]
    assert read.result is not None and read.result.to_doc() == inst["result"] and read.result.verified is None
    denial = Vote("bob", role="approver", via="slack", at="t1", attributes={"env": ["prod"]}, slack_user="UBOB")
    assert denial.brief().to_doc() == {
        "approver": "bob",
        "role": "approver",
        "via": "slack",
        "at": "t1",
        "slack_user": "UBOB",
    }
    assert Vote("carol", via="cli").brief().to_doc() == {"approver": "carol", "via": "cli"}


def test_what_the_engine_clears_is_written_as_null_as_it_always_was() -> None:
    attempt = Attempt(1, "running", started_at="t0", started_seq=1, worker="w1")
    assert "exit_status" not in attempt.to_doc()  # the crash marker: the outcome is not known yet
    attempt.finish(
        "succeeded",
        finished_at="t1",
        finished_seq=2,
        duration_ms=1.5,
        exit_status=None,
        stdout="",
        stderr="",
        error=None,
    )
    assert {k: attempt.to_doc()[k] for k in ("status", "exit_status", "error")} == {
        "status": "succeeded",
        "exit_status": None,
        "error": None,
    }
    inst = Instance(key="contain[0]", status="ready", call_params={"host": "web-01"})
    assert "error" not in inst.to_doc() and inst.to_doc()["_params"] == {"host": "web-01"}
    inst.set_error(None)
    assert inst.to_doc()["error"] is None
    inst.set_error("the host refused")
    assert Instance.read(Reader("runs", "run-1", inst.to_doc())).error == "the host refused"
