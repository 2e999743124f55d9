"""/health: the process answers; /ready: it can serve (its store; Redis unless eager), naming what is down."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch

from tests.integration.api.conftest import Api, _api
from tests.integration.scheduler.proxy import CuttableProxy


def test_ready_when_the_store_answers(es_api: Api) -> None:
    assert es_api.client.get("/health").status_code == 200
    ready = es_api.client.get("/ready")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"


@pytest.fixture
def cut_api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, es: Elasticsearch) -> Iterator[tuple[Api, CuttableProxy]]:
    """The Elasticsearch store behind a proxy this test cuts and restores."""
    from soar.config import get_settings

    target = get_settings().elasticsearch_url.removeprefix("http://").split(":")
    proxy = CuttableProxy(target[0], int(target[1]) if len(target) > 1 else 9200).start()
    env = {"SOAR_STORE": "elasticsearch", "SOAR_INDEX_PREFIX": "soar-test-ready", "SOAR_ELASTICSEARCH_URL": proxy.url}
    try:
        with _api(tmp_path, monkeypatch, env) as app:
            yield app, proxy
    finally:
        proxy.close()
        es.options(ignore_status=404).indices.delete(index="soar-test-ready-state-*")


def test_not_ready_while_the_store_is_down_and_ready_again_after(cut_api: tuple[Api, CuttableProxy]) -> None:
    app, proxy = cut_api
    assert app.client.get("/ready").status_code == 200
    proxy.cut()
    down = app.client.get("/ready")
    assert down.status_code == 503 and down.json()["status"] == "not ready"
    assert "ConnectionError" in down.json()["down"]["store"]
    assert app.client.get("/health").status_code == 200  # alive all the same: a supervisor must not restart it
    proxy.restore()
    assert app.client.get("/ready").status_code == 200
