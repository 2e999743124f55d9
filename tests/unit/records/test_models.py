"""Typed records: every stored kind round-trips, reads its legacy documents, and names what is wrong."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from soar.errors import RecordError
from soar.records import (
    VERSION_FIELD,
    AlertState,
    Approval,
    ApprovalNotice,
    ChannelState,
    Message,
    Run,
    StepNotice,
    Thread,
    instance_planned,
    run_planned,
    step_planned,
)


def _attempt(n: int = 1, **kw: Any) -> dict[str, Any]:
    return {
        "n": n,
        "status": "succeeded",
        "dry_run": False,
        "started_at": "2026-12-06T16:17:00.723Z",
        "started_seq": 3,
        "worker": "w1",
        "finished_at": "2026-12-06T16:17:00.730Z",
        "duration_ms": 4.13,
        "exit_status": 0,
        "finished_seq": 4,
        "stdout": "ok",
        "stderr": "",
        "error": None,
        **kw,
    }


def _instance(**kw: Any) -> dict[str, Any]:
    return {
        "key": "isolate",
        "params": {"host": "web-01"},
        "targets": [{"key": "host:web-01", "kind": "host", "name": "web-01"}],
        "item": None,
        "_params": {"host": "web-01"},
        "dry_run": False,
        "status": "succeeded",
        "decision": {"outcome": "approve", "approvals": 1, "roles": ["admin"], "reasons": ["prod"], "timeout": 1800.0},
        "approval_id": "run-1.isolate",
        "quota": ["global-2026120616-000001"],
        "attempts": [_attempt()],
        "interruptions": 0,
        "result": {"ok": True, "verified": True},
        "error": None,
        "approval": {
            "status": "approved",
            "approvers": [{"approver": "alice", "role": "admin", "via": "cli", "at": "t", "attributes": {}}],
            "denials": [],
            "required": 1,
        },
        **kw,
    }


def _step(**kw: Any) -> dict[str, Any]:
    return {
        "id": "isolate",
        "uses": "hosts.isolate_host",
        "phase": "steps",
        "for_each": False,
        "on_failure": "continue",
        "status": "succeeded",
        "instances": [_instance()],
        "error": None,
        "dry_run": False,
        "started_at": "2026-12-06T16:16:15.742Z",
        "started_seq": 1,
        "finished_at": "2026-12-06T16:17:00.733Z",
        "finished_seq": 5,
        **kw,
    }


def _run(**kw: Any) -> dict[str, Any]:
    """A run as the engine writes it (records.new_run, engine.start_run, runner._expand, execute)."""
    return {
        "id": "run-1",
        "playbook": {
            "name": "reverse-shell",
            "path": "playbooks/reverse-shell.yml",
            "version_hash": "60d0",
            "text": "x",
        },
        "alert_id": "a1",
        "rule_id": "r1",
        "alert": {"id": "a1", "rule": {"id": "r1"}},
        "origin": "alert",
        "requested_by": "automation:scheduler",
        "inputs": {},
        "status": "succeeded",
        "phase": "steps",
        "cursor": 1,
        "steps": {
            "isolate": _step(),
            "notify": _step(id="notify", uses="notify.slack", status="skipped", instances=[], skip_reason="x"),
        },
        "rollback": {"reason": None, "steps": []},
        "contained_targets": ["host:web-01"],
        "lease": None,
        "error": None,
        "outputs": {"isolated": "succeeded"},
        "created_at": "2026-12-06T16:16:15.737Z",
        "updated_at": "2026-12-06T16:17:00.753Z",
        "finished_at": "2026-12-06T16:17:00.753Z",
        "dry_run": False,
        "seq": 14,
        "event_seq": 1796573820754516411,
        "finished_seq": 14,
        "denied_steps": [],
        **kw,
    }


def _approval(**kw: Any) -> dict[str, Any]:
    return {
        "id": "run-1.isolate[web-01]",
        "run_id": "run-1",
        "step": "isolate[web-01]",
        "step_id": "isolate",
        "required": 2,
        "roles": ["admin", "approver"],
        "reasons": ["prod"],
        "status": "pending",
        "approvers": [
            {"approver": "alice", "role": "admin", "via": "slack", "at": "t", "attributes": {}, "slack_user": "U1"}
        ],
        "denials": [],
        "requested_at": "2026-12-06T16:16:15.800Z",
        "expires_at": 1796573820.5,
        "expires_at_iso": "2026-12-06T16:46:15Z",
        "params": {"host": "web-01"},
        "playbook": "reverse-shell",
        "dry_run": False,
        "run_seq": 2,
        **kw,
    }


def _message(**kw: Any) -> dict[str, Any]:
    return {
        **Message(key="card:a1", op="post", kind="card", channel="#soc", text="hi").to_doc(),
        **kw,
    }


def _thread(**kw: Any) -> dict[str, Any]:
    return {
        "id": "a1",
        "channel": "#soc",
        "card": "card:a1",
        "summary": {"id": "a1", "title": "SSH brute force"},
        "status": "in progress",
        "status_seq": 3,
        "planned": None,
        "runs": {
            "run-1": {
                "playbook": "pb",
                "status": "running",
                "dry_run": False,
                "seq": 3,
                "steps": {"block": {"uses": "hosts.block_ip", "status": "succeeded", "seq": 2, "summary": "done"}},
            }
        },
        "created_at": "2026-12-06T16:16:15.737Z",
        "revision": 4,
        **kw,
    }


def _channel(**kw: Any) -> dict[str, Any]:
    return {"channel": "#soc", "lease_owner": "w1", "lease_until": 12.5, "last_sent_at": 10.0, "blocked_until": 0, **kw}


def _alert(**kw: Any) -> dict[str, Any]:
    return {
        "id": "a1",
        "@timestamp": "2026-12-06T16:16:15.000Z",
        "rule": {"id": "r1", "title": "SSH brute force", "level": "high", "tags": []},
        "severity": "high",
        "status": "acknowledged",
        "acknowledged_at": "2026-12-06T16:17:00.000Z",
        "acknowledged_by": "rory",
        "verdict": None,
        "dispatched": True,
        "host": {"name": "web-1"},
        **kw,
    }


MODELS: list[tuple[type[Any], str, Any]] = [
    (AlertState, "alerts", _alert),
    (Run, "runs", _run),
    (Approval, "approvals", _approval),
    (Message, "outbox", _message),
    (Thread, "notify_threads", _thread),
    (ChannelState, "notify_channels", _channel),
]
IDS = [kind for _, kind, _ in MODELS]


@pytest.mark.parametrize(("model", "kind", "make"), MODELS, ids=IDS)
def test_a_document_round_trips_with_its_schema_version(model: Any, kind: str, make: Any) -> None:
    doc = make()
    written = model.from_doc(copy.deepcopy(doc)).to_doc()
    assert written[VERSION_FIELD] == 1
    assert {k: v for k, v in written.items() if k != VERSION_FIELD} == {
        k: v for k, v in doc.items() if k != VERSION_FIELD
    }
    assert model.from_doc(written).to_doc() == written


@pytest.mark.parametrize(("model", "kind", "make"), MODELS, ids=IDS)
def test_a_document_without_a_version_is_version_1(model: Any, kind: str, make: Any) -> None:
    doc = make()
    doc.pop(VERSION_FIELD, None)
    assert model.from_doc(doc).to_doc()[VERSION_FIELD] == 1


@pytest.mark.parametrize(("model", "kind", "make"), MODELS, ids=IDS)
def test_a_newer_schema_version_is_refused_naming_the_record(model: Any, kind: str, make: Any) -> None:
    doc = {**make(), VERSION_FIELD: 99}
    with pytest.raises(RecordError, match=rf"^{kind}/.+: field schema_version: version 99 was written by a newer soar"):
        model.from_doc(doc)


@pytest.mark.parametrize(
    ("model", "make", "change", "message"),
    [
        (Run, _run, {"status": "exploded"}, r"runs/run-1: field status: expected one of .*got 'exploded'"),
        (Run, _run, {"cursor": "3"}, r"runs/run-1: field cursor: expected an integer, got str"),
        (Run, _run, {"dry_run": "yes"}, r"runs/run-1: field dry_run: expected true, false or null, got str"),
        (Run, _run, {"playbook": {"path": "x"}}, r"runs/run-1: field playbook.name: missing"),
        (Run, _run, {"lease": {"owner": "w", "until": "soon"}}, r"runs/run-1: field lease.until: expected a number"),
        (
            Run,
            _run,
            {"steps": {"isolate": _step(instances=[_instance(attempts=[_attempt(n=True)])])}},
            r"runs/run-1: field steps.isolate.instances\[0\].attempts\[0\].n: expected an integer, got bool",
        ),
        (
            Run,
            _run,
            {"steps": {"isolate": _step(instances=[_instance(status="lost")])}},
            r"runs/run-1: field steps.isolate.instances\[0\].status: expected one of",
        ),
        (Approval, _approval, {"expires_at": None}, r"approvals/run-1.isolate\[web-01\]: field expires_at: expected"),
        (Approval, _approval, {"approvers": [{"role": "admin"}]}, r"field approvers\[0\].approver: missing"),
        (Approval, _approval, {"step": None, "step_id": None}, r"field step: missing \(neither step nor step_id\)"),
        (Message, _message, {"op": "shout"}, r"outbox/card:a1: field op: expected one of"),
        (Message, _message, {"attempts": 1.5}, r"outbox/card:a1: field attempts: expected an integer, got float"),
        (Thread, _thread, {"runs": {"run-1": {"steps": []}}}, r"notify_threads/a1: field runs.run-1.steps: expected"),
        (Thread, _thread, {"channel": None}, r"notify_threads/a1: field channel: expected a string, got null"),
        (ChannelState, _channel, {"lease_until": [1]}, r"notify_channels/#soc: field lease_until: expected a number"),
        (AlertState, _alert, {"verdict": "maybe"}, r"alerts/a1: field verdict: expected one of"),
        (AlertState, _alert, {"dispatched": "yes"}, r"alerts/a1: field dispatched: expected true, false or null"),
    ],
)
def test_a_malformed_document_names_kind_id_and_field(
    model: Any, make: Any, change: dict[str, Any], message: str
) -> None:
    with pytest.raises(RecordError, match=message) as caught:
        model.from_doc({**make(), **change})
    assert caught.value.field


def test_the_id_comes_from_the_store_when_the_document_lacks_one() -> None:
    doc = _thread()
    del doc["id"]
    assert Thread.from_doc(doc, "a9").id == "a9"
    with pytest.raises(RecordError, match=r"^notify_threads/a9: field card: missing"):
        Thread.from_doc({"channel": "#x"}, "a9")


def test_fields_a_newer_minor_change_added_survive_a_round_trip() -> None:
    """A field this soar does not model is kept: an older worker never erases a newer one's data."""
    doc = _run(sla={"due": "soon"})
    doc["steps"]["isolate"]["instances"][0]["attempts"][0]["host_time"] = 3
    written = Run.from_doc(doc).to_doc()
    assert written["sla"] == {"due": "soon"}
    assert written["steps"]["isolate"]["instances"][0]["attempts"][0]["host_time"] == 3
    assert written["steps"]["isolate"]["instances"][0]["_params"] == {"host": "web-01"}


