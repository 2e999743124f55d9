"""The outbox and threads on the production store (Elasticsearch indices), not only the embedded SQLite one."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from elasticsearch import Elasticsearch

from soar.config import Settings
from soar.notify import deliver, notify_run_event
from soar.notify.outbox import KIND, listing
from soar.playbooks.events import make_event
from soar.store import Store, open_store
from tests.integration.notify.standin import Workspace


@pytest.fixture
def es_store(slack_settings: Settings, es: Elasticsearch) -> Iterator[tuple[Settings, Store]]:
    prefix = f"soar-test-{uuid.uuid4().hex[:10]}"
    settings = slack_settings.model_copy(update={"store": "elasticsearch", "index_prefix": prefix})
    store = open_store(settings)
    yield settings, store
    store.close()
    es.options(ignore_status=404).indices.delete(index=f"{prefix}-*")


def test_a_thread_survives_an_outage_on_the_elasticsearch_store(
    es_store: tuple[Settings, Store], workspace: Workspace
) -> None:
    settings, store = es_store
    run = {
        "id": "run-es",
        "playbook": {"name": "p"},
        "status": "running",
        "alert": {"id": uuid.uuid4().hex, "rule": {"id": "r", "title": "ES alert", "level": "high"}},
    }
    workspace.outage(True)
    notify_run_event(settings, store, make_event("run_started", run))
    notify_run_event(settings, store, make_event("step_finished", run, step={"id": "s", "uses": "x", "status": "ok"}))
    assert {m.status for m in listing(store)} == {"pending"}
    workspace.outage(False)
    for message in listing(store, ["pending"]):
        message.next_attempt_at = 0
        store.put(KIND, message.key, message.to_doc())
    for record in store.find("notify_channels"):
        store.put("notify_channels", record.id, {**record.doc, "blocked_until": 0})
    report = deliver(settings, store, "#soc-alerts")
    assert report.sent == 4 and report.superseded == 1  # card, 2 replies, the newest of 2 card updates
    (card,) = workspace.top_level()
    assert [r["text"] for r in workspace.replies(card["ts"])] == ["run_started running", "step s ok"]
    assert "ok" in str(card["blocks"]) and len(card["edits"]) == 1
