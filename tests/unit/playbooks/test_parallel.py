"""The instances of a for_each step run at once, bounded by max_parallel, with every safety check still serial."""

from __future__ import annotations

import itertools
import threading
from datetime import datetime
from typing import Any

import pytest

from soar.clock import FakeClock
from soar.config import Settings
from soar.playbooks import dispatch, engine, runner
from soar.playbooks.approvals import decide
from soar.playbooks.locks import open_locks
from soar.playbooks.records import mutate
from soar.playbooks.runner import advance
from soar.playbooks.state import LEASE_MARGIN, HeldRun, Next
from tests.playbook_kit import Content, alert, wait_for
from tests.playbook_kit.testkit import calls
from tests.unit.playbooks.test_engine import _run, _start

WIDE = """\
name: wide
trigger: {rules: [rule-contain]}
steps:
  - {id: contain, uses: testkit.slow_contain, for_each: "{{ alert.related.hosts }}", max_parallel: {width},
     with: {host: "{{ item }}", seconds: 0.4}, on_failure: continue}
"""

ROOMY_POLICY = """\
approvals:
  - {name: prod-containment, impact: [contain, destructive], labels: {env: prod}, approvals: 1, timeout: 600}
blast_radius: {max_targets_per_run: 50}
"""


def _slow_calls(content: Content) -> list[dict[str, Any]]:
    return [c for c in calls(content.state) if c["action"] == "testkit.slow_contain"]


def most_at_once(spans: list[tuple[float, float]]) -> int:
    """The largest number of (began, ended) spans open at one moment."""
    edges = sorted([(b, 1) for b, _ in spans] + [(e, -1) for _, e in spans], key=lambda x: (x[0], x[1]))
    now = most = 0
    for _, step in edges:
        now += step
        most = max(most, now)
    return most


def test_instances_run_at_once_bounded_by_max_parallel(content: Content, pb_settings: Settings) -> None:
    content.policy(ROOMY_POLICY)
    content.playbook("wide", WIDE.replace("{width}", "4"))
    hosts = [f"h{i:02d}" for i in range(10)]
    rt, [run_id] = _start(pb_settings, alert(related={"hosts": hosts}))
    run = _run(rt, run_id)
    assert run["status"] == "succeeded", run.get("error")
    made = _slow_calls(content)
    assert sorted(c["host"] for c in made) == hosts  # every instance exactly once
    at_once = most_at_once([(c["began"], c["ended"]) for c in made])
    assert 1 < at_once <= 4, at_once
    insts = run["steps"]["contain"]["instances"]
    assert [i["key"] for i in insts] == [f"contain[{n}]" for n in range(10)]
    for inst in insts:  # the record has the shape of a serial run: one attempt each, decided, no error
        assert inst["status"] == "succeeded" and inst["decision"]["outcome"] == "allow"
        assert [a["status"] for a in inst["attempts"]] == ["succeeded"] and inst["attempts"][0]["finished_at"]
    assert run["contained_targets"] == [f"host:{h}" for h in hosts]
    assert run["steps"]["contain"]["status"] == "succeeded" and run["lease"] is None


def test_the_blast_radius_counts_instances_admitted_in_the_same_batch(content: Content, pb_settings: Settings) -> None:
    content.playbook("wide", WIDE.replace("{width}", "10"))  # the test policy: at most 3 targets per run
    hosts = [f"h{i}" for i in range(8)]
    rt, [run_id] = _start(pb_settings, alert(related={"hosts": hosts}))
    run = _run(rt, run_id)
    insts = run["steps"]["contain"]["instances"]
    assert [i["status"] for i in insts] == ["succeeded"] * 3 + ["refused"] * 5
    assert all("blast radius" in i["error"] for i in insts[3:])
    assert sorted(c["host"] for c in _slow_calls(content)) == hosts[:3]
    assert run["contained_targets"] == ["host:h0", "host:h1", "host:h2"]
    refused = [r.doc for r in rt.store.find("audit", {"action": "policy.refused"}, limit=100)]
    assert len(refused) == 5


