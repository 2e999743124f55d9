"""kill -9 of the scheduler and of the worker at random points while events stream in: 0 missed, 0 duplicates.

Real processes: ``soar scheduler`` and ``soar worker`` (Celery on its own Redis db), the
embedded SQLite store shared between them or the Elasticsearch store (production), events streaming
into real Elasticsearch. Counters stay exact: each rule's ``alerts_total`` is the number of its alerts.
Also: two schedulers at once never duplicate an alert, nor lose a count.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch

from soar.store import Store
from soar.store.elastic import ElasticsearchStore
from soar.store.sqlite import SQLiteStore
from tests.integration.scheduler.conftest import wait_for
from tests.integration.scheduler.streaming import EventStream
from tests.workers import REPO_ROOT, flush_db, redis_url_for_db, running_worker

DB_KILL = 2
DB_TWO = 3
KILLS = {"sqlite": (8, 6), "elasticsearch": (4, 4)}  # scheduler kills, worker kills (fewer: 2 shared cores)


def detection_env(content: Path, index: str, db: int) -> dict[str, str]:
    return {
        "SOAR_CONTENT_ROOT": str(content),
        "SOAR_STATE_DIR": str(content / "state"),
        "SOAR_EVENTS_INDEX": index,
        "SOAR_REDIS_URL": redis_url_for_db(db),
        "SOAR_DETECTION_INTERVAL": "1",
        "SOAR_DETECTION_LOOKBACK": "10",
        "SOAR_DETECTION_INGEST_DELAY": "1",
    }


@contextmanager
def scheduler_process(env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("SOAR_")} | env
    before = starts(log)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "soar", "scheduler", "--tick", "0.5", "--lease", "4"],
            env=full,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO_ROOT,
            start_new_session=True,
        )
        try:
            assert wait_for(lambda: starts(log) > before or proc.poll() is not None, 60), "scheduler did not start"
            assert proc.poll() is None, log.read_text()[-2000:]
            yield proc
        finally:
            kill9(proc)


def starts(log: Path) -> int:
    """How many times a scheduler logged that it started (its first line, printed before the loop)."""
    return log.read_text(errors="replace").count("soar scheduler:") if log.exists() else 0


def kill9(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=20)


def alerted(store: Store) -> list[str]:
    return [e for r in store.find("alerts", limit=100_000) for e in r.doc["event_ids"]]


def counted(store: Store) -> dict[str, int]:
    """Per rule: alerts_total of its checkpoint minus its alerts in the store (0 when the counter is exact)."""
    off: dict[str, int] = {}
    for rec in store.find("checkpoints", limit=10_000):
        off[rec.id] = int(rec.doc.get("alerts_total", 0)) - store.count("alerts", {"rule.id": rec.id})
    return off


@contextmanager
def store_backend(backend: str, es: Elasticsearch, sqlite: SQLiteStore) -> Iterator[tuple[Store, dict[str, str]]]:
    """The store the processes share (and the env that selects it); the Elasticsearch one under its own prefix."""
    if backend == "sqlite":
        yield sqlite, {}
        return
    prefix = f"soar-kill-{uuid.uuid4().hex[:8]}"
    try:
        yield ElasticsearchStore(es, prefix), {"SOAR_STORE": "elasticsearch", "SOAR_INDEX_PREFIX": prefix}
    finally:
        es.options(ignore_status=404).indices.delete(index=f"{prefix}-*")
        es.options(ignore_status=404).indices.delete_index_template(name=f"{prefix}-state")


@pytest.mark.parametrize("backend", ["sqlite", "elasticsearch"])
def test_kill_9_scheduler_and_worker_trials_miss_nothing_and_duplicate_nothing(
    es: Elasticsearch,
    events_index: str,
    content: Path,
    store: SQLiteStore,
    write_rule: Callable[..., str],
    redis,  # type: ignore[no-untyped-def]
    backend: str,
) -> None:
    with store_backend(backend, es, store) as (view, store_env):
        _kill_trials(es, events_index, content, view, write_rule, store_env, *KILLS[backend])


def _kill_trials(
    es: Elasticsearch,
    events_index: str,
    content: Path,
    store: Store,
    write_rule: Callable[..., str],
    store_env: dict[str, str],
    scheduler_kills: int,
    worker_kills: int,
) -> None:
    rule_id = write_rule(interval="1s", lookback="10s")
    flush_db(DB_KILL)
    env = detection_env(content, events_index, DB_KILL) | store_env
    rng = random.Random(4)  # reproducible kill points
    logs = content / "logs"
    logs.mkdir()
    trials = 0
    with running_worker(DB_KILL, env, concurrency=1), scheduler_process(env, logs / "scheduler.log"):
        # The rule's first run sets its checkpoint; from then on nothing may be missed.
        assert wait_for(lambda: store.get("checkpoints", rule_id) is not None, 30)
    with EventStream(es, events_index, period=0.3, late_by=6.0) as stream:
        # Scheduler trials: a worker stays up, the scheduler is killed at a random point and restarted.
        with running_worker(DB_KILL, env, concurrency=1, log_path=logs / "worker.log"):
            for _ in range(scheduler_kills):
                with scheduler_process(env, logs / "scheduler.log") as sched:
                    time.sleep(rng.uniform(0.2, 2.5))
                    assert sched.poll() is None, (logs / "scheduler.log").read_text()[-2000:]
                trials += 1
        # Worker trials: the scheduler stays up, the worker is killed (with its pool) mid-stream.
        with scheduler_process(env, logs / "scheduler.log"):
            for _ in range(worker_kills):
                with running_worker(DB_KILL, env, concurrency=1, log_path=logs / "worker.log"):
                    time.sleep(rng.uniform(0.5, 2.5))
                trials += 1
            stream.stop()
            with running_worker(DB_KILL, env, concurrency=1, log_path=logs / "worker.log"):
                expected = sorted(stream.ids)
                done = wait_for(lambda: sorted(alerted(store)) == expected, 60, step=0.5)
                assert done, f"missed: {sorted(set(expected) - set(alerted(store)))[:20]}"
    assert trials == scheduler_kills + worker_kills
    assert not stream.errors
    ids = alerted(store)
    assert len(ids) == len(set(ids)) == len(expected) == store.count("alerts")  # 0 missed, 0 duplicate
    assert store.count("alerts", {"dispatched": True}) == len(expected)  # every alert handed to the playbooks
    assert len(expected) > 5 * trials / 2
    # exact: every alert counted once, those of a cycle killed before its checkpoint write by the next one
    assert wait_for(lambda: counted(store) == {rule_id: 0}, 10), counted(store)
    assert not store.find("gaps", {"status": "open"})


def test_two_schedulers_at_once_never_duplicate(
    es: Elasticsearch, events_index: str, content: Path, store: SQLiteStore, write_rule: Callable[..., str], redis
) -> None:  # type: ignore[no-untyped-def]
    write_rule("a", interval="1s", lookback="10s")
    write_rule("b", interval="2s", lookback="10s")
    flush_db(DB_TWO)
    env = detection_env(content, events_index, DB_TWO)
    logs = content / "logs"
    logs.mkdir()
    with (
        running_worker(DB_TWO, env, concurrency=2, log_path=logs / "worker.log"),
        scheduler_process(env, logs / "s1.log"),
        scheduler_process(env, logs / "s2.log"),
    ):
        with EventStream(es, events_index, period=0.2) as stream:
            time.sleep(8)
        expected = sorted(stream.ids)
        assert wait_for(lambda: store.count("alerts") >= 2 * len(expected), 40, step=0.5)
        time.sleep(3)  # both schedulers keep running over the same windows
    alerts = [r.doc for r in store.find("alerts", limit=100_000)]
    per_rule: dict[str, list[str]] = {}
    for a in alerts:
        per_rule.setdefault(a["rule"]["id"], []).extend(a["event_ids"])
    assert len(per_rule) == 2
    for ids in per_rule.values():
        assert sorted(ids) == expected  # each rule: every event once
    assert set(counted(store).values()) == {0}  # two schedulers' cycles never lose a count
