"""Held checks: the attacks on attribute-based access replayed against the real API (embedded store).

Who may see or decide is taken from the inventory and the token's principal; nothing the alert
says about itself, and nothing the requester asked, changes it.
"""

from __future__ import annotations

from typing import Any

from tests.integration.api.conftest import Api
from tests.integration.api.lab_content import auth


def _ingest(api: Api, who: str, **alert: Any) -> tuple[str, str]:
    body = {"rule": {"id": "lab-rule-1", "title": "Lab rule", "level": "high"}, **alert}
    created = api.client.post("/ingest/alerts", json=body, headers=auth(who))
    assert created.status_code == 201, created.text
    alert_id = created.json()["id"]
    runs = api.client.get("/runs", params={"alert_id": alert_id}, headers=auth("viewer")).json()
    assert [r["status"] for r in runs] == ["waiting_approval"]
    return alert_id, runs[0]["id"]


def _audit(api: Api, action: str) -> list[dict[str, Any]]:
    return [e for e in api.client.get("/audit/entries", headers=auth("admin")).json() if e["action"] == action]


def test_an_alert_claiming_another_tenant_is_scoped_by_the_inventory(api: Api) -> None:
    """web1 is env=prod in the inventory; the alert says staging. Staging sees nothing; prod decides."""
    c = api.client
    forged = {
        "id": "forged-1",
        "host": {"name": "web1", "labels": {"env": "staging"}},
        "attributes": {"env": "staging"},
    }
    alert_id, run_id = _ingest(api, "admin", **forged)
    stored = c.get(f"/alerts/{alert_id}", headers=auth("viewer")).json()
    assert stored["inventory"] == {"hosts": [{"host": "web1", "labels": {"env": "prod", "criticality": "high"}}]}
    for path in (f"/alerts/{alert_id}", f"/runs/{run_id}", f"/runs/{run_id}/approvals", f"/runs/{run_id}/report"):
        assert c.get(path, headers=auth("staging_approver")).status_code == 404, path
    assert c.get("/alerts", headers=auth("staging_approver")).json() == []
    assert c.get("/runs", headers=auth("staging_approver")).json() == []
    staging = c.post(
        f"/runs/{run_id}/approvals/isolate", json={"decision": "approve"}, headers=auth("staging_approver")
    )
    assert staging.status_code == 404
    ok = c.post(f"/runs/{run_id}/approvals/isolate", json={"decision": "approve"}, headers=auth("approver"))
    assert ok.status_code == 200 and ok.json()["status"] == "approved", ok.text
    decided = _audit(api, "approval.approve")
    assert [(e["actor"], e["details"]["approver"]) for e in decided] == [
        ("alice", "alice")
    ]  # the human, not automation


def test_a_requester_cannot_approve_their_own_run(api: Api) -> None:
    """root ingested the alert (so asked for the run): root's approval is refused and audited; alice's counts."""
    c = api.client
    _, run_id = _ingest(api, "admin", id="sod-1", host={"name": "web1"})
    assert c.get(f"/runs/{run_id}", headers=auth("viewer")).json()["requested_by"] == "root"
    own = c.post(f"/runs/{run_id}/approvals/isolate", json={"decision": "approve"}, headers=auth("admin"))
    assert own.status_code == 403 and "root asked for this run" in own.json()["detail"]
    refused = _audit(api, "approval.refused")
    assert refused and refused[-1]["actor"] == "root" and "separation_of_duties" in refused[-1]["details"]["reason"]
    assert c.get(f"/runs/{run_id}/approvals", headers=auth("viewer")).json()[0]["status"] == "pending"
    ok = c.post(f"/runs/{run_id}/approvals/isolate", json={"decision": "approve"}, headers=auth("approver"))
    assert ok.status_code == 200 and ok.json()["status"] == "approved"


def test_an_approval_also_needs_scope_over_the_host_the_step_acts_on(api: Api) -> None:
    """The alert names a prod host, but the step would isolate a staging one: a prod-only approver is refused."""
    c = api.client
    _, run_id = _ingest(api, "admin", id="cross-1", host={"name": "web1", "hostname": "stage1"})
    for who in ("approver", "staging_approver"):  # the run concerns both: each single-tenant approver is out
        answer = c.post(f"/runs/{run_id}/approvals/isolate", json={"decision": "approve"}, headers=auth(who))
        assert answer.status_code == 404, (who, answer.text)
    assert c.get("/runs", headers=auth("approver")).json() == []
    ok = c.post(f"/runs/{run_id}/approvals/isolate", json={"decision": "approve"}, headers=auth("prod_admin"))
    assert ok.status_code == 404  # paula is prod-only too
    assert c.get(f"/runs/{run_id}/approvals", headers=auth("viewer")).json()[0]["status"] == "pending"


def test_exceptions_carry_the_scope_of_their_alert_and_a_proposer_cannot_approve_them(api: Api) -> None:
    c = api.client
    alert_id, _ = _ingest(api, "admin", id="exc-1", host={"name": "web1"}, attributes={"env": "staging"})
    proposal = {
        "verdict": "false_positive",
        "exception": {"field": "user.name", "values": ["svc-backup"], "shared": True},
    }
    proposed = c.post(f"/alerts/{alert_id}/verdict", json=proposal, headers=auth("prod_admin"))
    assert proposed.status_code == 200, proposed.text
    exc_id = proposed.json()["exception_id"]
    assert [e["id"] for e in c.get("/exceptions", headers=auth("viewer")).json()] == [exc_id]
    assert c.get("/exceptions", headers=auth("staging_approver")).json() == []  # another tenant's: not listed
    listed = c.get("/exceptions", headers=auth("approver")).json()
    assert [e["scope"] for e in listed] == [[{"host": "web1", "labels": {"env": "prod", "criticality": "high"}}]]
    staging = c.post(f"/exceptions/{exc_id}/approve", headers=auth("staging_admin"))
    assert (
        staging.status_code == 404 and c.post("/exceptions/exc-nope/approve", headers=auth("admin")).status_code == 404
    )
    own = c.post(f"/exceptions/{exc_id}/approve", headers=auth("prod_admin"))
    assert own.status_code == 403 and "paula proposed it" in own.json()["detail"]
    ok = c.post(f"/exceptions/{exc_id}/approve", headers=auth("admin"))
    assert ok.status_code == 200 and ok.json()["status"] == "approved" and ok.json()["approved_by"] == "root"
    assert [e["actor"] for e in _audit(api, "exception.approved")] == ["root"]
