"""The run engine end to end in the embedded mode (eager, SQLite store): real actions writing real files."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from soar.clock import FakeClock
from soar.config import Settings
from soar.playbooks import dispatch, engine
from soar.playbooks.approvals import NotAllowed, decide
from soar.playbooks.records import RUNS
from soar.playbooks.runtime import Runtime
from tests.playbook_kit import Content, alert
from tests.playbook_kit.testkit import calls

CONTAIN = """\
name: contain
trigger: {rules: [rule-contain], min_level: medium}
steps:
  - id: contain
    uses: testkit.contain
    with: {host: "{{ alert.host.name }}", note: "{{ alert.user.name }}"}
    on_failure: {on_failure}
  - id: note
    uses: testkit.note
    with: {text: "contained {{ alert.host.name }}: {{ steps.contain.status }}"}
outputs:
  state: "{{ steps.contain.status }}"
"""


def _start(settings: Settings, doc: dict[str, Any]) -> tuple[Runtime, list[str]]:
    rt = dispatch.runtime_for(settings)
    rt.store.create(engine.ALERTS, doc["id"], doc)
    started = engine.handle_alert(rt, doc["id"])
    for run_id in started:
        dispatch.kick(settings, run_id, runtime=rt)
    return rt, started


def _run(rt: Runtime, run_id: str) -> dict[str, Any]:
    rec = rt.store.get(RUNS, run_id)
    assert rec is not None
    return rec.doc


def test_alert_runs_playbook_once_and_records_everything(content: Content, pb_settings: Settings) -> None:
    content.playbook("contain", CONTAIN.replace("{on_failure}", "abort"))
    rt, started = _start(pb_settings, alert(host="dev1"))
    assert len(started) == 1
    run = _run(rt, started[0])
    assert run["status"] == "succeeded", run.get("error")
    step = run["steps"]["contain"]["instances"][0]
    assert step["params"] == {"host": "dev1", "note": "alice"}
    assert step["decision"]["outcome"] == "allow"
    assert step["attempts"][0]["status"] == "succeeded" and step["attempts"][0]["duration_ms"] >= 0
    assert run["steps"]["note"]["instances"][0]["params"]["text"] == "contained dev1: succeeded"
    assert run["outputs"] == {"state": "succeeded"}
    assert run["playbook"]["version_hash"] and run["alert"]["id"] == "alert-1"
    assert (content.state / "testkit" / "contained-dev1").exists()
    # a duplicate / redelivered alert starts nothing
    assert engine.handle_alert(rt, "alert-1") == []
    assert [c["action"] for c in calls(content.state)] == ["testkit.contain", "testkit.note"]
    actions = [r.doc["action"] for r in rt.store.find("audit", order_by="seq", limit=100)]
    assert "playbook.run_started" in actions and "playbook.run_finished" in actions


def test_retry_with_backoff_then_success(content: Content, pb_settings: Settings, clock: FakeClock) -> None:
    content.playbook(
        "flaky",
        """\
        name: flaky
        trigger: {rules: [rule-contain]}
        steps:
          - id: try
            uses: testkit.flaky
            with: {key: "k1", fail_times: 2}
            retry: {count: 2, backoff: 0.05}
        """,
    )
    rt, started = _start(pb_settings, alert())
    run = _run(rt, started[0])
    assert run["status"] == "succeeded"
    attempts = run["steps"]["try"]["instances"][0]["attempts"]
    assert [a["status"] for a in attempts] == ["failed", "failed", "succeeded"]
    assert attempts[0]["stderr"] == "boom" and attempts[0]["exit_status"] == 1
    assert clock.slept == [0.05, 0.1]  # the backoff, doubled: waited on the run's clock


def test_retries_exhausted_abort_records_failure(content: Content, pb_settings: Settings) -> None:
    content.playbook(
        "flaky",
        """\
        name: flaky
        trigger: {rules: [rule-contain]}
        steps:
          - id: try
            uses: testkit.flaky
            with: {key: "k2", fail_times: 5}
            retry: {count: 1, backoff: 0}
          - id: after
            uses: testkit.note
            with: {text: "never"}
        """,
    )
    rt, started = _start(pb_settings, alert())
    run = _run(rt, started[0])
    assert run["status"] == "failed"
    assert "step try failed" in run["error"]
    assert len(run["steps"]["try"]["instances"][0]["attempts"]) == 2
    # the step never reached is recorded as skipped, saying why (it was never attempted)
    after = run["steps"]["after"]
    assert after["status"] == "skipped" and after["instances"] == []
    assert after["skip_reason"].startswith("not run: the run stopped after step try failed")
    assert not [c for c in calls(content.state) if c["action"] == "testkit.note"]


def test_timeout_fails_the_step_and_continue_moves_on(content: Content, pb_settings: Settings) -> None:
    content.playbook(
        "slow",
        """\
        name: slow
        trigger: {rules: [rule-contain]}
        steps:
          - id: slow
            uses: testkit.sleep
            with: {seconds: 3}
            timeout: 0.3
            on_failure: continue
          - id: after
            uses: testkit.note
            with: {text: "slow was {{ steps.slow.status }}"}
        """,
    )
    rt, started = _start(pb_settings, alert())
    run = _run(rt, started[0])
    # the 3 s action was cut short by the timeout (its own attempt, not the machine's load, is measured)
    assert run["steps"]["slow"]["instances"][0]["attempts"][0]["duration_ms"] < 3000
    assert run["steps"]["slow"]["instances"][0]["error"] == "timed out after 0.3s"
    assert run["steps"]["after"]["instances"][0]["params"]["text"] == "slow was failed"
    assert run["status"] == "failed" and run["failed_steps"] == ["slow"]  # never "success" with a failed step


def test_rollback_reverts_completed_containment_automatically(content: Content, pb_settings: Settings) -> None:
    content.playbook(
        "rb",
        """\
        name: rb
        trigger: {rules: [rule-contain]}
        steps:
          - id: contain
            uses: testkit.contain
            with: {host: "{{ alert.host.name }}"}
          - id: broken
            uses: testkit.fail
            with: {host: "dev2"}
            on_failure: rollback
        """,
    )
    rt, started = _start(pb_settings, alert(host="dev1"))
    run = _run(rt, started[0])
    assert run["status"] == "rolled_back", run.get("error")
    assert run["rollback"]["reason"].startswith("step broken failed")
    assert [s["uses"] for s in run["rollback"]["steps"]] == ["testkit.release"]
    assert [c["action"] for c in calls(content.state)] == ["testkit.contain", "testkit.fail", "testkit.release"]
    assert not (content.state / "testkit" / "contained-dev1").exists()


def test_explicit_rollback_steps(content: Content, pb_settings: Settings) -> None:
    content.playbook(
        "rb2",
        """\
        name: rb2
        trigger: {rules: [rule-contain]}
        steps:
          - id: broken
            uses: testkit.fail
            with: {host: "dev2"}
            on_failure: rollback
        rollback:
          - id: tell
            uses: testkit.note
            with: {text: "rolled back {{ alert.host.name }}"}
        """,
    )
    rt, started = _start(pb_settings, alert(host="dev1"))
    run = _run(rt, started[0])
    assert run["status"] == "rolled_back"
    assert [c.get("text") for c in calls(content.state) if c["action"] == "testkit.note"] == ["rolled back dev1"]


def test_prod_containment_waits_for_approval_then_runs(content: Content, pb_settings: Settings) -> None:
    content.playbook("contain", CONTAIN.replace("{on_failure}", "abort"))
    rt, started = _start(pb_settings, alert(host="web1"))
    run_id = started[0]
    run = _run(rt, run_id)
    assert run["status"] == "waiting_approval"
    inst = run["steps"]["contain"]["instances"][0]
    assert inst["decision"]["outcome"] == "approve" and "prod-containment" in inst["decision"]["reasons"][0]
    assert calls(content.state) == []  # nothing ran
    with pytest.raises(NotAllowed):
        decide(pb_settings, rt.store, run_id, "contain", approver="eve", role="viewer", decision="approve", via="cli")
    out = decide(
        pb_settings, rt.store, run_id, "contain", approver="bob", role="approver", decision="approve", via="cli"
    )
    assert out.status == "approved" and out.changed
    run = _run(rt, run_id)
    assert run["status"] == "succeeded"
    assert run["steps"]["contain"]["instances"][0]["approval"]["approvers"][0]["approver"] == "bob"
    again = decide(
        pb_settings, rt.store, run_id, "contain", approver="bob", role="approver", decision="approve", via="api"
    )
    assert not again.changed and again.status == "approved"
    assert [c["action"] for c in calls(content.state)] == ["testkit.contain", "testkit.note"]


def test_two_of_m_approvals_and_same_person_counts_once(content: Content, pb_settings: Settings) -> None:
    content.playbook("contain", CONTAIN.replace("{on_failure}", "abort"))
    rt, started = _start(pb_settings, alert(host="web2"))  # criticality=high: 2 approvals
    run_id = started[0]
    first = decide(
        pb_settings, rt.store, run_id, "contain", approver="bob", role="approver", decision="approve", via="cli"
    )
    assert first.status == "pending" and first.required == 2
    twice = decide(
        pb_settings, rt.store, run_id, "contain", approver="bob", role="admin", decision="approve", via="slack"
    )
    assert not twice.changed and twice.status == "pending"
    assert _run(rt, run_id)["status"] == "waiting_approval" and calls(content.state) == []
    second = decide(
        pb_settings, rt.store, run_id, "contain", approver="carol", role="admin", decision="approve", via="api"
    )
    assert second.status == "approved"
    assert _run(rt, run_id)["status"] == "succeeded"


def test_a_denial_under_continue_goes_on_and_names_the_denier(content: Content, pb_settings: Settings) -> None:
    content.playbook("contain", CONTAIN.replace("{on_failure}", "continue"))
    rt, started = _start(pb_settings, alert(host="web1"))
    out = decide(
        pb_settings,
        rt.store,
        started[0],
        "contain",
        approver="bob",
        role="approver",
        decision="deny",
        via="slack",
        slack_user="UBOB",
    )
    assert out.status == "denied" and out.message == "denied by bob (Slack UBOB)"
    run = _run(rt, started[0])
    step = run["steps"]["contain"]
    assert step["status"] == "denied" and step["error"] == "denied by bob (Slack UBOB)"
    assert [(d["approver"], d["role"], d["via"], d["slack_user"]) for d in step["denied_by"]] == [
        ("bob", "approver", "slack", "UBOB")
    ]
    assert step["instances"][0]["status"] == "denied"
    # the run went on: the next step ran and saw the denial; a decision is not a failure
    assert run["steps"]["note"]["instances"][0]["params"]["text"] == "contained web1: denied"
    assert run["status"] == "succeeded" and run["denied_steps"] == ["contain"] and not run.get("failed_steps")
    assert run["outputs"] == {"state": "denied"}
    assert [c["action"] for c in calls(content.state)] == ["testkit.note"]
    audit = [r.doc for r in rt.store.find("audit", {"action": "approval.deny"}, limit=10)]
    assert [(a["details"]["approver"], a["details"]["slack_user"]) for a in audit] == [("bob", "UBOB")]


@pytest.mark.parametrize(("on_failure", "status"), [("abort", "failed"), ("rollback", "rolled_back")])
def test_a_denial_under_abort_or_rollback_follows_it(
    content: Content, pb_settings: Settings, on_failure: str, status: str
) -> None:
    content.playbook("contain", CONTAIN.replace("{on_failure}", on_failure))
    rt, started = _start(pb_settings, alert(host="web1"))
    decide(pb_settings, rt.store, started[0], "contain", approver="bob", role="approver", decision="deny", via="cli")
    run = _run(rt, started[0])
    assert run["status"] == status and run["steps"]["contain"]["status"] == "denied"
    why = run["error"] if on_failure == "abort" else run["rollback"]["reason"]
    assert why == "step contain denied by bob"
    # nothing after the denied step ran: it is recorded skipped, saying why
    note = run["steps"]["note"]
    assert note["status"] == "skipped" and note["instances"] == []
    reasons = {
        "abort": "not run: the run stopped after step contain denied by bob",
        "rollback": "not run: the run was rolled back (step contain denied by bob)",
    }
    assert note["skip_reason"] == reasons[on_failure]
    assert calls(content.state) == []  # nothing was contained, so nothing to revert


def test_approval_expires(content: Content, pb_settings: Settings, clock: FakeClock) -> None:
    content.playbook(
        "contain",
        CONTAIN.replace("{on_failure}", "abort").replace(
            "    on_failure: abort", "    on_failure: abort\n    requires_approval: {approvals: 1, timeout: 0.2}"
        ),
    )
    rt, started = _start(pb_settings, alert(host="dev1"))
    assert _run(rt, started[0])["status"] == "waiting_approval"
    assert started[0] not in engine.stale_runs(rt)  # people still have 0.2 s
    clock.advance(0.3)
    assert started[0] in engine.stale_runs(rt)
    dispatch.kick(pb_settings, started[0], runtime=rt)
    run = _run(rt, started[0])
    assert run["status"] == "failed"
    assert run["steps"]["contain"]["instances"][0]["status"] == "expired"
    late = decide(
        pb_settings, rt.store, started[0], "contain", approver="bob", role="approver", decision="approve", via="cli"
    )
    assert late.status == "expired" and not late.changed
    assert calls(content.state) == []


def test_protected_targets_are_refused_and_recorded(content: Content, pb_settings: Settings) -> None:
    content.playbook("contain", CONTAIN.replace("{on_failure}", "continue"))
    rt, started = _start(pb_settings, alert("a-bastion", host="bastion-1"))
    _, started2 = _start(pb_settings, alert("a-dc", host="dc-1"))
    for run_id, why in ((started[0], "matches 'bastion*'"), (started2[0], "address in 10.0.9.0/24")):
        inst = _run(rt, run_id)["steps"]["contain"]["instances"][0]
        assert inst["status"] == "refused" and why in inst["error"]
    assert not [c for c in calls(content.state) if c["action"] == "testkit.contain"]
    refusals = [r.doc for r in rt.store.find("audit", {"action": "policy.refused"}, limit=10)]
    assert len(refusals) == 2 and refusals[0]["details"]["reasons"]


def test_blast_radius_cap(content: Content, pb_settings: Settings) -> None:
    content.playbook(
        "wide",
        """\
        name: wide
        trigger: {rules: [rule-contain]}
        steps:
          - id: contain
            uses: testkit.contain
            for_each: "{{ alert.related.hosts }}"
            with: {host: "{{ item }}"}
            on_failure: continue
        """,
    )
    rt, started = _start(pb_settings, alert(related={"hosts": ["dev1", "dev2", "h3", "h4"]}))
    insts = _run(rt, started[0])["steps"]["contain"]["instances"]
    assert [i["status"] for i in insts] == ["succeeded", "succeeded", "succeeded", "refused"]
    assert "blast radius" in insts[3]["error"]


def test_circuit_breaker_opens_after_failures_in_a_row(content: Content, pb_settings: Settings) -> None:
    content.playbook(
        "fails",
        """\
        name: fails
        trigger: {rules: [rule-contain]}
        steps:
          - id: f
            uses: testkit.fail
            with: {host: "{{ alert.host.name }}"}
            on_failure: continue
        """,
    )
    rt = dispatch.runtime_for(pb_settings)
    for i in range(3):
        _start(pb_settings, alert(f"b{i}", host="dev1"))
    _, started = _start(pb_settings, alert("b3", host="dev2"))
    run = _run(rt, started[0])
    inst = run["steps"]["f"]["instances"][0]
    assert inst["status"] == "waiting_approval"
    assert any("circuit breaker open" in r for r in inst["decision"]["reasons"])
    assert len([c for c in calls(content.state) if c["action"] == "testkit.fail"]) == 3
    assert rt.store.count("audit", {"action": "policy.circuit_open"}) == 1


def test_rate_cap_excess_waits_for_approval(content: Content, pb_settings: Settings) -> None:
    content.policy("rate_caps: {contain_per_hour: 5, contain_per_rule_per_hour: 3}\n")
    content.playbook("contain", CONTAIN.replace("{on_failure}", "continue"))
    dispatch.forget_runtimes()
    rt = dispatch.runtime_for(pb_settings)
    runs = [_start(pb_settings, alert(f"r{i}", host=f"h{i}"))[1][0] for i in range(4)]
    statuses = [_run(rt, r)["status"] for r in runs]
    assert statuses == ["succeeded"] * 3 + ["waiting_approval"]  # the per-rule cap of 3
    other = _start(pb_settings, alert("x1", rule_id="rule-contain", host="hx"))[1][0]
    assert _run(rt, other)["status"] == "waiting_approval"
    reasons = _run(rt, runs[3])["steps"]["contain"]["instances"][0]["decision"]["reasons"]
    assert any("rate cap" in r for r in reasons)


def test_runtime_template_error_is_recorded_on_the_step(content: Content, pb_settings: Settings) -> None:
    content.playbook(
        "missing",
        """\
        name: missing
        trigger: {rules: [rule-contain]}
        steps:
          - id: first
            uses: testkit.note
            with: {text: "ok"}
          - id: second
            uses: testkit.contain
            with: {host: "{{ alert.process.name }}"}
        """,
    )
    rt, started = _start(pb_settings, alert())
    run = _run(rt, started[0])
    assert run["status"] == "failed"
    assert run["steps"]["second"]["status"] == "failed"
    assert "'process'" in run["steps"]["second"]["error"] and "second" in run["error"]
    assert [c["action"] for c in calls(content.state)] == ["testkit.note"]


def test_interrupted_non_idempotent_step_is_never_repeated(
    content: Content, pb_settings: Settings, clock: FakeClock
) -> None:
    content.playbook(
        "lock",
        """\
        name: lock
        trigger: {rules: [rule-contain]}
        steps:
          - id: lock
            uses: testkit.lock
            with: {user: "{{ alert.user.name }}"}
            on_failure: continue
        """,
    )
    rt = dispatch.runtime_for(pb_settings)
    doc = alert()
    rt.store.create(engine.ALERTS, doc["id"], doc)
    run_id = engine.handle_alert(rt, doc["id"])[0]
    # the state a worker killed inside the action leaves behind: attempt marked running, lease expired
    from soar.playbooks.records import mutate

    def crashed(run: dict[str, Any]) -> None:
        run["steps"]["lock"] = {
            "id": "lock",
            "uses": "testkit.lock",
            "phase": "steps",
            "for_each": False,
            "on_failure": "continue",
            "status": "in_progress",
            "error": None,
            "started_at": "x",
            "finished_at": None,
            "instances": [
                {
                    "key": "lock",
                    "params": {"user": "alice"},
                    "_params": {"user": "alice"},
                    "targets": [],
                    "item": None,
                    "status": "running",
                    "decision": {"outcome": "allow"},
                    "approval_id": None,
                    "quota": [],
                    "attempts": [{"n": 1, "status": "running"}],
                    "interruptions": 0,
                    "result": None,
                }
            ],
        }
        run["lease"] = {"owner": "dead-worker", "until": clock.now() - 1}

    mutate(rt.store, run_id, crashed)
    assert run_id in engine.stale_runs(rt)
    dispatch.kick(pb_settings, run_id, runtime=rt)
    inst = _run(rt, run_id)["steps"]["lock"]["instances"][0]
    assert inst["status"] == "interrupted" and "not idempotent" in inst["error"]
    assert calls(content.state) == []


def test_a_refusal_by_the_action_is_not_retried(content: Content, pb_settings: Settings) -> None:
    content.playbook(
        "refuse",
        """\
        name: refuse
        trigger: {rules: [rule-contain]}
        steps:
          - id: r
            uses: testkit.refuse
            with: {host: "{{ alert.host.name }}"}
            retry: {count: 3, backoff: 0}
        """,
    )
    rt, started = _start(pb_settings, alert())
    run = _run(rt, started[0])
    assert run["status"] == "failed" and len(run["steps"]["r"]["instances"][0]["attempts"]) == 1
    assert len(calls(content.state)) == 1


def test_secrets_never_reach_run_records(
    content: Content, pb_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "s3cr3t-integration-key-value"
    monkeypatch.setenv("SOAR_AUDIT_HMAC_KEY", "s3cr3t-audit-key-value")  # soar's own: never handed to testkit
    monkeypatch.setenv("SOAR_INTEGRATION__TESTKIT__KEY", secret)
    from soar.config import get_settings

    get_settings.cache_clear()
    settings = get_settings()
    content.playbook(
        "leak",
        """\
        name: leak
        trigger: {rules: [rule-contain]}
        steps:
          - id: leak
            uses: testkit.leak
            with: {what: "{{ alert.user.name }}"}
        """,
    )
    rt, started = _start(settings, alert())
    rec = rt.store.get(RUNS, started[0])
    assert rec is not None and rec.doc["status"] == "succeeded"
    import json

    text = json.dumps(rec.doc)
    assert secret not in text and "hunter2" not in text
    inst = rec.doc["steps"]["leak"]["instances"][0]
    assert inst["attempts"][0]["stdout"] == "alice: key=********"
    assert inst["result"]["output"]["password"] == "********"


def test_rate_cap_is_a_sliding_hour_across_the_clock_hour(
    content: Content, pb_settings: Settings, clock: FakeClock
) -> None:
    from soar.playbooks import guards
    from soar.policy import Policy

    rt = dispatch.runtime_for(pb_settings)
    policy = Policy.model_validate({"rate_caps": {"contain_per_hour": 3}})
    clock.advance(3600 - clock.now() % 3600 + 300)  # five minutes past a clock hour
    now = clock.now()
    late = now - 600  # ten minutes ago: in the previous clock hour
    previous = guards.hour_bucket(now - 3600)
    assert guards.hour_bucket(late) == previous
    for i in range(2):  # two containments 10 minutes ago, booked in the previous hour's bucket
        rt.store.create(guards.QUOTA, f"global-{previous}-{i:06d}", {"scope": "global", "bucket": previous, "at": late})
    slots, why = guards.reserve_containment(rt.store, policy, "r", "run-1", now)
    assert len(slots) == 1 and why is None
    slots, why = guards.reserve_containment(rt.store, policy, "r", "run-2", now)
    assert slots == [] and why == "rate cap: 3 containments per hour"
    clock.advance(3600)  # an hour on: the previous hour's slots are out of the window, the cap is free again
    slots, why = guards.reserve_containment(rt.store, policy, "r", "run-3", clock.now())
    assert len(slots) == 1 and why is None


def test_a_run_waits_while_another_run_holds_the_target(content: Content, pb_settings: Settings) -> None:
    from soar.playbooks.locks import open_locks
    from soar.playbooks.runner import advance

    content.playbook("contain", CONTAIN.replace("{on_failure}", "abort"))
    rt = dispatch.runtime_for(pb_settings)
    locks = open_locks(pb_settings, rt.store)
    assert locks.acquire(["host:dev1"], "run-other", 60)  # another run is acting on dev1
    doc = alert(host="dev1")
    rt.store.create(engine.ALERTS, doc["id"], doc)
    run_id = engine.handle_alert(rt, doc["id"])[0]
    nxt = advance(rt, run_id)
    assert (nxt.kind, _run(rt, run_id)["status"]) == ("retry", "waiting_lock")
    assert calls(content.state) == []
    locks.release(["host:dev1"], "run-other")
    dispatch.drive(rt, run_id)
    assert _run(rt, run_id)["status"] == "succeeded"
    assert [c["action"] for c in calls(content.state)] == ["testkit.contain", "testkit.note"]


def test_an_action_past_its_timeout_keeps_its_target_until_its_thread_stops(
    content: Content, pb_settings: Settings
) -> None:
    """A timed-out action may still be acting on the host: the step's retry (same run) waits for it to stop."""
    from soar.playbooks.locks import LOCKS
    from soar.playbooks.runner import advance

    content.playbook(
        "hang",
        """\
        name: hang
        trigger: {rules: [rule-contain]}
        steps:
          - id: contain
            uses: testkit.hang
            with: {host: "{{ alert.host.name }}"}
            timeout: 0.2
            retry: {count: 1, backoff: 0.05}
        """,
    )
    rt = dispatch.runtime_for(pb_settings)
    doc = alert(host="dev1")
    rt.store.create(engine.ALERTS, doc["id"], doc)
    run_id = engine.handle_alert(rt, doc["id"])[0]
    assert advance(rt, run_id).kind == "retry"  # the first attempt timed out; its thread still hangs on dev1
    stray = rt.store.get(LOCKS, "host:dev1")
    assert stray is not None and stray.doc["owner"].startswith(f"{run_id}:stray:")  # the lock is the thread's
    for _ in range(3):
        assert (advance(rt, run_id).kind, _run(rt, run_id)["status"]) == ("retry", "waiting_lock")
    assert [c["action"] for c in calls(content.state)] == ["testkit.hang"]  # the retry never started
    (content.state / "testkit" / "let-go-dev1").touch()
    for _ in range(500):  # the thread ends, then gives the lock back
        if rt.store.get(LOCKS, "host:dev1") is None:
            break
        threading.Event().wait(0.01)
    dispatch.drive(rt, run_id)
    run = _run(rt, run_id)
    assert run["status"] == "succeeded"
    assert [a["status"] for a in run["steps"]["contain"]["instances"][0]["attempts"]] == ["failed", "succeeded"]
    assert [c["action"] for c in calls(content.state)] == [
        "testkit.hang", "testkit.hang.done", "testkit.hang", "testkit.hang.done"
    ]  # fmt: skip


