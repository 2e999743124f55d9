"""Redis stopped and started again under load: scheduler and worker ride it out, 0 missed, 0 duplicate (#21).

Real processes (``soar scheduler``, ``soar worker``) on a Redis of this test's own (a private port and
directory: the shared one stays up), the SQLite store, events streaming into real Elasticsearch.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import redis
from elasticsearch import Elasticsearch

from soar.dispatch import CeleryDispatcher, Task
from soar.store.sqlite import SQLiteStore
from tests.faults import PrivateRedis
from tests.integration.scheduler.conftest import wait_for
from tests.integration.scheduler.proxy import CuttableProxy
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


BLACK_HOLE = 8.0


def test_a_black_holed_broker_costs_a_publish_at_most_the_tick_budget(tmp_path: Path) -> None:
    """Redis that accepts connections and never answers (a proxy black-holing a private redis-server): a task
    sent meanwhile fails within the scheduler's tick budget, as the tick's other requests do, so the ticks go
    on at that pace (before: the first publish waited forever); when Redis answers again a send gets through."""
    from soar import celery_app
    from soar.config import get_settings, load_settings
    from soar.dispatch import configure

    with PrivateRedis(tmp_path / "redis") as redis_:
        proxy = CuttableProxy("127.0.0.1", redis_.port).start()
        settings = load_settings(redis_url=f"redis://127.0.0.1:{proxy.port}/0", detection_interval=1.0)
        budget = settings.cycle_request_timeout
        configure(settings)
        sent = failed = 0
        try:
            assert CeleryDispatcher().send(Task.PING, ["before"], queue="outage-probe")
            proxy.black_hole()
            stop = time.monotonic() + BLACK_HOLE
            while time.monotonic() < stop:  # the scheduler's sends, one a tick
                try:
                    CeleryDispatcher().send(Task.PING, ["during"], queue="outage-probe")
                    sent += 1
                except Exception:
                    failed += 1
            proxy.restore_hole()
            assert wait_for(lambda: _sends(CeleryDispatcher(), "after"), 30)
        finally:
            proxy.close()
            configure(get_settings())
            celery_app.configure(get_settings())
        queued = redis.Redis(port=redis_.port).llen("outage-probe")
    assert sent == 0  # nothing reached a Redis that answers nothing
    # each failed within the budget (and its retry's pause): the ticks go on at that pace through the hole
    assert failed >= int(BLACK_HOLE // (budget + 1.0)), (failed, budget)
    assert queued == 2  # the one before and the one after; none half-sent during the hole


def _sends(dispatcher: CeleryDispatcher, token: str) -> bool:
    try:
        return dispatcher.send(Task.PING, [token], queue="outage-probe")
    except Exception:
        return False
