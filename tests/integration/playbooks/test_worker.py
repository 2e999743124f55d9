"""The engine on real Celery workers and Redis: exactly one run per alert, Redis target locks,
and a worker killed with SIGKILL mid-run resumes from the last completed step on a new worker
(on the SQLite store and on the Elasticsearch store)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis as redis_lib
from celery import Celery

from soar.config import load_settings
from soar.playbooks.engine import ALERTS
from soar.playbooks.locks import PREFIX, RedisLocks
from soar.playbooks.records import RUNS
from soar.store import Store, open_store
from tests.playbook_kit import Content, alert, content_env
from tests.playbook_kit.testkit import calls
from tests.workers import flush_db, kill_group, redis_url_for_db, running_worker

DB = 7


def _wait(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def worker_store(content: Content, redis: redis_lib.Redis) -> Iterator[Store]:
    flush_db(DB)
    settings = load_settings(content_root=content.root, state_dir=content.state)
    store = open_store(settings)
    yield store
    store.close()
    flush_db(DB)


@pytest.fixture(params=["sqlite", "elasticsearch"])
def kill_store(
    request: pytest.FixtureRequest, content: Content, redis: redis_lib.Redis
) -> Iterator[tuple[Store, dict[str, str]]]:
    """The store the worker writes its runs to, and the env that selects it (Elasticsearch: a prefix of its own)."""
    flush_db(DB)
    extra = {}
    if request.param == "elasticsearch":
        request.getfixturevalue("es")  # Elasticsearch answers (fails under CI=true otherwise)
        extra = {"SOAR_STORE": "elasticsearch", "SOAR_INDEX_PREFIX": f"soar-wkill-{uuid.uuid4().hex[:8]}"}
    settings = load_settings(
        content_root=content.root, state_dir=content.state, store=extra.get("SOAR_STORE", "sqlite"),
        index_prefix=extra.get("SOAR_INDEX_PREFIX", "soar"),
    )  # fmt: skip
    store = open_store(settings)
    yield store, extra
    if extra:
        es = request.getfixturevalue("es")
        es.options(ignore_status=404).indices.delete(index=f"{extra['SOAR_INDEX_PREFIX']}-*")
        es.options(ignore_status=404).indices.delete_index_template(name=f"{extra['SOAR_INDEX_PREFIX']}-state")
    store.close()
    flush_db(DB)


@pytest.fixture
def client() -> Iterator[Celery]:
    app = Celery("client", broker=redis_url_for_db(DB))
    yield app
    app.close()


def _run_for(store: Store, alert_id: str) -> dict[str, Any] | None:
    recs = store.find(RUNS, {"alert_id": alert_id})
    return recs[0].doc if recs else None


def _status(store: Store, alert_id: str, *statuses: str) -> dict[str, Any] | None:
    run = _run_for(store, alert_id)
    return run if run and run["status"] in statuses else None


def test_alert_on_a_real_worker_runs_once_with_redis_locks(
    content: Content, worker_store: Store, client: Celery, tmp_path: Path
) -> None:
    content.playbook(
        "contain",
        """\
        name: contain
        trigger: {rules: [rule-contain]}
        steps:
          - id: contain
            uses: testkit.contain
            with: {host: "{{ alert.host.name }}"}
          - id: note
            uses: testkit.note
            with: {text: "done {{ alert.host.name }}"}
        """,
    )
    doc = alert("w-1", host="dev1")
    worker_store.create(ALERTS, doc["id"], doc)
    env = content_env(content, eager=False, redis_db=DB)
    with running_worker(DB, env, concurrency=2, log_path=tmp_path / "worker.log"):
        for _ in range(3):  # a redelivered / duplicated alert
            client.send_task("soar.playbooks.handle_alert", args=["w-1"], queue="response")
        run = _wait(lambda: _status(worker_store, "w-1", "succeeded", "failed"), 60, "the run to finish")
    assert run["status"] == "succeeded", run.get("error")
    assert worker_store.count(RUNS, {"alert_id": "w-1"}) == 1
    assert [c["action"] for c in calls(content.state)] == ["testkit.contain", "testkit.note"]
    r = redis_lib.Redis.from_url(redis_url_for_db(DB))
    assert r.keys(PREFIX + "*") == []  # every target lock released


def test_redis_locks_exclude_other_runs(redis: redis_lib.Redis) -> None:
    flush_db(DB)
    locks = RedisLocks(redis_lib.Redis.from_url(redis_url_for_db(DB)))
    assert locks.acquire(["host:web1", "account:alice"], "run-a", 30)
    assert not locks.acquire(["account:alice"], "run-b", 30)
    assert not locks.acquire(["host:dev1", "host:web1"], "run-b", 30)
    assert locks.acquire(["host:dev1"], "run-b", 30)  # nothing half-taken by the failed attempt above
    assert locks.acquire(["host:web1"], "run-a", 30)  # a run re-enters its own lock (resume)
    locks.release(["host:web1"], "run-b")  # not the owner: no effect
    assert not locks.acquire(["host:web1"], "run-b", 30)
    locks.release(["host:web1", "account:alice"], "run-a")
    assert locks.acquire(["host:web1"], "run-b", 30)
    flush_db(DB)


def test_worker_killed_mid_run_resumes_without_repeating_containment(
    content: Content, kill_store: tuple[Store, dict[str, str]], client: Celery, tmp_path: Path
) -> None:
    worker_store, store_env = kill_store
    content.playbook(
        "long",
        """\
        name: long
        trigger: {rules: [rule-contain]}
        steps:
          - id: contain
            uses: testkit.contain
            with: {host: "{{ alert.host.name }}"}
          - id: slow
            uses: testkit.sleep
            with: {seconds: 6, marker: "slow"}
            timeout: 8
          - id: note
            uses: testkit.note
            with: {text: "finished"}
        """,
    )
    doc = alert("w-kill", host="dev2")
    worker_store.create(ALERTS, doc["id"], doc)
    env = content_env(content, eager=False, redis_db=DB) | store_env
    with running_worker(DB, env, concurrency=1, log_path=tmp_path / "worker1.log") as first:
        client.send_task("soar.playbooks.handle_alert", args=["w-kill"], queue="response")
        _wait(lambda: any(c["action"] == "testkit.sleep" for c in calls(content.state)), 60, "the slow step")
        kill_group(first)  # SIGKILL the worker and its pool child in the middle of the slow step
    run = _run_for(worker_store, "w-kill")
    assert run is not None and run["status"] == "running"
    assert run["steps"]["slow"]["instances"][0]["status"] == "running"
    with running_worker(DB, env, concurrency=1, log_path=tmp_path / "worker2.log"):
        run = _wait(lambda: _status(worker_store, "w-kill", "succeeded", "failed"), 90, "the resumed run")
    assert run["status"] == "succeeded", run.get("error")
    actions = [c["action"] for c in calls(content.state)]
    assert actions.count("testkit.contain") == 1  # the completed containment was never repeated
    assert actions.count("testkit.sleep") == 2 and actions.count("testkit.note") == 1
    attempts = run["steps"]["slow"]["instances"][0]["attempts"]
    assert [a["status"] for a in attempts] == ["interrupted", "succeeded"]
    assert len({c["pid"] for c in calls(content.state) if c["action"] == "testkit.sleep"}) == 2
    assert worker_store.count(RUNS, {"alert_id": "w-kill"}) == 1  # one run, resumed: not a second one


def test_a_for_each_batch_on_a_real_worker_runs_at_once_under_redis_locks(
    content: Content, worker_store: Store, client: Celery, tmp_path: Path
) -> None:
    from tests.unit.playbooks.test_parallel import ROOMY_POLICY, WIDE, most_at_once

    content.policy(ROOMY_POLICY)
    content.playbook("wide", WIDE.replace("{width}", "3"))
    hosts = [f"h{i}" for i in range(6)]
    doc = alert("w-wide", related={"hosts": hosts})
    worker_store.create(ALERTS, doc["id"], doc)
    env = content_env(content, eager=False, redis_db=DB)
    with running_worker(DB, env, concurrency=1, log_path=tmp_path / "worker.log"):
        client.send_task("soar.playbooks.handle_alert", args=["w-wide"], queue="response")
        run = _wait(lambda: _status(worker_store, "w-wide", "succeeded", "failed"), 60, "the run to finish")
    assert run["status"] == "succeeded", run.get("error")
    made = [c for c in calls(content.state) if c["action"] == "testkit.slow_contain"]
    assert sorted(c["host"] for c in made) == hosts
    assert 1 < most_at_once([(c["began"], c["ended"]) for c in made]) <= 3
    assert len({c["pid"] for c in made}) == 1  # one worker process, its threads
    assert run["contained_targets"] == [f"host:{h}" for h in hosts]
    r = redis_lib.Redis.from_url(redis_url_for_db(DB))
    assert r.keys(PREFIX + "*") == []  # every target lock released


GATED = """\
name: {name}
trigger: {{rules: [{rule}]}}
steps:
  - id: {step}
    uses: testkit.{action}
    for_each: {items}
    max_parallel: 4
    timeout: 20
    with: {{{target}: "{{{{ item.name }}}}", gate: "{{{{ item.gate }}}}"}}
    on_failure: continue