def test_what_a_run_opens_is_shared_by_its_steps_and_closed_when_the_run_is_let_go(
    content: Content, pb_settings: Settings
) -> None:
    content.playbook(
        "connect",
        """\
        name: connect
        trigger: {rules: [rule-contain]}
        steps:
          - id: first
            uses: testkit.connect
            with: {name: ssh}
          - id: second
            uses: testkit.connect
            with: {name: ssh}
        """,
    )
    rt, [run_id] = _start(pb_settings, alert())
    run = _run(rt, run_id)
    assert run["status"] == "succeeded"
    assert [run["steps"][s]["instances"][0]["result"]["output"]["first"] for s in ("first", "second")] == [True, False]
    assert [c["lent_store"] for c in calls(content.state)] == [True, True]  # actions reuse the runtime's store
    assert (content.state / "testkit" / f"closed-ssh-{run_id}").exists()  # closed at the run's end
    assert rt.store.get(RUNS, run_id) is not None  # the lent store is not closed with it


def test_run_resources_close_what_was_opened_but_not_the_lent_store(tmp_path: Path) -> None:
    from soar.playbooks.runtime import RunResources
    from soar.store.sqlite import SQLiteStore
    from tests.playbook_kit.testkit import Handle

    store = SQLiteStore(tmp_path / "s.sqlite3")
    resources = RunResources(store)
    resources["a"], resources["b"] = Handle(tmp_path / "a"), Handle(tmp_path / "b")
    resources.close()
    assert (tmp_path / "a").exists() and (tmp_path / "b").exists() and resources == {}
    assert store.count(RUNS) == 0  # still open
    store.close()


def test_a_runs_resources_left_idle_here_are_closed_at_the_next_hold(
    content: Content, pb_settings: Settings, clock: FakeClock
) -> None:
    """A run let go between steps keeps its resources for its next step; gone on elsewhere, they are closed."""
    from soar.playbooks.runtime import RESOURCES_IDLE
    from tests.playbook_kit.testkit import Handle

    rt = dispatch.runtime_for(pb_settings)
    first = rt.hold_resources("run-a")
    first["ssh"] = Handle(content.state / "closed-a")
    rt.let_go("run-a", ended=False)
    assert rt.hold_resources("run-a") is first  # its next step here: the same connections
    rt.let_go("run-a", ended=False)
    clock.advance(RESOURCES_IDLE + 1)
    rt.hold_resources("run-b")
    assert (content.state / "closed-a").exists()  # run-a went on in another worker: closed here
    assert rt.hold_resources("run-a") is not first
