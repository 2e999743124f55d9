"""The hand-off to the playbook engine: Celery task soar.playbooks.handle_alert(alert_id), sent by name."""

from __future__ import annotations

import base64
import json
import uuid

import redis as redis_lib

from soar.config import load_settings
from soar.dispatch import Task
from soar.scheduler.runtime import alert_handoff
from tests.workers import flush_db, redis_url_for_db

DB = 4


def test_new_alert_is_sent_to_the_response_queue(redis: redis_lib.Redis) -> None:
    from soar.celery_app import configure

    flush_db(DB)
    settings = load_settings(redis_url=redis_url_for_db(DB), celery_eager=False)
    configure(settings)
    try:
        alert_id = uuid.uuid4().hex
        alert_handoff(settings)(alert_id)
        client = redis_lib.Redis.from_url(redis_url_for_db(DB))
        raw = client.lrange(settings.response_queue, 0, -1)
        assert len(raw) == 1
        message = json.loads(raw[0])
        assert message["headers"]["task"] == Task.HANDLE_ALERT
        assert json.loads(base64.b64decode(message["body"]))[0] == [alert_id]
    finally:
        configure(load_settings())
        flush_db(DB)
