"""Signed Slack interactivity payloads POSTed to the real `soar api`, deciding a real playbook run's approval.

Embedded mode: the API acknowledges, then does the work in-process after the response.
test_worker_path.py covers the same flow with the work on a real Celery worker.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from soar.notify.interactions import INTERACTIONS_KIND
from soar.store import Store
from tests.integration.notify.apiserver import (
    Api,
    api_env,
    approval,
    approval_message,
    approval_message_or_none,
    channel_id,
    eventually,
    open_test_store,
    payload,
    post,
    serve_api,
    signed,
    start_run,
)
from tests.integration.notify.content import write_content
from tests.integration.notify.standin import Workspace


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, standin: None) -> Iterator[Api]:
    root = write_content(tmp_path_factory.mktemp("slack-content"))
    workspace = Workspace(["soc-alerts"])
    with serve_api(root, workspace, api_env(root, workspace, eager=True)) as server:
        yield server


@pytest.fixture
def store(api: Api) -> Iterator[Store]:
    s = open_test_store(api)
    yield s
    s.close()


def test_bad_signatures_replays_and_malformed_payloads_get_4xx_and_change_nothing(api: Api, store: Store) -> None:
    run_id, step = start_run(api, store)
    before = store.count(INTERACTIONS_KIND)
    click = payload(run_id, step, "UALICE")
    assert post(api, click, secret="wrong-secret")[0].status_code == 401
    assert post(api, click, ts=int(time.time()) - 6 * 60)[0].status_code == 401  # older than 5 minutes
    body = b"payload=%7Bnot+json"
    assert httpx.post(f"{api.url}/slack/interactivity", content=body, headers=signed(body)).status_code == 400
    assert httpx.post(f"{api.url}/slack/interactivity", content=b"", headers={}).status_code == 401
    assert post(api, payload(run_id, step, "UALICE", action_id="soar.nuke"))[0].status_code == 400
    assert post(api, {**click, "type": "view_submission"})[0].status_code == 400
    bad_value = payload(run_id, step, "UALICE")
    bad_value["actions"][0]["value"] = "not json"
    assert post(api, bad_value)[0].status_code == 400
    null_step = payload(run_id, step, "UALICE")
    null_step["actions"][0]["value"] = json.dumps({"run_id": run_id, "step_id": None})
    assert post(api, null_step)[0].status_code == 400
    assert post(api, {**click, "container": "1.0"})[0].status_code == 400
    body = b"payload=\xff\xfe"  # not UTF-8: refused before the signature is computed
    assert httpx.post(f"{api.url}/slack/interactivity", content=body, headers=signed(body)).status_code == 400
    huge = b"payload=" + b"x" * (1024 * 1024)  # over the body limit: refused before it is read whole or verified
    refused = httpx.post(f"{api.url}/slack/interactivity", content=huge, headers=signed(huge))
    assert refused.status_code == 413 and "bytes" in refused.json()["error"]
    time.sleep(0.5)
    assert "Traceback" not in (Path(api.env["SOAR_CONTENT_ROOT"]) / "api.log").read_text()
    assert store.count(INTERACTIONS_KIND) == before
    doc = approval(store, run_id)
    assert doc["status"] == "pending" and doc["approvers"] == [] and doc["denials"] == []
    assert api.workspace.state()["ephemerals"] == []


def test_unknown_users_and_non_approvers_get_an_ephemeral_refusal(api: Api, store: Store) -> None:
    run_id, step = start_run(api, store)
    channel = channel_id(api)
    for user in ("UNOBODY", "UVICTOR", "UCAROL"):
        resp, _ = post(api, payload(run_id, step, user, channel=channel))
        assert resp.status_code == 200

    def refusals() -> dict[str, str]:
        return {
            e["user"]: e["text"]
            for e in api.workspace.state()["ephemerals"]
            if e["user"] in ("UNOBODY", "UVICTOR", "UCAROL")
        }

    eventually(lambda: len(refusals()) == 3)
    by_user = refusals()
    assert "not a known soar user" in by_user["UNOBODY"]
    assert "Not allowed" in by_user["UVICTOR"]
    assert "Not allowed" in by_user["UCAROL"] and "env" in by_user["UCAROL"]  # an approver, but scoped to prod
    refused = [r.doc for r in store.find("audit") if r.doc.get("action") == "approval.refused"]
    assert {"slack:UNOBODY", "slack:UVICTOR"} <= {e["actor"] for e in refused if e["target"] == f"{run_id}/{step}"}
    doc = approval(store, run_id)
    assert doc["status"] == "pending" and doc["approvers"] == []


def test_two_of_m_approval_with_a_double_click_and_a_replay(api: Api, store: Store) -> None:
    run_id, step = start_run(api, store)
    channel = channel_id(api)
    message = approval_message(api, run_id)
    assert [e["action_id"] for b in message["blocks"] if b["type"] == "actions" for e in b["elements"]] == [
        "soar.approve",
        "soar.deny",
    ]
    assert any("confirm" in e for b in message["blocks"] if b["type"] == "actions" for e in b["elements"])

    resp, body = post(api, payload(run_id, step, "UALICE", channel=channel))
    assert resp.status_code == 200
    assert eventually(lambda: len(approval(store, run_id)["approvers"]) == 1)
    # a replay of the very same signed request inside the window changes nothing
    replay = httpx.post(f"{api.url}/slack/interactivity", content=body, headers=signed(body))
    assert replay.status_code == 200
    # alice clicks again (a new click): nothing changes, she is told so
    assert post(api, payload(run_id, step, "UALICE", channel=channel))[0].status_code == 200
    assert eventually(
        lambda: any(
            "Nothing changed" in e["text"] for e in api.workspace.state()["ephemerals"] if e["user"] == "UALICE"
        )
    )
    doc = approval(store, run_id)
    assert doc["status"] == "pending" and [a["approver"] for a in doc["approvers"]] == ["alice"]
    assert doc["approvers"][0]["via"] == "slack" and doc["approvers"][0]["role"] == "approver"
    partial = eventually(
        lambda: "1 of 2" in str(approval_message(api, run_id)["blocks"]) and approval_message(api, run_id)
    )
    assert partial and any(b["type"] == "actions" for b in partial["blocks"])  # still open for a second approver

    assert post(api, payload(run_id, step, "UBOB", channel=channel))[0].status_code == 200
    assert eventually(lambda: approval(store, run_id)["status"] == "approved")
    decided = eventually(
        lambda: (m := approval_message(api, run_id)) and not any(b["type"] == "actions" for b in m["blocks"]) and m
    )
    assert decided, "the buttons are replaced by the decision"
    assert (
        "approved" in str(decided["blocks"]) and "alice" in str(decided["blocks"]) and "bob" in str(decided["blocks"])
    )
    # the run resumed and contained the host; the thread says so
    assert eventually(lambda: store.get("runs", run_id).doc["status"] == "succeeded")  # type: ignore[union-attr]
    assert eventually(
        lambda: any(
            "contain" in str(m["blocks"]) and "succeeded" in str(m["blocks"])
            for m in api.workspace.state()["messages"]
            if m["thread_ts"]
        )
    )
    # a click after the decision changes nothing
    assert post(api, payload(run_id, step, "UBOB", action_id="soar.deny", channel=channel))[0].status_code == 200
    time.sleep(0.5)
    assert approval(store, run_id)["status"] == "approved"
    audit = [r.doc for r in store.find("audit") if r.doc.get("action") == "approval.approve"]
    assert {a["details"]["approver"] for a in audit if a["target"] == run_id} == {"alice", "bob"}


def test_a_slack_outage_during_approval_loses_no_decision_and_no_message(api: Api, store: Store) -> None:
    from soar.notify.outbox import listing

    run_id, step = start_run(api, store)
    channel = channel_id(api)
    api.workspace.outage(True)
    for user in ("UALICE", "UBOB"):
        assert post(api, payload(run_id, step, user, channel=channel))[0].status_code == 200  # Slack → us still works
    assert eventually(lambda: approval(store, run_id)["status"] == "approved")
    assert eventually(lambda: store.get("runs", run_id).doc["status"] == "succeeded")  # type: ignore[union-attr]
    waiting = [m for m in listing(store, ["pending"]) if m.incident and run_id in str(m.to_doc())]
    assert waiting, "what Slack could not take is kept"
    api.workspace.outage(False)
    # Recovery is soar's own: its retry timers send what waits once the back-off has passed.
    assert eventually(lambda: listing(store, ["pending", "sending"]) == [], 60), listing(store, ["pending"])
    final = approval_message(api, run_id)
    assert not any(b["type"] == "actions" for b in final["blocks"]) and "approved" in str(final["blocks"])
    approval_posts = [
        m
        for m in api.workspace.state()["messages"]
        if f"approval:{run_id}" in str(m["blocks"]) or f"approval:{run_id}" in str(m["edits"])
    ]
    assert len(approval_posts) == 1, "one approval message, edited in place"
    texts = [str(m["blocks"]) for m in api.workspace.state()["messages"] if m["thread_ts"]]
    assert sum("run finished" in t and run_id in t for t in texts) == 1  # the end of the run, once


def test_a_rate_limited_update_after_a_click_waits_retry_after_and_edits_the_message_once(
    api: Api, store: Store
) -> None:
    run_id, step = start_run(api, store)
    posted = eventually(lambda: approval_message_or_none(api, run_id))
    assert posted and not posted["edits"]
    api.workspace.fault("rate_limit", method="chat.update", count=1, retry_after=1)
    clicked = time.time()
    assert post(api, payload(run_id, step, "UALICE", channel=channel_id(api)))[0].status_code == 200
    assert eventually(lambda: len(approval(store, run_id)["approvers"]) == 1)
    edited = eventually(lambda: (m := approval_message_or_none(api, run_id)) and m["edits"] and m)
    assert edited, "the update went out after Retry-After"
    assert len(edited["edits"]) == 1 and "1 of 2" in str(edited["blocks"]) and "alice" in str(edited["blocks"])
    (update,) = [r.doc for r in store.find("outbox", {"target": f"approval:{run_id}:{step}"})]
    assert (update["status"], update["attempts"]) == ("sent", 2)  # the 429, then once after Retry-After
    first, *later = [c["at"] for c in api.workspace.calls("chat.update") if c["at"] >= clicked]
    assert later and all(at - first >= 0.95 for at in later), (first, later)  # the channel waited Retry-After


def _verdict_click(alert_id: str, user: str, action_id: str, channel: str) -> dict[str, object]:
    click = payload("-", "-", user, action_id=action_id, channel=channel)
    click["actions"][0]["value"] = json.dumps({"alert_id": alert_id})  # type: ignore[index]
    return click


def test_verdict_buttons_on_the_card_record_the_analysts_verdict(api: Api, store: Store) -> None:
    run_id, _step = start_run(api, store)
    alert_id = store.get("runs", run_id).doc["alert_id"]  # type: ignore[union-attr]
    channel = channel_id(api)
    card = eventually(
        lambda: next(
            (m for m in api.workspace.state()["messages"] if alert_id in json.dumps(m.get("blocks", []))), None
        )
    )
    buttons = [e["action_id"] for b in card["blocks"] if b.get("block_id") == "soar.verdict" for e in b["elements"]]
    assert buttons == ["soar.verdict_tp", "soar.verdict_fp"]

    # a viewer may not judge; the refusal is ephemeral and nothing is stored
    assert post(api, _verdict_click(alert_id, "UVICTOR", "soar.verdict_fp", channel))[0].status_code == 200
    eventually(lambda: any(e["user"] == "UVICTOR" for e in api.workspace.state()["ephemerals"]))
    assert store.get("verdicts", alert_id) is None

    assert post(api, _verdict_click(alert_id, "UALICE", "soar.verdict_fp", channel))[0].status_code == 200
    verdict = eventually(lambda: store.get("verdicts", alert_id))
    assert verdict.doc["verdict"] == "false_positive"
    assert verdict.doc["analyst"] == "alice" and verdict.doc["via"] == "slack"
    # the alert is marked just after the verdict is stored: wait for it, not for the first write
    assert eventually(lambda: store.get("alerts", alert_id).doc.get("verdict") == "false_positive")  # type: ignore[union-attr]
    assert eventually(
        lambda: any(
            "Recorded: false positive" in e["text"]
            for e in api.workspace.state()["ephemerals"]
            if e["user"] == "UALICE"
        )
    )
    # a verdict click naming no alert is a malformed payload: 400, nothing changes
    bad = _verdict_click("", "UALICE", "soar.verdict_tp", channel)
    assert post(api, bad)[0].status_code == 400


def test_a_denial_names_the_slack_user_and_the_principal_everywhere(api: Api, store: Store) -> None:
    run_id, step = start_run(api, store)
    channel = channel_id(api)
    assert post(api, payload(run_id, step, "UALICE", channel=channel))[0].status_code == 200
    assert eventually(lambda: len(approval(store, run_id)["approvers"]) == 1)
    assert post(api, payload(run_id, step, "UBOB", action_id="soar.deny", channel=channel))[0].status_code == 200
    assert eventually(lambda: approval(store, run_id)["status"] == "denied")
    # the buttons are replaced by the decision, naming who denied (principal and Slack user)
    decided = eventually(
        lambda: (m := approval_message(api, run_id)) and not any(b["type"] == "actions" for b in m["blocks"]) and m
    )
    assert decided and "*denied* by bob (<@UBOB>)" in str(decided["blocks"]), decided
    # the thread reply says the same, with the approval given before
    replies = [str(m["blocks"]) for m in api.workspace.state()["messages"] if m["thread_ts"]]
    assert eventually(
        lambda: any(
            "*denied* by bob (<@UBOB>)" in str(m["blocks"]) and "approvals: alice (<@UALICE>)" in str(m["blocks"])
            for m in api.workspace.state()["messages"]
            if m["thread_ts"]
        )
    ), replies
    # the run record: the step is denied, by bob via Slack as UBOB; the playbook aborts (its on_failure)
    run = eventually(lambda: (r := store.get("runs", run_id)) and r.doc["status"] == "failed" and r.doc)
    assert run, "the run ended"
    contain = run["steps"][step]
    assert contain["status"] == "denied" and contain["error"] == "denied by bob (Slack UBOB)"
    assert [(d["approver"], d["via"], d["slack_user"]) for d in contain["denied_by"]] == [("bob", "slack", "UBOB")]
    assert run["error"] == f"step {step} denied by bob (Slack UBOB)"
    assert approval(store, run_id)["denials"][0]["slack_user"] == "UBOB"