def test_allowed_instances_run_while_others_wait_for_approval(content: Content, pb_settings: Settings) -> None:
    content.policy(ROOMY_POLICY)
    content.playbook("wide", WIDE.replace("{width}", "5"))
    rt, [run_id] = _start(pb_settings, alert(related={"hosts": ["dev1", "web1", "dev2", "web2"]}))
    run = _run(rt, run_id)
    assert run["status"] == "waiting_approval"
    assert [i["status"] for i in run["steps"]["contain"]["instances"]] == [
        "succeeded",
        "waiting_approval",
        "succeeded",
        "waiting_approval",
    ]
    assert sorted(c["host"] for c in _slow_calls(content)) == ["dev1", "dev2"]
    pending = sorted(r.doc["step"] for r in rt.store.find("approvals", {"status": "pending"}, limit=10))
    assert pending == ["contain[1]", "contain[3]"]
    decide(
        pb_settings, rt.store, run_id, "contain[1]", approver="alice", role="approver", decision="approve", via="cli"
    )
    assert _run(rt, run_id)["status"] == "waiting_approval"  # still one to go
    decide(pb_settings, rt.store, run_id, "contain[3]", approver="bob", role="approver", decision="deny", via="cli")
    run = _run(rt, run_id)
    assert [i["status"] for i in run["steps"]["contain"]["instances"]] == [
        "succeeded",
        "succeeded",
        "succeeded",
        "denied",
    ]
    assert run["contained_targets"] == ["host:dev1", "host:dev2", "host:web1"]
    assert sorted(c["host"] for c in _slow_calls(content)) == ["dev1", "dev2", "web1"]


def test_a_containment_step_starts_with_a_canary_batch_then_goes_full_width(
    content: Content, pb_settings: Settings
) -> None:
    """The first batch is as wide as the breaker's failures-in-a-row (3); once one succeeded, max_parallel."""
    content.policy(ROOMY_POLICY)
    content.playbook("wide", WIDE.replace("{width}", "10"))
    hosts = [f"h{i}" for i in range(10)]
    rt, [run_id] = _start(pb_settings, alert(related={"hosts": hosts}))
    assert _run(rt, run_id)["status"] == "succeeded"
    made = sorted(_slow_calls(content), key=lambda c: c["began"])
    canary, rest = made[:3], made[3:]
    assert sorted(c["host"] for c in canary) == hosts[:3]
    assert max(c["ended"] for c in canary) <= min(c["began"] for c in rest), "the rest waited for the canary"
    assert 3 < most_at_once([(c["began"], c["ended"]) for c in rest]) <= 7


def test_a_containment_broken_everywhere_stops_at_the_breaker_having_touched_only_the_canary(
    content: Content, pb_settings: Settings
) -> None:
    """An action failing on every host opens the breaker after the canary's three: the others are never
    tried but held for a human (the breaker asks for approval), where a batch of max_parallel hit eight."""
    content.policy(ROOMY_POLICY)
    content.playbook(
        "wide",
        WIDE.replace("testkit.slow_contain", "testkit.fail").replace(", seconds: 0.4", "").replace("{width}", "8"),
    )
    hosts = [f"h{i}" for i in range(8)]
    rt, [run_id] = _start(pb_settings, alert(related={"hosts": hosts}))
    run = _run(rt, run_id)
    assert sorted(c["host"] for c in calls(content.state) if c["action"] == "testkit.fail") == hosts[:3]
    insts = run["steps"]["contain"]["instances"]
    assert [i["status"] for i in insts] == ["failed"] * 3 + ["waiting_approval"] * 5
    assert all(any("circuit breaker open" in r for r in i["decision"]["reasons"]) for i in insts[3:])
    assert rt.store.count("audit", {"action": "policy.circuit_open"}) == 1


def test_a_busy_target_makes_the_step_retry_after_the_others_finish(content: Content, pb_settings: Settings) -> None:
    content.policy(ROOMY_POLICY)
    content.playbook("wide", WIDE.replace("{width}", "10"))
    rt = dispatch.runtime_for(pb_settings)
    locks = open_locks(pb_settings, rt.store)
    assert locks.acquire(["host:h1"], "run-other", 60)  # another run is acting on h1
    doc = alert(related={"hosts": ["h0", "h1", "h2"]})
    rt.store.create(engine.ALERTS, doc["id"], doc)
    [run_id] = engine.handle_alert(rt, doc["id"])
    nxt = advance(rt, run_id)
    run = _run(rt, run_id)
    assert (nxt.kind, nxt.delay, run["status"]) == ("retry", 0.5, "waiting_lock")
    assert [i["status"] for i in run["steps"]["contain"]["instances"]] == ["succeeded", "ready", "succeeded"]
    assert sorted(c["host"] for c in _slow_calls(content)) == ["h0", "h2"]
    locks.release(["host:h1"], "run-other")
    dispatch.drive(rt, run_id)
    run = _run(rt, run_id)
    assert run["status"] == "succeeded", run.get("error")
    assert sorted(c["host"] for c in _slow_calls(content)) == ["h0", "h1", "h2"]
    assert [len(i["attempts"]) for i in run["steps"]["contain"]["instances"]] == [1, 1, 1]


def test_two_instances_on_one_target_never_overlap(content: Content, pb_settings: Settings) -> None:
    content.policy(ROOMY_POLICY)
    content.playbook("wide", WIDE.replace("{width}", "10"))
    rt, [run_id] = _start(pb_settings, alert(related={"hosts": ["h0", "h0", "h1", "h0"]}))
    assert _run(rt, run_id)["status"] == "succeeded"
    on_h0 = sorted((c["began"], c["ended"]) for c in _slow_calls(content) if c["host"] == "h0")
    assert len(on_h0) == 3
    assert most_at_once(on_h0) == 1


