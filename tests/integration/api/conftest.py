"""An API app (eager tasks) over the lab content root, on the embedded store or on Elasticsearch."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch
from fastapi.testclient import TestClient

from soar.config import Settings, get_settings
from tests.integration.api.lab_content import write_content

SECRETS = {
    "SOAR_ELASTICSEARCH_PASSWORD": "es-pass-Zq81-very-secret",
    "SOAR_AUDIT_HMAC_KEY": "hmac-key-Xy55-very-secret",
    "SOAR_SLACK_SIGNING_SECRET": "slack-signing-Qq77-very-secret",
    "SOAR_INTEGRATION__LABTEST__PASSWORD": "labtest-pass-Kk42-very-secret",
}


@dataclass
class Api:
    client: TestClient
    settings: Settings
    root: Path


@contextmanager
def _api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra_env: dict[str, str]) -> Iterator[Api]:

    before = get_settings()  # the app goes back to these settings' Redis after
    root = tmp_path / "content"
    tokens = write_content(root)
    env = {
        "SOAR_CONTENT_ROOT": str(root),
        "SOAR_STATE_DIR": str(tmp_path / "state"),
        "SOAR_CELERY_EAGER": "true",
        "SOAR_API_TOKENS_FILE": str(tokens),
        "SOAR_POLICY_FILE": str(root / "policy.yml"),
        **SECRETS,
        **extra_env,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    settings = get_settings()
    import soar.tasks.notify
    import soar.tasks.playbooks  # noqa: F401  (registers the tasks eager mode calls)
    from soar.api.app import create_app
    from soar.celery_app import configure
    from soar.playbooks.dispatch import forget_runtimes

    configure(settings)
    forget_runtimes()
    try:
        with TestClient(create_app(settings), raise_server_exceptions=False) as client:
            yield Api(client, settings, root)
    finally:
        forget_runtimes()
        get_settings.cache_clear()
        configure(before)


@pytest.fixture
def api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Api]:
    """The embedded store (SQLite)."""
    with _api(tmp_path, monkeypatch, {}) as app:
        yield app


@pytest.fixture
def es_api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, es: Elasticsearch) -> Iterator[Api]:
    """The production store: Elasticsearch indices under a throwaway prefix, deleted after."""
    prefix = f"soar-test-{uuid.uuid4().hex[:10]}"
    try:
        with _api(tmp_path, monkeypatch, {"SOAR_STORE": "elasticsearch", "SOAR_INDEX_PREFIX": prefix}) as app:
            yield app
    finally:
        es.options(ignore_status=404).indices.delete(index=f"{prefix}-state-*")
        es.options(ignore_status=404).indices.delete_index_template(name=f"{prefix}-state")


def stored_text(app: Api, es: Elasticsearch | None = None) -> str:
    """Everything the store holds, as text: the SQLite files, or every document of the state indices."""
    if app.settings.store == "elasticsearch":
        assert es is not None
        index = f"{app.settings.index_prefix}-state-*"
        es.indices.refresh(index=index)
        hits = es.search(index=index, size=10_000, query={"match_all": {}})["hits"]["hits"]
        assert hits, "the store is empty"
        return json.dumps([h["_source"] for h in hits])
    files = [p for p in app.settings.state_dir.rglob("*") if p.is_file()]
    return b"".join(p.read_bytes() for p in files).decode("utf-8", "replace")


def contained_incident(api: Api) -> tuple[str, str]:
    """Ingest an alert, approve its containment; the (alert id, run id) of the finished run."""
    from tests.integration.api.lab_content import auth

    alert = {
        "id": "kibana-page",
        "rule": {"id": "lab-rule-1", "title": "Lab rule <b>bold</b>", "level": "critical"},
        "first_event_time": "2026-11-28T09:58:00Z",
        "host": {"name": "web1"},
        "user": {"name": "<script>alert(1)</script>"},
        "source": {"ip": "203.0.113.9"},
        "attributes": {"env": "prod"},
    }
    created = api.client.post("/ingest/alerts", json=alert, headers=auth("responder"))
    assert created.status_code == 201, created.text
    alert_id = created.json()["id"]
    run_id = api.client.get("/runs", params={"alert_id": alert_id}, headers=auth("viewer")).json()[0]["id"]
    decided = api.client.post(f"/runs/{run_id}/approvals/isolate", json={"decision": "approve"}, headers=auth("admin"))
    assert decided.status_code == 200, decided.text
    return alert_id, run_id