"""
# a batch of four: two finish at once, two hold on the gate until the worker is killed; the fifth waits its turn
GATED_ITEMS = (
    "[{name: f0, gate: ''}, {name: f1, gate: ''}, {name: s0, gate: g}, {name: s1, gate: g}, {name: p0, gate: ''}]"
)
IN_FLIGHT = ("s0", "s1")


def _by_name(run: dict[str, Any], step: str) -> dict[str, dict[str, Any]]:
    return {inst["params"].get("host") or inst["params"]["user"]: inst for inst in run["steps"][step]["instances"]}


def _batch_in_flight(store: Store, state: Path, alert_id: str, step: str, action: str) -> bool:
    """The two fast instances are recorded and the two gated ones have begun: the batch is mid-flight."""
    run = _run_for(store, alert_id)
    begun = {c.get("host") or c.get("user") for c in calls(state) if c["action"] == action}
    if run is None or step not in run["steps"] or not set(IN_FLIGHT) <= begun:
        return False
    insts = _by_name(run, step)
    return all(insts[n]["status"] == "succeeded" for n in ("f0", "f1")) and all(
        insts[n]["status"] == "running" for n in IN_FLIGHT
    )


def test_worker_killed_mid_batch_applies_the_crash_marker_rule_to_each_instance(
    content: Content, worker_store: Store, client: Celery, tmp_path: Path
) -> None:
    from tests.playbook_kit.testkit import open_gate
    from tests.unit.playbooks.test_parallel import ROOMY_POLICY

    # a canary batch is as wide as the breaker's threshold: 4, so the first batch is the four above
    content.policy(ROOMY_POLICY + "circuit_breaker: {failures_in_a_row: 4, pause_minutes: 30}\n")
    content.playbook(
        "contain",
        GATED.format(
            name="contain",
            rule="rule-contain",
            step="contain",
            action="gated_contain",
            items=GATED_ITEMS,
            target="host",
        ),
    )
    content.playbook(
        "lock",
        GATED.format(name="lock", rule="rule-lock", step="lock", action="gated_lock", items=GATED_ITEMS, target="user"),
    )
    for doc in (alert("b-contain"), alert("b-lock", rule_id="rule-lock")):
        worker_store.create(ALERTS, doc["id"], doc)
    env = content_env(content, eager=False, redis_db=DB)
    with running_worker(DB, env, concurrency=2, log_path=tmp_path / "worker1.log") as first:
        for alert_id in ("b-contain", "b-lock"):
            client.send_task("soar.playbooks.handle_alert", args=[alert_id], queue="response")
        _wait(
            lambda: (
                _batch_in_flight(worker_store, content.state, "b-contain", "contain", "testkit.gated_contain")
                and _batch_in_flight(worker_store, content.state, "b-lock", "lock", "testkit.gated_lock")
            ),
            60,
            "both batches in flight",
        )
        kill_group(first)  # SIGKILL the worker and its pool children while s0 and s1 are inside their action
    for alert_id, step in (("b-contain", "contain"), ("b-lock", "lock")):
        left = _run_for(worker_store, alert_id)
        assert left is not None and left["status"] == "running"
        insts = _by_name(left, step)  # every thread's update made it: the fast ones recorded, the gated ones marked
        assert [insts[n]["status"] for n in ("f0", "f1", "s0", "s1", "p0")] == [
            *["succeeded"] * 2,
            *["running"] * 2,
            "pending",
        ]
    open_gate(content.state, "g")
    with running_worker(DB, env, concurrency=2, log_path=tmp_path / "worker2.log"):
        contain = _wait(lambda: _status(worker_store, "b-contain", "succeeded", "failed"), 120, "the contain run")
        lock = _wait(lambda: _status(worker_store, "b-lock", "succeeded", "failed"), 120, "the lock run")

    made = calls(content.state)
    # an idempotent containment in flight is attempted again (the lost attempt kept); nothing else is repeated
    assert contain["status"] == "succeeded", contain.get("error")
    insts = _by_name(contain, "contain")
    for name in ("f0", "f1", "p0"):
        assert [a["status"] for a in insts[name]["attempts"]] == ["succeeded"], name
    for name in IN_FLIGHT:
        assert insts[name]["status"] == "succeeded" and insts[name]["interruptions"] == 1
        assert [a["status"] for a in insts[name]["attempts"]] == ["interrupted", "succeeded"]
        assert insts[name]["attempts"][0]["error"] == "worker lost during the attempt"
    hosts = [c["host"] for c in made if c["action"] == "testkit.gated_contain"]
    assert sorted(hosts) == ["f0", "f1", "p0", "s0", "s0", "s1", "s1"]
    for name in IN_FLIGHT:  # the two attempts ran in two different worker processes
        assert len({c["pid"] for c in made if c.get("host") == name}) == 2
    assert contain["contained_targets"] == sorted(f"host:{n}" for n in ("f0", "f1", "p0", "s0", "s1"))

    # a non-idempotent one in flight is never repeated: it ends 'interrupted', the step failed, the run says so
    assert lock["status"] == "failed" and lock["error"] == "steps failed: lock"
    insts = _by_name(lock, "lock")
    for name in ("f0", "f1", "p0"):
        assert insts[name]["status"] == "succeeded"
        assert [a["status"] for a in insts[name]["attempts"]] == ["succeeded"], name
    for name in IN_FLIGHT:
        assert insts[name]["status"] == "interrupted" and insts[name]["interruptions"] == 1
        assert insts[name]["error"] == "worker lost mid-step; not idempotent, so it is not repeated"
        assert [a["status"] for a in insts[name]["attempts"]] == ["interrupted"]
    users = [c["user"] for c in made if c["action"] == "testkit.gated_lock"]
    assert sorted(users) == ["f0", "f1", "p0", "s0", "s1"]  # each exactly once
    interrupted = worker_store.find("audit", {"action": "playbook.step_interrupted"}, limit=10)
    assert sorted(r.doc["details"]["step"] for r in interrupted) == ["lock[2]", "lock[3]"]

    for run in (contain, lock):  # one record per attempt made, every attempt closed, the lease given back
        step = next(iter(run["steps"].values()))
        made_by_step = [c["step"] for c in made if c["run"] == run["id"]]
        for inst in step["instances"]:
            assert len(inst["attempts"]) == made_by_step.count(inst["key"]), inst["key"]
            assert all(a["status"] != "running" and a.get("finished_at") for a in inst["attempts"])
        assert run["lease"] is None and run["finished_at"]
