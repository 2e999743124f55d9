"""Incidents through the API on both stores: alerts grouped as they are ingested, the same roles and scopes as
alerts (out of scope is 404 like unknown), audited changes with the principal, and one report with the run's
report as a section under the report's strict CSP (#17 item 2)."""

from __future__ import annotations

import pytest

from soar.store import open_store
from tests.integration.api.conftest import Api, contained_incident
from tests.integration.api.lab_content import auth


@pytest.fixture(params=["sqlite", "elasticsearch"])
def app(request: pytest.FixtureRequest) -> Api:
    return request.getfixturevalue("api" if request.param == "sqlite" else "es_api")  # type: ignore[no-any-return]


def _ingest(app: Api, doc: dict[str, object]) -> str:
    r = app.client.post("/ingest/alerts", json=doc, headers=auth("admin"))
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def test_alerts_group_into_incidents_scoped_audited_and_reported(app: Api) -> None:
    c = app.client
    first, run_id = contained_incident(app)  # web1 at 09:58, a containment approved and run
    second = _ingest(app, {"id": "later", "rule": {"id": "lab-rule-9", "title": "Sudo storm", "level": "medium"},
                           "first_event_time": "2026-11-28T10:20:00Z", "host": {"name": "WEB1"}})  # fmt: skip
    apart = _ingest(app, {"id": "next-day", "rule": {"id": "lab-rule-9", "title": "Sudo storm", "level": "low"},
                          "first_event_time": "2026-11-29T10:20:00Z", "host": {"name": "web1"}})  # fmt: skip
    staged = _ingest(app, {"id": "stage", "rule": {"id": "lab-rule-9", "title": "Cron", "level": "low"},
                           "first_event_time": "2026-11-28T10:00:00Z", "host": {"name": "stage1"}})  # fmt: skip

    listed = c.get("/incidents", headers=auth("viewer"))
    assert listed.status_code == 200, listed.text
    by_alerts = {i["alert_count"]: i for i in listed.json() if i["key"]["value"] == "web1"}
    assert sorted(by_alerts) == [1, 2] and len(listed.json()) == 3  # 09:58 + 10:20 (22 min apart); the next day
    web1 = by_alerts[2]
    assert web1["severity"] == "critical" and web1["status"] == "open" and "scope_sources" not in web1
    shown = c.get(f"/incidents/{web1['id']}", headers=auth("viewer")).json()
    assert [a["id"] for a in shown["alerts"]] == [first, second] and [r["id"] for r in shown["runs"]] == [run_id]
    kinds = [e["kind"] for e in shown["timeline"]]
    assert {"alert", "run", "approval"} <= set(kinds)
    assert [e["at"] for e in shown["timeline"]] == sorted(e["at"] for e in shown["timeline"])
    assert apart not in [a["id"] for a in shown["alerts"]] and staged not in [a["id"] for a in shown["alerts"]]

    # a principal scoped to staging sees the staging incident only; the prod one answers like an unknown id
    sam = [i["key"]["value"] for i in c.get("/incidents", headers=auth("staging_approver")).json()]
    assert sam == ["stage1"]
    hidden = c.get(f"/incidents/{web1['id']}", headers=auth("staging_approver"))
    unknown = c.get("/incidents/0000000000000000", headers=auth("staging_approver"))
    assert hidden.status_code == unknown.status_code == 404
    assert hidden.json()["detail"] == f"unknown incident id {web1['id']!r}"
    refused = c.post(f"/incidents/{web1['id']}/status", json={"status": "closed"}, headers=auth("staging_admin"))
    assert refused.status_code == 404

    # triage with the alerts' roles: a viewer may not, a prod responder may; each change audited with the principal
    url = f"/incidents/{web1['id']}"
    assert c.post(f"{url}/status", json={"status": "acknowledged"}, headers=auth("viewer")).status_code == 403
    acked = c.post(f"{url}/status", json={"status": "acknowledged", "note": "mine"}, headers=auth("responder"))
    assert acked.status_code == 200, acked.text
    assert acked.json()["status"] == "acknowledged" and acked.json()["acknowledged_by"] == "rory"
    again = c.post(f"/incidents/{web1['id']}/status", json={"status": "acknowledged"}, headers=auth("responder"))
    assert again.json()["acknowledged_at"] == acked.json()["acknowledged_at"]  # idempotent
    assert c.post(f"{url}/assign", json={"owner": "mallory"}, headers=auth("responder")).status_code == 422
    owned = c.post(f"/incidents/{web1['id']}/assign", json={"owner": "alice"}, headers=auth("responder")).json()
    assert owned["owner"] == "alice" and owned["assigned_by"] == "rory"
    noted = c.post(f"{url}/notes", json={"text": "<img src=x onerror=alert(1)> seen"}, headers=auth("responder"))
    assert noted.status_code == 201 and noted.json()["notes"][0]["by"] == "rory"
    closed = c.post(f"/incidents/{web1['id']}/status", json={"status": "closed"}, headers=auth("responder")).json()
    reopened = c.post(f"/incidents/{web1['id']}/status", json={"status": "open"}, headers=auth("responder")).json()
    assert closed["status"] == "closed" and reopened["status"] == "acknowledged" and reopened["reopened_by"] == "rory"
    store = open_store(app.settings)
    try:
        trail = [(r.doc["action"], r.doc["actor"]) for r in store.find("audit", {"target": web1["id"]}, order_by="key")]
    finally:
        store.close()
    assert trail == [
        ("incident.created", "soar"),
        ("incident.acknowledged", "rory"),
        ("incident.assigned", "rory"),
        ("incident.noted", "rory"),
        ("incident.closed", "rory"),
        ("incident.reopened", "rory"),
    ]

    # one report: the timeline and the run's own report as a section, attacker text escaped, the strict CSP
    rep = c.get(f"/incidents/{web1['id']}/report", headers=auth("viewer")).json()
    assert rep["kind"] == "soar-incident-report" and [r["run_id"] for r in rep["runs"]] == [run_id]
    assert [e["title"] for e in rep["timeline"] if e["kind"] == "incident"] == [
        "created", "acknowledged", "assigned", "closed", "reopened",
    ]  # fmt: skip
    assert [e["detail"] for e in rep["timeline"] if e["kind"] == "note"] == ["<img src=x onerror=alert(1)> seen"]
    page = c.get(f"/incidents/{web1['id']}/report.html", headers=auth("viewer"))
    assert page.status_code == 200 and page.headers["content-security-policy"].startswith("default-src 'none'")
    html = page.text
    assert "Run 1: playbook lab-contain" in html and 'id="run-1-steps"' in html
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt; seen" in html
    assert c.get(f"/incidents/{web1['id']}/report.html", headers=auth("staging_approver")).status_code == 404


def test_a_webhook_retry_attaches_once(app: Api) -> None:
    doc = {"id": "retry-me", "rule": {"id": "lab-rule-9", "title": "x", "level": "low"}, "host": {"name": "web2"},
           "first_event_time": "2026-11-28T10:00:00Z"}  # fmt: skip
    _ingest(app, doc)
    assert app.client.post("/ingest/alerts", json=doc, headers=auth("admin")).status_code == 200
    incidents = [i for i in app.client.get("/incidents", headers=auth("viewer")).json() if i["key"]["value"] == "web2"]
    assert [i["alert_count"] for i in incidents] == [1]
