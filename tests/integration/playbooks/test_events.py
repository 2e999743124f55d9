"""Run events reach the broker as ``soar.notify.run_event(run_id, event)`` tasks of the agreed shape."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
import redis as redis_lib

from soar import celery_app
from soar.config import Settings, get_settings
from soar.playbooks import dispatch, engine
from soar.playbooks.approvals import decide
from tests.playbook_kit import Content, alert, content_env
from tests.workers import flush_db, redis_url_for_db

DB = 8


@pytest.fixture
def broker_settings(content: Content, redis: redis_lib.Redis, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    flush_db(DB)
    for key, value in content_env(content, eager=False, redis_db=DB).items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    settings = get_settings()
    celery_app.configure(settings)
    dispatch.forget_runtimes()
    yield settings
    dispatch.forget_runtimes()
    monkeypatch.undo()
    get_settings.cache_clear()
    celery_app.configure(get_settings())
    flush_db(DB)


def _queued(queue: str) -> list[tuple[str, list[Any]]]:
    r = redis_lib.Redis.from_url(redis_url_for_db(DB))
    out = []
    for raw in reversed(r.lrange(queue, 0, -1)):  # LPUSH: oldest last
        msg = json.loads(raw)
        args = json.loads(base64.b64decode(msg["body"]))[0]
        out.append((msg["headers"]["task"], args))
    return out


def test_every_run_event_is_sent_to_the_notifier(content: Content, broker_settings: Settings) -> None:
    content.playbook(
        "contain",
        """\
        name: contain
        trigger: {rules: [rule-contain]}
        steps:
          - id: contain
            uses: testkit.contain
            with: {host: "{{ alert.host.name }}"}
        """,
    )
    rt = dispatch.runtime_for(broker_settings)
    doc = alert("ev-1", host="web1")  # prod: needs approval
    rt.store.create(engine.ALERTS, doc["id"], doc)
    run_id = engine.handle_alert(rt, doc["id"])[0]
    dispatch.drive(rt, run_id)
    decide(broker_settings, rt.store, run_id, "contain", approver="bob", role="approver", decision="approve", via="api")
    dispatch.drive(rt, run_id)  # what the advance task queued by decide() does on a worker
    tasks = _queued(broker_settings.response_queue)
    notifications = _queued(broker_settings.notify_queue)  # apart, so Slack never delays a step
    assert not any(name == "soar.notify.run_event" for name, _ in tasks)
    events = [args[1] for name, args in notifications if name == "soar.notify.run_event"]
    assert all(args[0] == run_id for name, args in notifications if name == "soar.notify.run_event")
    assert [e["type"] for e in events] == [
        "run_started",
        "approval_requested",
        "approval_decided",
        "step_started",
        "step_finished",
        "verification",
        "run_finished",
    ]
    for e in events:
        assert {"type", "run_id", "playbook", "alert", "at", "status", "dry_run"} <= set(e)
        assert e["dry_run"] is False  # a live run: the card may say succeeded
        assert e["alert"]["host"] == {"name": "web1"} and e["alert"]["rule"]["id"] == "rule-contain"
    requested = events[1]["approval"]
    assert requested["required"] == 1 and requested["step"] == "contain" and requested["expires_at"]
    assert events[2]["approval"]["approvers"] == ["bob"] and events[2]["approval"]["status"] == "approved"
    assert events[4]["step"] == {
        "id": "contain",
        "uses": "testkit.contain",
        "status": "succeeded",
        "summary": "done, verified",
        "dry_run": False,
    }
    assert events[-1]["status"] == "succeeded"
    assert ("soar.playbooks.advance", [run_id]) in tasks  # decide() resumed the run on the response queue
