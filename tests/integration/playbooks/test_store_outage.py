"""Elasticsearch (the state store) goes away under a real worker handling alerts, then comes back.

The worker reaches Elasticsearch through a loopback proxy (tests/integration/scheduler/proxy.py) that refuses
or black-holes it for a while; its broker is a private redis-server. The response tasks that meet the
outage are retried with backoff, not failed: every alert gets exactly one run, every run finishes, the
non-idempotent containment (``testkit.lock``, a harmless file write) runs at most once per run and once in
every run that shows it succeeded, and the worker says the store went down and came back in a line each
(per pool process), without a traceback.

The outage lasts 15 s under CI=true (five backoff steps); locally ``TEST_ES_OUTAGE_SECONDS`` (default 8).
"""

from __future__ import annotations

import os
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from celery import Celery
from elasticsearch import Elasticsearch

from soar.config import Settings, load_settings
from soar.playbooks.engine import ALERTS
from soar.playbooks.records import RUNS
from soar.store import Store, open_store
from tests.faults import PrivateRedis
from tests.integration.scheduler.proxy import CuttableProxy
from tests.playbook_kit import Content, alert, content_env, wait_for
from tests.playbook_kit.testkit import calls
from tests.services import IN_CI
from tests.workers import running_worker

OUTAGE_SECONDS = 15.0 if IN_CI else float(os.environ.get("TEST_ES_OUTAGE_SECONDS", "8"))
ALERTS_SENT = 10
CONCURRENCY = 2
FINISHED = ("succeeded", "failed", "rolled_back")
READY_AGAIN = "the state store (elasticsearch) for the worker's readiness is back after"

PLAYBOOK = """\
name: outage
trigger: {rules: [rule-contain]}
steps:
  - id: first
    uses: testkit.note
    with: {text: "start {{ alert.id }}"}
  - id: slow
    uses: testkit.sleep
    with: {seconds: 1, marker: "{{ alert.id }}"}
  - id: lock
    uses: testkit.lock
    with: {user: "{{ alert.user.name }}"}
  - id: last
    uses: testkit.note
    with: {text: "done {{ alert.id }}"}
"""


@pytest.fixture
def es_store(content: Content, es: Elasticsearch, service_settings: Settings) -> Iterator[tuple[Store, str]]:
    """The test's own view of a fresh Elasticsearch store (direct, not through the proxy), and its prefix."""
    prefix = f"soar-wout-{uuid.uuid4().hex[:8]}"
    settings = load_settings(
        content_root=content.root, state_dir=content.state, store="elasticsearch", index_prefix=prefix,
        elasticsearch_url=service_settings.elasticsearch_url,
    )  # fmt: skip
    store = open_store(settings)
    yield store, prefix
    store.close()
    es.options(ignore_status=404).indices.delete(index=f"{prefix}-*")
    es.options(ignore_status=404).indices.delete_index_template(name=f"{prefix}-state")


def _runs(store: Store) -> list[dict[str, Any]]:
    return [r.doc for r in store.find(RUNS, limit=1000)]


def _all_finished(store: Store) -> list[dict[str, Any]] | None:
    runs = _runs(store)
    return runs if len(runs) >= ALERTS_SENT and all(r["status"] in FINISHED for r in runs) else None


@pytest.mark.parametrize("fault", ["refused", "black hole"])
def test_store_outage_under_the_worker_loses_no_run_and_repeats_no_containment(
    content: Content,
    es_store: tuple[Store, str],
    service_settings: Settings,
    tmp_path: Path,
    fault: str,
) -> None:
    store, prefix = es_store
    content.playbook("outage", PLAYBOOK)
    ids = [f"out-{i}" for i in range(ALERTS_SENT)]
    for i, alert_id in enumerate(ids):
        doc = alert(alert_id, host="dev1", user=f"user{i}")
        store.create(ALERTS, alert_id, doc)
    target = urlparse(service_settings.elasticsearch_url)
    proxy = CuttableProxy(target.hostname or "127.0.0.1", target.port or 9200).start()
    log = tmp_path / "worker.log"
    with PrivateRedis(tmp_path / "redis") as broker:
        env = content_env(content, eager=False) | {
            "SOAR_REDIS_URL": broker.url,
            "SOAR_STORE": "elasticsearch",
            "SOAR_INDEX_PREFIX": prefix,
            "SOAR_ELASTICSEARCH_URL": proxy.url,
            "SOAR_ELASTICSEARCH_TIMEOUT": "3",  # a black-holed request costs its task 3 s, then a retry
        }
        client = Celery("client", broker=broker.url)
        try:
            with running_worker(0, env, concurrency=CONCURRENCY, log_path=log, redis_url=broker.url):
                for alert_id in ids:
                    client.send_task("soar.playbooks.handle_alert", args=[alert_id], queue="response")
                # the outage starts with runs in flight: one finished (the store's indices all made), others
                # mid-step or not started
                wait_for(lambda: any(r["status"] == "succeeded" for r in _runs(store)), 60, "a first run done")
                proxy.cut() if fault == "refused" else proxy.black_hole()
                time.sleep(OUTAGE_SECONDS)
                proxy.restore() if fault == "refused" else proxy.restore_hole()
                runs = wait_for(lambda: _all_finished(store), 240, "every run finished after the outage")
                wait_for(  # the heartbeat looks every 10 s: ready again within a beat or two of the store's return
                    lambda: READY_AGAIN in log.read_text(encoding="utf-8", errors="replace"), 60, "worker ready again"
                )
        finally:
            client.close()
            proxy.close()
    text = log.read_text(encoding="utf-8", errors="replace")
    # exactly one run per alert, each finished (not lost, not waiting for a restart)
    assert sorted(r["alert_id"] for r in runs) == sorted(ids)
    assert all(r["status"] in FINISHED for r in runs), [(r["alert_id"], r["status"]) for r in runs]
    # the non-idempotent containment: at most once per run, and once in every run that shows it done
    locks = Counter(c["user"] for c in calls(content.state) if c["action"] == "testkit.lock")
    assert all(n == 1 for n in locks.values()), locks
    for r in runs:
        user = r["alert"]["user"]["name"]
        inst = r["steps"]["lock"]["instances"][0] if "lock" in r["steps"] else None
        if inst is not None and inst["status"] == "succeeded":
            assert locks[user] == 1, (r["alert_id"], locks)
            assert [a["status"] for a in inst["attempts"]] == ["succeeded"]
        else:  # only a lock interrupted by the outage may be unfinished, and then it was not run again
            assert locks[user] <= 1, (r["alert_id"], r["status"], inst)
    for r in runs:  # a run fails only where a worker lost at that moment would: its lock interrupted, not redone
        if r["status"] != "succeeded":
            attempts = [a["status"] for a in r["steps"]["lock"]["instances"][0]["attempts"]]
            assert attempts == ["interrupted"], (r["alert_id"], r["status"], r.get("error"), attempts)
    # the outage met the worker: it said so once per pool process, and that the store is back; no traceback
    down = text.count("the state store (elasticsearch) is down")
    back = text.count("the state store (elasticsearch) is back after")
    assert 1 <= down <= CONCURRENCY, text[-4000:]
    assert 1 <= back <= CONCURRENCY, text[-4000:]
    assert "Traceback" not in text, text[-6000:]
    assert "retry: Retry in" not in text  # the tasks' retries are said by the down and back lines, not one each
    # the worker's heartbeat said not ready while the store was away, and ready again after
    assert text.count("the state store (elasticsearch) for the worker's readiness is down") == 1, text[-4000:]
    assert text.count(READY_AGAIN) == 1, text[-4000:]
