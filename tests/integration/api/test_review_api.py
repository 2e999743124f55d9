"""The API end to end on the real engine: ingest → playbook → approval → containment → report, verdict, metrics.

Roles and attribute scopes are checked on every step; at the end everything written
(store files, responses, logs) is searched for the configured secrets.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from tests.integration.api.conftest import SECRETS, Api, stored_text
from tests.integration.api.lab_content import TOKENS, auth

HOSTILE = '<img src=x onerror="alert(1)">'


def _alert(**extra: Any) -> dict[str, Any]:
    return {
        "id": "kibana-123",
        "rule": {"id": "lab-rule-1", "title": "Lab rule", "level": "high"},
        "first_event_time": "2026-11-28T09:58:00Z",
        "host": {"name": "web1"},
        "user": {"name": HOSTILE},
        "source": {"ip": "203.0.113.9"},
        "attributes": {"env": "prod"},
        **extra,
    }


@pytest.mark.parametrize("store", ["sqlite", "elasticsearch"])
def test_incident_end_to_end(store: str, request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    api: Api = request.getfixturevalue("api" if store == "sqlite" else "es_api")
    c = api.client
    bodies: list[str] = []

    # -- ingest: authentication, role and tenant are enforced
    assert c.post("/ingest/alerts", json=_alert()).status_code == 401
    assert c.post("/ingest/alerts", json=_alert(), headers={"Authorization": "Bearer nope"}).status_code == 401
    refused = c.post("/ingest/alerts", json=_alert(), headers=auth("viewer"))
    assert refused.status_code == 403 and "needs role responder" in refused.json()["detail"]
    other_tenant = c.post("/ingest/alerts", json=_alert(host={"name": "stage1"}), headers=auth("responder"))
    assert other_tenant.status_code == 403 and "env=staging" in other_tenant.json()["detail"]
    created = c.post("/ingest/alerts", json=_alert(), headers=auth("responder"))
    assert created.status_code == 201, created.text
    alert_id = created.json()["id"]
    again = c.post("/ingest/alerts", json=_alert(), headers=auth("responder"))
    assert again.status_code == 200 and again.json() == {"id": alert_id, "created": False}

    # -- the same path as our own alerts: the playbook started and waits for approval
    runs = c.get("/runs", params={"alert_id": alert_id}, headers=auth("viewer")).json()
    assert len(runs) == 1
    run_id = runs[0]["id"]
    assert runs[0]["status"] == "waiting_approval"
    approvals = c.get(f"/runs/{run_id}/approvals", headers=auth("viewer")).json()
    assert [a["status"] for a in approvals] == ["pending"]

    # -- approvals: role, then attribute scope, then the right approver
    assert (
        c.post(f"/runs/{run_id}/approvals/isolate", json={"decision": "approve"}, headers=auth("viewer")).status_code
        == 403
    )
    # a run outside the principal's scope is not told apart from an unknown one
    scoped = c.post(f"/runs/{run_id}/approvals/isolate", json={"decision": "approve"}, headers=auth("staging_approver"))
    unknown = c.post("/runs/run-nope/approvals/isolate", json={"decision": "approve"}, headers=auth("staging_approver"))
    assert scoped.status_code == unknown.status_code == 404
    assert c.get(f"/runs/{run_id}", headers=auth("staging_approver")).status_code == 404
    ok = c.post(f"/runs/{run_id}/approvals/isolate", json={"decision": "approve"}, headers=auth("approver"))
    assert ok.status_code == 200, ok.text
    assert ok.json()["status"] == "approved"
    twice = c.post(f"/runs/{run_id}/approvals/isolate", json={"decision": "approve"}, headers=auth("approver"))
    assert twice.status_code == 200 and twice.json()["changed"] is False
    run = c.get(f"/runs/{run_id}", headers=auth("viewer")).json()
    assert run["status"] == "succeeded", run.get("error")
    bodies.append(str(run))

    # -- the report: milestones, durations, the approval, evidence
    report = c.get(f"/runs/{run_id}/report", headers=auth("viewer"))
    assert report.status_code == 200, report.text
    r = report.json()
    bodies.append(report.text)
    assert r["milestones"]["first_event"] == "2026-11-28T09:58:00.000Z"
    assert r["milestones"]["contained"] is not None and r["milestones"]["released"] is not None
    segments = {s["label"]: s["seconds"] for s in r["segments"]}
    assert segments["time to contain"] is not None and segments["time to contain"] >= 0
    assert r["approvals"][0]["decisions"][0]["approver"] == "alice"
    assert r["evidence"] == [
        {"step": "isolate", "name": "triage.tar", "sha256": "ab" * 32, "path": "/tmp/none", "size": 10}
    ]
    kinds = [e["kind"] for e in r["events"]]
    for kind in ("first_event", "detected", "run_started", "approval_requested", "approval_decided", "contained"):
        assert kind in kinds
    page = c.get(f"/runs/{run_id}/report.html", headers=auth("viewer"))
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'id="timeline"' in page.text and HOSTILE not in page.text and "&lt;img src=x" in page.text
    bodies.append(page.text)

    # -- feedback: a false positive proposes an exception; only an admin approves it
    bad = c.post(f"/alerts/{alert_id}/verdict", json={"verdict": "maybe"}, headers=auth("responder"))
    assert bad.status_code == 422
    verdict = c.post(
        f"/alerts/{alert_id}/verdict",
        json={
            "verdict": "false_positive",
            "note": "scanner",
            "exception": {"field": "source.ip", "values": ["203.0.113.0/24"]},
        },
        headers=auth("responder"),
    )
    assert verdict.status_code == 200, verdict.text
    exc_id = verdict.json()["exception_id"]
    assert c.get(f"/alerts/{alert_id}", headers=auth("viewer")).json()["verdict"] == "false_positive"
    assert c.post(f"/exceptions/{exc_id}/approve", headers=auth("responder")).status_code == 403
    approved = c.post(f"/exceptions/{exc_id}/approve", headers=auth("admin"))
    assert approved.status_code == 200 and approved.json()["status"] == "approved"
    assert approved.json()["rule_id"] == "lab-rule-1" and approved.json()["values"] == ["203.0.113.0/24"]

    # -- metrics over the period
    m = c.get("/metrics", params={"since": "3650d"}, headers=auth("viewer")).json()
    assert m["alerts"] == 1 and m["responded"] == 1
    assert m["mttc"]["n"] == 1 and m["mttd"]["n"] == 1 and m["approval_wait"]["n"] == 1
    assert m["automation_rate"] == 0.0  # a person approved the containment
    assert m["false_positive_rate"] == 1.0
    assert m["rules"] == [{"rule_id": "lab-rule-1", "title": "Lab rule", "tp": 0, "fp": 1, "precision": 0.0}]
    chart = c.get("/metrics/chart.svg", params={"since": "3650d"}, headers=auth("viewer"))
    assert chart.headers["content-type"].startswith("image/svg+xml") and chart.text.count('class="bar"') == 1

    # -- the audit chain holds every decision and verifies
    v = c.get("/audit/verify", headers=auth("viewer")).json()
    assert v["ok"] is True and v["keyed"] is True
    actions = [e["action"] for e in c.get("/audit/entries", headers=auth("viewer")).json()]
    for action in (
        "alert.ingested",
        "approval.requested",
        "approval.approve",
        "verdict.recorded",
        "exception.approved",
    ):
        assert action in actions

    # -- no secret anywhere: store files, responses, logs
    written = stored_text(api, request.getfixturevalue("es") if store == "elasticsearch" else None)
    assert run_id in written and "verdict.recorded" in written  # the search really covers the store
    texts = [written, *bodies, caplog.text]
    for secret in [*SECRETS.values(), *TOKENS.values()]:
        for text in texts:
            assert secret not in text
    assert "isolated web1 using password ********" in str(run)


def test_bad_input_is_4xx_with_a_message(api: Api) -> None:
    c = api.client
    missing = c.get("/runs/run-nope/report", headers=auth("viewer"))
    assert missing.status_code == 404 and "run-nope" in missing.json()["detail"]
    assert c.get("/alerts/nope", headers=auth("viewer")).status_code == 404
    since = c.get("/metrics", params={"since": "yesterday-ish"}, headers=auth("viewer"))
    assert since.status_code == 400 and since.json()["detail"].startswith("since:")
    backwards = c.get("/audit/entries", params={"from": "2026-11-28", "to": "2026-11-01"}, headers=auth("viewer"))
    assert backwards.status_code == 400 and "is after the end" in backwards.json()["detail"]
    unknown = c.post("/alerts/nope/verdict", json={"verdict": "true_positive"}, headers=auth("responder"))
    assert unknown.status_code == 404
    tp_with_exception = c.post(
        "/ingest/alerts", json={"rule": {"id": "r", "title": "t", "level": "bogus"}}, headers=auth("admin")
    )
    assert tp_with_exception.status_code == 422
    assert c.get("/alerts", headers=auth("viewer")).json() == []  # nothing was written


def test_acknowledge_and_close_stop_the_clocks(api: Api) -> None:
    c = api.client
    alert = {
        "id": "manual-1",
        "rule": {"id": "no-playbook", "title": "Manual", "level": "low"},
        "host": {"name": "web1"},
    }
    alert_id = c.post(
        "/ingest/alerts", json={**alert, "attributes": {"env": "prod"}}, headers=auth("responder")
    ).json()["id"]
    path = f"/alerts/{alert_id}/status"
    assert c.post(path, json={"status": "acknowledged"}, headers=auth("viewer")).status_code == 403
    assert c.post(path, json={"status": "snoozed"}, headers=auth("responder")).status_code == 422
    assert c.post("/alerts/nope/status", json={"status": "closed"}, headers=auth("responder")).status_code == 404
    acked = c.post(path, json={"status": "acknowledged"}, headers=auth("responder")).json()
    assert acked["status"] == "acknowledged" and acked["acknowledged_by"] == "rory"
    again = c.post(path, json={"status": "acknowledged"}, headers=auth("admin")).json()
    assert again["acknowledged_at"] == acked["acknowledged_at"] and again["acknowledged_by"] == "rory"
    closed = c.post(path, json={"status": "closed", "note": "benign"}, headers=auth("responder")).json()
    assert closed["status"] == "closed" and closed["closed_at"] >= acked["acknowledged_at"]
    m = c.get("/metrics", params={"since": "1d"}, headers=auth("viewer")).json()
    assert m["alerts"] == 1 and m["responded"] == 0
    assert m["mtta"]["n"] == 1 and m["mttr"]["n"] == 1 and m["mttc"]["n"] == 0
    actions = [e["action"] for e in c.get("/audit/entries", headers=auth("viewer")).json()]
    assert actions.count("alert.acknowledged") == 1 and actions.count("alert.closed") == 1
    # reopen and assign: the same queue the command line works (soar alerts), audited with the principal
    reopened = c.post(path, json={"status": "open"}, headers=auth("responder")).json()
    assert reopened["status"] == "acknowledged" and reopened.get("closed_at") is None
    assert reopened["reopened_by"] == "rory"
    assign = f"/alerts/{alert_id}/assign"
    assert c.post(assign, json={"assignee": "mallory"}, headers=auth("responder")).status_code == 422
    assert c.post(assign, json={"assignee": "alice"}, headers=auth("viewer")).status_code == 403
    given = c.post(assign, json={"assignee": "alice"}, headers=auth("responder")).json()
    assert given["assignee"] == "alice" and given["assigned_by"] == "rory"
    entries = c.get("/audit/entries", headers=auth("viewer")).json()
    assert [(e["actor"], e["action"]) for e in entries if e["action"] in ("alert.reopened", "alert.assigned")] == [
        ("rory", "alert.reopened"),
        ("rory", "alert.assigned"),
    ]


def test_tenant_scopes_on_metrics_and_audit(api: Api) -> None:
    c = api.client
    alert = {
        "id": "prod-1",
        "rule": {"id": "no-playbook", "title": "Manual", "level": "low"},
        "host": {"name": "web1"},
    }
    assert c.post("/ingest/alerts", json=alert, headers=auth("responder")).status_code == 201
    # another tenant's approver sees none of prod's alerts in the metrics; prod's own sees it
    assert c.get("/metrics", params={"since": "1d"}, headers=auth("staging_approver")).json()["alerts"] == 0
    assert c.get("/metrics", params={"since": "1d"}, headers=auth("approver")).json()["alerts"] == 1
    assert c.get("/alerts", headers=auth("staging_approver")).json() == []
    assert (
        c.get(
            "/alerts/" + c.get("/alerts", headers=auth("viewer")).json()[0]["id"], headers=auth("staging_approver")
        ).status_code
        == 404  # out of scope answers like an unknown id
    )
    # the audit log spans tenants: scoped principals may not read it; export needs an admin
    scoped = c.get("/audit/verify", headers=auth("responder"))
    assert scoped.status_code == 403 and "unscoped" in scoped.json()["detail"]
    assert c.get("/audit/export", headers=auth("viewer")).status_code == 403
    bundle = c.get("/audit/export", params={"from": "1d"}, headers=auth("admin"))
    assert bundle.status_code == 200
    assert bundle.json()["verification"]["ok"] is True and bundle.json()["count"] >= 1
    assert bundle.json()["signature"]["alg"] == "hmac-sha256"  # HMAC over the canonical bundle: verify-bundle
    exported = c.get("/audit/entries", headers=auth("admin")).json()[-1]
    assert exported["action"] == "audit.exported" and exported["actor"] == "root"  # the admin token's principal
    assert exported["details"]["via"] == "api" and exported["details"]["key_id"] == bundle.json()["signature"]["key_id"]


def test_rollback_appears_in_the_timeline(api: Api) -> None:
    c = api.client
    alert = {
        "id": "rb-1",
        "rule": {"id": "lab-rule-2", "title": "Rollback lab", "level": "high"},
        "host": {"name": "web2"},
        "attributes": {"env": "prod"},
    }
    alert_id = c.post("/ingest/alerts", json=alert, headers=auth("responder")).json()["id"]
    runs = c.get("/runs", params={"alert_id": alert_id}, headers=auth("viewer")).json()
    assert len(runs) == 1, runs
    run_id = runs[0]["id"]
    if runs[0]["status"] == "waiting_approval":  # the policy gates containment: approve it
        ok = c.post(f"/runs/{run_id}/approvals/isolate", json={"decision": "approve"}, headers=auth("admin"))
        assert ok.status_code == 200, ok.text
    run = c.get(f"/runs/{run_id}", headers=auth("viewer")).json()
    assert run["status"] == "rolled_back", (run["status"], run.get("error"))
    assert all("params" not in e for e in run["rollback"]["steps"])
    r = c.get(f"/runs/{run_id}/report", headers=auth("viewer")).json()
    rolled = [s for s in r["steps"] if s["rollback"]]
    assert [s["uses"] for s in rolled] == ["labtest.release"] and rolled[0]["ok"] is True
    assert any(e["kind"] == "audit" and e["title"] == "playbook.rollback" for e in r["events"])
    assert r["milestones"]["contained"] is not None and r["milestones"]["released"] is not None
    failed = [s for s in r["steps"] if s["id"] == "check"]
    assert failed[0]["status"] == "failed" and "simulated failure" in (failed[0]["error"] or "")


def test_an_unreachable_store_is_503_with_a_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.integration.api.conftest import _api

    down = {
        "SOAR_STORE": "elasticsearch",
        "SOAR_ELASTICSEARCH_URL": "http://127.0.0.1:9",
        "SOAR_INDEX_PREFIX": "soar-x",
    }
    with _api(tmp_path, monkeypatch, down) as app:
        for path in ("/alerts", "/runs", "/metrics", "/audit/verify"):
            r = app.client.get(path, headers=auth("admin"))
            assert r.status_code == 503, (path, r.status_code, r.text)
            assert "unreachable" in r.json()["detail"]
