"""The engine on real Celery workers and Redis: exactly one run per alert, Redis target locks,
and a worker killed with SIGKILL mid-run resumes from the last completed step on a new worker."""

from __future__ import annotations

import time
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
from tests.integration.playbooks.conftest import Content, alert, content_env
from tests.integration.playbooks.testkit_integrations.testkit import calls
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
    content: Content, worker_store: Store, client: Celery, tmp_path: Path
) -> None:
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
    env = content_env(content, eager=False, redis_db=DB)
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


def test_a_for_each_batch_on_a_real_worker_runs_at_once_under_redis_locks(
    content: Content, worker_store: Store, client: Celery, tmp_path: Path
) -> None:
    from tests.integration.playbooks.test_parallel import ROOMY_POLICY, WIDE, most_at_once

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
