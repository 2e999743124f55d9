"""Webhook ingest on the production path: the API hands the alert to a real Celery worker (Redis db 13).

The worker starts the playbook, the API approves the containment, the worker resumes and
finishes the run; the report shows containment, and neither the worker's log nor the
store holds a configured secret.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from soar.config import get_settings
from tests.integration.api.conftest import SECRETS
from tests.integration.api.lab_content import TOKENS, auth, write_content
from tests.workers import flush_db, redis_url_for_db, running_worker

DB = 13


def wait_for(probe: Callable[[], Any], timeout: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError("timed out waiting for the worker")


@pytest.fixture
def worker_api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis: Any) -> Iterator[tuple[TestClient, Path]]:
    from soar.celery_app import configure

    before = get_settings()  # the app goes back to these settings' Redis after
    root = tmp_path / "content"
    env = {
        "SOAR_CONTENT_ROOT": str(root),
        "SOAR_STATE_DIR": str(tmp_path / "state"),
        "SOAR_API_TOKENS_FILE": str(write_content(root)),
        "SOAR_POLICY_FILE": str(root / "policy.yml"),
        "SOAR_REDIS_URL": redis_url_for_db(DB),
        **SECRETS,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    settings = get_settings()
    configure(settings)
    flush_db(DB)
    log = tmp_path / "worker.log"
    from soar.api.app import create_app

    try:
        with running_worker(DB, env, concurrency=1, log_path=log), TestClient(create_app(settings)) as client:
            yield client, log
    finally:
        flush_db(DB)
        get_settings.cache_clear()
        configure(before)


@pytest.mark.timeout(240)
def test_ingested_alert_runs_on_a_real_worker(worker_api: tuple[TestClient, Path], tmp_path: Path) -> None:
    client, log = worker_api
    alert = {
        "id": "kibana-worker-1",
        "rule": {"id": "lab-rule-1", "title": "Lab rule", "level": "high"},
        "first_event_time": "2026-11-28T09:58:00Z",
        "host": {"name": "web1"},
        "attributes": {"env": "prod"},
    }
    created = client.post("/ingest/alerts", json=alert, headers=auth("responder"))
    assert created.status_code == 201, created.text
    alert_id = created.json()["id"]

    def waiting_run() -> str | None:
        runs = client.get("/runs", params={"alert_id": alert_id}, headers=auth("viewer")).json()
        return runs[0]["id"] if runs and runs[0]["status"] == "waiting_approval" else None

    run_id = wait_for(waiting_run)
    decided = client.post(f"/runs/{run_id}/approvals/isolate", json={"decision": "approve"}, headers=auth("approver"))
    assert decided.status_code == 200 and decided.json()["status"] == "approved", decided.text

    def finished() -> dict[str, Any] | None:
        run: dict[str, Any] = client.get(f"/runs/{run_id}", headers=auth("viewer")).json()
        return run if run["status"] in ("succeeded", "failed", "rolled_back") else None

    run = wait_for(finished)
    assert run["status"] == "succeeded", run.get("error")
    report = client.get(f"/runs/{run_id}/report", headers=auth("viewer")).json()
    assert report["milestones"]["contained"] is not None
    assert [s["id"] for s in report["steps"]] == ["triage", "isolate", "release"]
    assert client.get("/audit/verify", headers=auth("viewer")).json()["ok"] is True
    # the worker attached the alert to its incident (the API process only handed it off)
    incidents = client.get("/incidents", headers=auth("viewer")).json()
    assert [(i["key"], i["alert_count"]) for i in incidents] == [({"field": "host.name", "value": "web1"}, 1)]
    shown = client.get(f"/incidents/{incidents[0]['id']}", headers=auth("viewer")).json()
    assert [a["id"] for a in shown["alerts"]] == [alert_id] and [r["id"] for r in shown["runs"]] == [run_id]

    time.sleep(0.5)  # let the worker flush its log
    written = log.read_text(errors="replace") + "".join(
        p.read_bytes().decode("utf-8", "replace") for p in (tmp_path / "state").rglob("*") if p.is_file()
    )
    assert "lab-contain" in written or run_id in written  # the log and store are really what was searched
    for secret in [*SECRETS.values(), *TOKENS.values()]:
        assert secret not in written
