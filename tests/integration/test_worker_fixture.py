"""The worker helper itself: a fresh worker on its own Redis db runs the current code."""

from __future__ import annotations

import os
import uuid

from celery import Celery

from tests.workers import flush_db, redis_url_for_db, running_worker

DB = 1


def test_private_worker_runs_tasks_and_dies_cleanly(redis) -> None:  # type: ignore[no-untyped-def]
    flush_db(DB)
    with running_worker(DB, concurrency=1) as proc:
        client = Celery("client", broker=redis_url_for_db(DB), backend=redis_url_for_db(DB))
        token = uuid.uuid4().hex
        reply = client.send_task("soar.system.ping", args=[token], queue="default").get(timeout=30)
        assert reply["token"] == token
        assert reply["pid"] != os.getpid()
        client.close()
    assert proc.poll() is not None
