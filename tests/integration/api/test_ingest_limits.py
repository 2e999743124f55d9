"""Ingest refuses a body or a single string over its configured limit with 413 naming the limit, before any
model is built or anything is stored."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from soar.store import open_store
from tests.integration.api.conftest import Api, _api
from tests.integration.api.lab_content import auth


def _alert(**extra: Any) -> dict[str, Any]:
    # a rule no playbook of the lab content triggers on: an accepted alert only is stored
    return {"id": "ext-1", "rule": {"id": "limits-rule", "title": "Limits", "level": "low"}, **extra}


def _stored(api: Api) -> tuple[int, int]:
    store = open_store(api.settings)
    try:
        return store.count("alerts"), store.count("audit")
    finally:
        store.close()


@pytest.fixture
def small(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Api]:
    limits = {"SOAR_INGEST_MAX_REQUEST_BYTES": "4096", "SOAR_INGEST_MAX_FIELD_BYTES": "256"}
    with _api(tmp_path, monkeypatch, limits) as app:
        yield app


def test_a_body_over_the_limit_is_413_naming_it_declared_or_streamed(small: Api) -> None:
    body = json.dumps(_alert(events=[{"message": "x" * 200}] * 25)).encode()
    assert len(body) > 4096
    expected = {"detail": "request body is over ingest_max_request_bytes (4096 bytes)"}
    declared = small.client.post("/ingest/alerts", content=body, headers=auth("responder"))
    assert (declared.status_code, declared.json()) == (413, expected)
    chunks = (body[i : i + 1000] for i in range(0, len(body), 1000))  # no Content-Length: counted as it arrives
    streamed = small.client.post("/ingest/alerts", content=chunks, headers=auth("responder"))
    assert (streamed.status_code, streamed.json()) == (413, expected)
    assert _stored(small) == (0, 0)  # nothing stored, nothing audited


@pytest.mark.parametrize(
    ("alert", "where"),
    [
        (_alert(events=[{"ok": 1}, {"message": "x" * 257}]), "body.events[1].message"),
        (_alert(user={"name": "€" * 100}), "body.user.name"),  # 100 characters, 300 UTF-8 bytes
        (_alert(host={"k" * 300: "v"}), "a key in body.host"),
        (_alert(id="i" * 257), "body.id"),
    ],
)
def test_a_string_over_the_field_limit_is_413_naming_where(small: Api, alert: dict[str, Any], where: str) -> None:
    refused = small.client.post("/ingest/alerts", json=alert, headers=auth("responder"))
    assert refused.status_code == 413
    assert refused.json() == {"detail": f"{where} is over ingest_max_field_bytes (256 bytes)"}
    assert _stored(small) == (0, 0)


def test_within_the_limits_the_alert_is_ingested(small: Api) -> None:
    alert = _alert(host={"name": "web1"}, user={"name": "€" * 85}, events=[{"message": "x" * 256}] * 10)  # 255 B, 256 B
    created = small.client.post("/ingest/alerts", json=alert, headers=auth("responder"))
    assert created.status_code == 201, created.text
    assert _stored(small)[0] == 1


def test_the_defaults_refuse_a_30_mb_field_and_an_11_mib_body(api: Api) -> None:
    big = api.client.post("/ingest/alerts", json=_alert(events=[{"message": "x" * 30_000_000}]), headers=auth("admin"))
    assert big.status_code == 413
    assert big.json() == {"detail": "request body is over ingest_max_request_bytes (10485760 bytes)"}
    field = api.client.post("/ingest/alerts", json=_alert(user={"name": "x" * 70_000}), headers=auth("admin"))
    assert field.json() == {"detail": "body.user.name is over ingest_max_field_bytes (65536 bytes)"}
    assert _stored(api) == (0, 0)


def test_the_limit_is_in_the_openapi_spec(api: Api) -> None:
    spec = api.client.get("/openapi.json").json()
    assert "413" in spec["paths"]["/ingest/alerts"]["post"]["responses"]
