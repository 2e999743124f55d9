"""A process pointed at another Redis sends there: nothing still leads to the Redis it used before."""

from __future__ import annotations

import uuid
from typing import Any

import redis as redis_lib

from soar.config import get_settings, load_settings
from soar.dispatch import CeleryDispatcher, Task
from tests.workers import redis_url_for_db

FIRST, SECOND = 4, 8  # two areas' dbs (tests/workers.py); the probe's queue is its own, and removed after


def test_a_message_sent_after_a_reconfiguration_reaches_the_new_redis(redis: Any) -> None:
    from soar import celery_app

    queue = f"reconfigure-probe-{uuid.uuid4().hex[:8]}"
    dbs = {db: redis_lib.Redis.from_url(redis_url_for_db(db)) for db in (FIRST, SECOND)}
    try:
        for db in (FIRST, SECOND):
            celery_app.configure(load_settings(redis_url=redis_url_for_db(db), celery_eager=False))
            CeleryDispatcher().send(Task.PING, [f"to {db}"], queue=queue)  # the pooled connection is warm now
            CeleryDispatcher().send(Task.PING, [f"to {db} again"], queue=queue)
        assert {db: client.llen(queue) for db, client in dbs.items()} == {FIRST: 2, SECOND: 2}
    finally:
        for client in dbs.values():
            client.delete(queue)
            client.close()
        celery_app.configure(get_settings())
