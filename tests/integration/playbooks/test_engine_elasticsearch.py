"""The same run, approval and dedup on the production store: Elasticsearch indices."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from elasticsearch import Elasticsearch

from soar import celery_app
from soar.config import Settings, get_settings
from soar.playbooks import dispatch, engine
from soar.playbooks.approvals import decide
from soar.playbooks.records import RUNS
from tests.playbook_kit import Content, alert, content_env
from tests.playbook_kit.testkit import calls


@pytest.fixture
def es_settings(
    content: Content, es: Elasticsearch, es_index: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Settings]:
    for key, value in {**content_env(content), "SOAR_STORE": "elasticsearch", "SOAR_INDEX_PREFIX": es_index}.items():
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


def test_run_with_approval_on_elasticsearch_store(content: Content, es_settings: Settings, es: Elasticsearch) -> None:
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
            with: {text: "contained {{ alert.host.name }}"}
        """,
    )
    rt = dispatch.runtime_for(es_settings)
    assert type(rt.store).__name__ == "ElasticsearchStore"
    for doc in (alert("es-1", host="dev1"), alert("es-2", host="web1")):
        rt.store.create(engine.ALERTS, doc["id"], doc)
        for run_id in engine.handle_alert(rt, doc["id"]):
            dispatch.kick(es_settings, run_id, runtime=rt)
        assert engine.handle_alert(rt, doc["id"]) == []
    runs = {r.doc["alert_id"]: r.doc for r in rt.store.find(RUNS)}
    assert runs["es-1"]["status"] == "succeeded" and runs["es-2"]["status"] == "waiting_approval"
    es.indices.refresh(index=f"{es_settings.index_prefix}-state-*")
    out = decide(
        es_settings,
        rt.store,
        runs["es-2"]["id"],
        "contain",
        approver="bob",
        role="admin",
        decision="approve",
        via="api",
    )
    assert out.status == "approved"
    rec = rt.store.get(RUNS, runs["es-2"]["id"])
    assert rec is not None and rec.doc["status"] == "succeeded"
    assert [c["host"] for c in calls(content.state) if c["action"] == "testkit.contain"] == ["dev1", "web1"]