def test_a_run_reads_typed() -> None:
    run = Run.from_doc(_run(lease={"owner": "w1", "until": 99.5}))
    step = run.steps["isolate"]
    inst = step.instances[0]
    assert (run.status, run.cursor, run.dry_run, run.seq, run.finished) == ("succeeded", 1, False, 14, True)
    assert run.lease is not None and run.lease.until == 99.5 and run.held_by_other("w2", now=50.0)
    assert not run.held_by_other("w1", now=50.0) and not run.held_by_other("w2", now=100.0)
    assert inst.attempts[0].n == 1 and inst.approval is not None and inst.approval.approvers[0].approver == "alice"
    assert run.steps["notify"].skip_reason == "x"


def test_legacy_runs_without_dry_run_stamps_are_dry_when_every_attempt_was() -> None:
    doc = _run()
    del doc["dry_run"]
    for step in doc["steps"].values():
        del step["dry_run"]
        for inst in step["instances"]:
            del inst["dry_run"]
            for attempt in inst["attempts"]:
                attempt["dry_run"] = True
    run = Run.from_doc(doc)
    assert run.dry_run is None and run_planned(run)
    assert step_planned(run.steps["isolate"]) and instance_planned(run.steps["isolate"].instances[0])
    assert not step_planned(run.steps["notify"])  # no attempts: nothing says it was planned
    assert "dry_run" not in run.to_doc()  # what was absent stays absent