def test_a_batch_cut_short_by_a_lost_worker_is_recovered(
    content: Content, pb_settings: Settings, clock: FakeClock
) -> None:
    content.policy(ROOMY_POLICY)
    content.playbook("wide", WIDE.replace("{width}", "10"))
    rt, [run_id] = _start(pb_settings, alert(related={"hosts": ["h0", "h1", "h2"]}))
    assert _run(rt, run_id)["status"] == "succeeded"

    def killed_mid_batch(run: dict[str, Any]) -> None:  # h0 done; h1 and h2 inside the action when it died
        run.update(status="running", finished_at=None, cursor=0, outputs=None)
        run["steps"]["contain"].update(status="in_progress", finished_at=None)
        for inst in run["steps"]["contain"]["instances"][1:]:
            inst.update(status="running", result=None)
            inst["attempts"][-1].update(status="running", finished_at=None)
        run["contained_targets"] = ["host:h0"]
        run["lease"] = {"owner": "dead-worker", "until": clock.now() - 1}

    mutate(rt.store, run_id, killed_mid_batch, clock=clock)
    assert run_id in engine.stale_runs(rt)
    dispatch.kick(pb_settings, run_id, runtime=rt)
    run = _run(rt, run_id)
    assert run["status"] == "succeeded", run.get("error")
    insts = run["steps"]["contain"]["instances"]
    assert [a["status"] for a in insts[0]["attempts"]] == ["succeeded"]
    for inst in insts[1:]:  # an idempotent containment is attempted again, the lost attempt kept
        assert [a["status"] for a in inst["attempts"]] == ["interrupted", "succeeded"]
        assert inst["interruptions"] == 1
    assert run["contained_targets"] == ["host:h0", "host:h1", "host:h2"]
    assert sorted(c["host"] for c in _slow_calls(content)) == ["h0", "h1", "h1", "h2", "h2"]


def test_a_retry_in_a_batch_keeps_its_backoff(content: Content, pb_settings: Settings) -> None:
    # max_parallel 2: a's second retry is due 0.3 s after c's first, so a batch must pass it over
    items = "[{key: a, fails: 2}, {key: b, fails: 0}, {key: c, fails: 1}]"
    content.playbook(
        "retries",
        "name: retries\ntrigger: {rules: [rule-contain]}\nsteps:\n"
        f"  - {{id: try, uses: testkit.flaky, for_each: {items}, max_parallel: 2,\n"
        '     with: {key: "{{ item.key }}", fail_times: "{{ item.fails }}"}, retry: {count: 2, backoff: 0.3}}\n',
    )
    rt, [run_id] = _start(pb_settings, alert())
    run = _run(rt, run_id)
    assert run["status"] == "succeeded", run.get("error")
    insts = run["steps"]["try"]["instances"]
    assert [[a["status"] for a in i["attempts"]] for i in insts] == [
        ["failed", "failed", "succeeded"],
        ["succeeded"],
        ["failed", "succeeded"],
    ]
    for inst in insts:  # no retry began before its backoff (0.3 s, then 0.6 s) had passed
        for n, (before, after) in enumerate(itertools.pairwise(inst["attempts"])):
            gap = datetime.fromisoformat(after["started_at"]) - datetime.fromisoformat(before["finished_at"])
            assert gap.total_seconds() >= 0.3 * 2**n, (inst["key"], n, gap)


