"""Redis stopped and started again under load: scheduler and worker ride it out, 0 missed, 0 duplicate (#21).

Real processes (``soar scheduler``, ``soar worker``) on a Redis of this test's own (a private port and
directory: the shared one stays up), the SQLite store, events streaming into real Elasticsearch.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from elasticsearch import Elasticsearch

from soar.store.sqlite import SQLiteStore
from tests.faults import PrivateRedis
from tests.integration.scheduler.conftest import wait_for
from tests.integration.scheduler.streaming import EventStream
from tests.integration.scheduler.test_kill import alerted, counted, detection_env, scheduler_process
from tests.workers import running_worker

REDIS_OUTAGE = 6.0


def test_redis_stopped_and_restarted_under_load(
    es: Elasticsearch, events_index: str, content: Path, store: SQLiteStore, write_rule: Callable[..., str]
) -> None:
    rule_id = write_rule(interval="1s", lookback="10s")
    logs = content / "logs"
    logs.mkdir()
    with PrivateRedis(content / "redis") as redis_:
        env = detection_env(content, events_index, 0) | {"SOAR_REDIS_URL": redis_.url}
        with (
            running_worker(0, env, concurrency=1, log_path=logs / "worker.log", redis_url=redis_.url) as worker,
            scheduler_process(env, logs / "scheduler.log") as scheduler,
        ):
            assert wait_for(lambda: store.get("checkpoints", rule_id) is not None, 30)
            with EventStream(es, events_index, period=0.3, late_by=3.0) as stream:
                assert wait_for(lambda: len(alerted(store)) >= 3, 20), "no alerts before the outage"
                redis_.stop()
                time.sleep(REDIS_OUTAGE)
                during = len(alerted(store))
                assert scheduler.poll() is None and worker.poll() is None  # neither exits while Redis is away
                redis_.start()
                time.sleep(3)
            expected = sorted(stream.ids)
            done = wait_for(lambda: sorted(alerted(store)) == expected, 60, step=0.5)
            assert done, f"missed: {sorted(set(expected) - set(alerted(store)))[:20]}"
            assert scheduler.poll() is None and worker.poll() is None
            assert wait_for(lambda: store.count("alerts", {"dispatched": True}) == len(expected), 30)
    assert not stream.errors
    ids = alerted(store)
    assert len(ids) == len(set(ids)) == len(expected) == store.count("alerts")  # 0 missed, 0 duplicate
    assert len(expected) > during  # events of the outage were alerted after it
    assert counted(store) == {rule_id: 0}  # alerts_total exact
    assert not store.find("gaps", {"status": "open"})
    text = (logs / "scheduler.log").read_text(errors="replace")
    assert text.count(" is down: ") == 1 and text.count(" is back after ") == 1, text[-3000:]  # one line each
    assert "Traceback" not in text