def test_an_approval_names_its_instance_and_its_step_whichever_a_legacy_record_kept() -> None:
    a = Approval.from_doc(_approval())
    assert (a.step, a.step_id) == ("isolate[web-01]", "isolate") and a.names("isolate") and a.names("isolate[web-01]")
    assert a.approvers[0].who == "alice (Slack U1)" and not a.expired_by(now=0.0) and a.expired_by(now=2e9)
    only_step = Approval.from_doc({k: v for k, v in _approval().items() if k != "step_id"})
    assert only_step.step_id == "isolate"
    only_id = Approval.from_doc({**_approval(step=None), "step_id": "isolate"})
    assert only_id.step == "isolate"


def test_an_early_approval_with_one_list_of_decisions_reads_as_approvers_and_denials() -> None:
    doc = _approval(approvers=None, denials=None, requested_at=None, created_at="t0")
    doc["decisions"] = [
        {"decision": "approve", "approver": "alice", "role": "admin"},
        {"decision": "deny", "approver": "bob", "role": "approver"},
    ]
    a = Approval.from_doc(doc)
    assert [v.approver for v in a.approvers] == ["alice"] and [v.approver for v in a.denials] == ["bob"]
    assert a.requested_at == "t0"


def test_event_notices_never_raise_and_read_the_older_spelling() -> None:
    n = ApprovalNotice.from_payload({"decision": "denied", "approvers": "nobody", "required": "x"})
    assert (n.status, n.approvers, n.required, n.final) == ("denied", [], 1, True)
    assert ApprovalNotice.from_payload(None).status is None and ApprovalNotice.from_payload(None).decision == "pending"
    partial = ApprovalNotice.from_payload({"status": "approved", "approvers": ["a"], "required": 2})
    assert not partial.final and partial.revision == 2
    s = StepNotice.from_payload({"id": "block", "dry_run": "yes", "attempt": True, "verified": False})
    assert (s.id, s.dry_run, s.attempt, s.verified) == ("block", None, None, False)
    assert StepNotice.from_payload("junk").id is None