def test_a_holder_whose_lease_ran_out_mid_batch_leaves_the_run_to_its_new_holder(
    content: Content, pb_settings: Settings, clock: FakeClock
) -> None:
    """The lease of a batch runs out (a slow host, records queued behind a slow store) and another worker takes
    the run over. The old holder, its attempt then ending, must not write over the new holder's run: before,
    its save's Conflict made it fail the run as an engine error, after the new holder had finished it."""
    from tests.playbook_kit.testkit import open_gate

    content.policy(ROOMY_POLICY)
    content.playbook(
        "lock",
        "name: lock\ntrigger: {rules: [rule-contain]}\nsteps:\n"
        "  - {id: lock, uses: testkit.gated_lock, for_each: [{u: fast, gate: ''}, {u: slow, gate: g}],\n"
        '     max_parallel: 2, with: {user: "{{ item.u }}", gate: "{{ item.gate }}"}, on_failure: continue}\n',
    )
    rt = dispatch.runtime_for(pb_settings)
    doc = alert()
    rt.store.create(engine.ALERTS, doc["id"], doc)
    [run_id] = engine.handle_alert(rt, doc["id"])
    old_holder: list[Next] = []
    thread = threading.Thread(target=lambda: old_holder.append(advance(rt, run_id, owner="old")))
    thread.start()

    def slow_one_in_flight() -> bool:
        insts = _run(rt, run_id)["steps"].get("lock", {}).get("instances", [])
        begun = [c["user"] for c in calls(content.state) if c["action"] == "testkit.gated_lock"]
        return [i["status"] for i in insts] == ["succeeded", "running"] and "slow" in begun

    wait_for(slow_one_in_flight, 30, "the batch to get the slow instance in flight")

    lease = _run(rt, run_id)["lease"]
    assert lease["owner"] == "old"
    clock.advance(lease["until"] - clock.now() + 1)  # time passes: the old holder's lease is over
    assert dispatch.drive(rt, run_id).kind == "done"  # the new holder: the slow attempt was lost, never repeated
    taken_over = _run(rt, run_id)
    assert taken_over["status"] == "failed" and taken_over["error"] == "steps failed: lock"
    open_gate(content.state, "g")  # the old holder's attempt ends
    thread.join(30)
    assert not thread.is_alive()
    assert old_holder == [Next("busy")]  # it stood down
    run = _run(rt, run_id)
    assert run == taken_over  # not one write after the new holder's
    insts = run["steps"]["lock"]["instances"]
    assert [[a["status"] for a in i["attempts"]] for i in insts] == [["succeeded"], ["interrupted"]]
    finished = [r.doc for r in rt.store.find("audit", {"action": "playbook.run_finished"}, limit=10)]
    assert len(finished) == 1


def test_a_batch_keeps_its_lease_while_it_writes(content: Content, pb_settings: Settings, clock: FakeClock) -> None:
    """The lease of a batch is not the estimate of its last attempt only: a shorter extension (a later attempt
    with a shorter timeout) keeps the longer one, and every save pushes it past the holder's latest write, so
    records queued behind one another cannot outlast it."""
    content.playbook("wide", WIDE.replace("{width}", "2"))
    rt = dispatch.runtime_for(pb_settings)
    doc = alert()
    rt.store.create(engine.ALERTS, doc["id"], doc)
    [run_id] = engine.handle_alert(rt, doc["id"])

    def held_for_a_second(run: dict[str, Any]) -> None:
        run["lease"] = {"owner": "holder", "until": clock.now() + 1}

    rec, _ = mutate(rt.store, run_id, held_for_a_second, clock=clock)
    run = HeldRun(rt, rec, "holder")
    before = clock.now()
    run.save()
    assert _run(rt, run_id)["lease"]["until"] >= before + LEASE_MARGIN
    run.extend_lease(600)  # an attempt with a 10-minute timeout is in flight
    assert run.record.lease is not None
    promised = run.record.lease.until
    run.extend_lease(1)  # then one with a 1-second timeout starts
    run.save()
    assert _run(rt, run_id)["lease"] == {"owner": "holder", "until": promised}
    run.record.lease = None  # given back: a save does not take it again
    run.save()
    assert _run(rt, run_id)["lease"] is None


def test_an_approval_decided_while_the_run_is_still_held_is_not_lost(
    content: Content, pb_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A decision resumes the run with a kick; a kick that finds the run still held (the holder has just
    seen the request pending and is about to pause) is ``busy`` and dropped. The holder must notice the
    decision once it has let go, or the run sleeps until the approval's expiry wake-up."""
    content.policy(ROOMY_POLICY)
    content.playbook("wide", WIDE.replace("{width}", "2"))
    rt = dispatch.runtime_for(pb_settings)
    doc = alert(related={"hosts": ["dev1", "web1"]})
    rt.store.create(engine.ALERTS, doc["id"], doc)
    [run_id] = engine.handle_alert(rt, doc["id"])
    assert advance(rt, run_id).kind == "continue"  # dev1 ran; web1 asked for an approval
    release = runner._release_lease

    def decided_just_before_release(run: HeldRun) -> None:
        decide(
            pb_settings,
            rt.store,
            run_id,
            "contain[1]",
            approver="alice",
            role="approver",
            decision="approve",
            via="cli",
        )
        release(run)

    monkeypatch.setattr(runner, "_release_lease", decided_just_before_release)
    nxt = advance(rt, run_id)
    monkeypatch.undo()
    held = _run(rt, run_id)
    assert held["steps"]["contain"]["instances"][1]["status"] == "waiting_approval"  # the kick found it busy
    assert nxt == Next("continue")  # so the holder goes on itself, not in 600 s
    assert dispatch.drive(rt, run_id).kind == "done"
    assert _run(rt, run_id)["status"] == "succeeded"
    assert sorted(c["host"] for c in _slow_calls(content)) == ["dev1", "web1"]