def test_record_error_is_a_soar_error_with_its_parts() -> None:
    from soar.errors import SoarError

    with pytest.raises(RecordError) as caught:
        Run.from_doc(_run(status=None))
    err = caught.value
    assert isinstance(err, SoarError) and (err.kind, err.id, err.field) == ("runs", "run-1", "status")


def test_a_null_stored_in_an_optional_field_stays_a_null_and_does_not_change_equality() -> None:
    doc = _run(lease=None)
    doc["steps"]["isolate"]["skip_reason"] = None  # written when unset by an older engine
    run = Run.from_doc(doc)
    assert run.to_doc()["steps"]["isolate"]["skip_reason"] is None
    assert run == Run.from_doc(_run(lease=None))  # the nulls remembered are not part of the value


def test_the_public_surface_is_declared() -> None:
    import soar.records

    for name in soar.records.__all__:
        assert hasattr(soar.records, name)
    assert {"Run", "Approval", "Message", "Thread", "ChannelState", "StepNotice", "ApprovalNotice"} <= set(
        soar.records.__all__
    )


def test_triage_keeps_the_first_time_of_each_status_and_a_closed_alert_closed() -> None:
    state = AlertState.from_doc(_alert(status="open", acknowledged_at=None, acknowledged_by=None))
    assert state.triage("acknowledged", "rory", "t1")
    assert (state.status, state.acknowledged_by) == ("acknowledged", "rory")
    assert not state.triage("acknowledged", "alice", "t2") and state.acknowledged_at == "t1"
    assert state.triage("closed", "alice", "t3")
    assert (state.status, state.closed_at, state.closed_by) == ("closed", "t3", "alice")
    assert not state.triage("closed", "bob", "t4")
    assert state.triage("acknowledged", "bob", "t5") is False and state.status == "closed"
    unacked = AlertState.from_doc(_alert(status="open", acknowledged_at=None, acknowledged_by=None))
    assert unacked.triage("closed", "alice", "t6") and unacked.acknowledged_at == "t6"  # closing acknowledges too
    doc = unacked.to_doc()
    assert doc["rule"]["title"] == "SSH brute force" and doc["host"] == {"name": "web-1"}  # the alert, as written
