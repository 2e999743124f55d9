"""Embedded mode (no worker, no Redis): what Slack did not take survives the process that enqueued it.

A short-lived process notifies during trouble and exits, taking its retry timers with it.
The outbox is in the SQLite store, so the next long-lived process (`soar api`, `soar scheduler`)
resumes it at start — not before each message's next attempt, and never posting one twice,
even one whose first answer was lost.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

from soar.config import load_settings
from soar.notify import deliver
from soar.notify.outbox import KIND, listing
from soar.store import open_store
from tests.conftest import env_without_soar
from tests.integration.notify.apiserver import api_env, eventually, serve_api
from tests.integration.notify.content import write_content
from tests.integration.notify.standin import Workspace
from tests.workers import kill_group

NOTIFY = """
import json, sys
from soar.config import get_settings
from soar.notify import notify_run_event
from soar.playbooks.events import make_event
from soar.store import open_store

run = json.loads(sys.argv[1])
settings = get_settings()
store = open_store(settings)
for kind, status in (("run_started", "running"), ("run_finished", "succeeded")):
    notify_run_event(settings, store, make_event(kind, {**run, "status": status}))
"""


def _posted_keys(workspace: Workspace) -> list[str]:
    return [str((m.get("metadata") or {}).get("event_payload", {}).get("key")) for m in workspace.state()["messages"]]


def _embedded(tmp_path: Path) -> tuple[Workspace, dict[str, str]]:
    """A fresh workspace and the environment of embedded-mode processes (eager, SQLite under tmp_path)."""
    workspace = Workspace(["soc-alerts"])
    return workspace, {**env_without_soar(), **api_env(write_content(tmp_path / "content"), workspace, eager=True)}


def _notify_and_exit(env: dict[str, str], title: str) -> None:
    """A short-lived process publishes a run's start and end to Slack, then exits (its timers with it)."""
    alert = {"id": uuid.uuid4().hex, "rule": {"id": "r", "title": title, "level": "high"}}
    run = {"id": f"run-{uuid.uuid4().hex[:8]}", "playbook": {"name": "p"}, "alert": alert}
    done = subprocess.run(
        [sys.executable, "-c", NOTIFY, json.dumps(run)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_an_outage_then_a_restart_delivers_every_message_exactly_once(tmp_path: Path, standin: None) -> None:
    workspace, env = _embedded(tmp_path)
    soar_env = {k: v for k, v in env.items() if k.startswith("SOAR_")}
    settings = load_settings(**{k.removeprefix("SOAR_").lower(): v for k, v in soar_env.items()})
    # 1. A short-lived process: Slack posts the card but the answer is lost, then the channel backs off.
    workspace.fault("accept_then_error", method="chat.postMessage", status=502)
    _notify_and_exit(env, "Restarted")
    store = open_store(settings)  # the process is gone; its timers with it
    waiting = listing(store, ["pending"])
    assert len(waiting) >= 3 and any(m.kind == "card" and m.uncertain for m in waiting), waiting
    assert len(workspace.top_level()) == 1  # Slack has the card; we do not know it

    # 2. Not due yet: a new process honours the card's next attempt (and its replies wait for it).
    card_key = next(m.key for m in waiting if m.kind == "card")
    record = store.get(KIND, card_key)
    assert record is not None
    store.put(KIND, card_key, {**record.doc, "next_attempt_at": time.time() + 3})
    for channel in store.find("notify_channels"):
        store.put("notify_channels", channel.id, {**channel.doc, "blocked_until": 0})
    calls = len(workspace.calls())
    report = deliver(settings, open_store(settings), "#soc-alerts")
    assert report.sent == 0 and report.retry_in is not None and 1.5 < report.retry_in <= 3
    assert len(workspace.calls()) == calls

    # 3. Slack is down when the long-lived process starts; it comes back later.
    workspace.outage(True)
    with serve_api(settings.content_root, workspace, soar_env):
        assert eventually(lambda: (m := store.get(KIND, card_key)) and m.doc["attempts"] >= 2, 20), "resumed"
        workspace.outage(False)
        assert eventually(lambda: not listing(store, ["pending", "sending"]), 30), listing(store, ["pending"])
    keys = _posted_keys(workspace)
    assert len(keys) == len(set(keys)) == 3, keys  # the card and two replies, each once
    (card,) = workspace.top_level()
    assert len(workspace.replies(card["ts"])) == 2 and "succeeded" in card["text"]
    statuses = {m.key: m.status for m in listing(store, limit=100)}
    assert statuses[card_key] == "sent" and set(statuses.values()) <= {"sent", "superseded"}


def test_notify_deliver_wait_drains_what_an_earlier_process_left(tmp_path: Path, standin: None) -> None:
    wait = "6"
    workspace, full = _embedded(tmp_path)
    workspace.fault("error", method="chat.postMessage", status=503)  # the first post fails: back-off
    _notify_and_exit(full, "Drained")
    started = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-m", "soar", "notify", "deliver", "--wait", wait],
        env=full,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert time.monotonic() - started < float(wait) + 10
    keys = _posted_keys(workspace)
    assert len(keys) == len(set(keys)) == 3, keys


def test_the_embedded_scheduler_resumes_the_outbox_when_it_starts(tmp_path: Path, standin: None) -> None:
    workspace, full = _embedded(tmp_path)
    workspace.outage(True)
    _notify_and_exit(full, "Scheduled")
    workspace.outage(False)
    assert workspace.top_level() == []
    log = (tmp_path / "scheduler.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "soar", "scheduler", "--tick", "1"],
        env=full,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        # the card and its two replies are posted, then the card is updated to the run's end
        done = eventually(
            lambda: len(_posted_keys(workspace)) == 3 and any("succeeded" in m["text"] for m in workspace.top_level()),
            30,
        )
        assert done, (tmp_path / "scheduler.log").read_text()
    finally:
        kill_group(proc)
        log.close()
    keys = _posted_keys(workspace)
    assert len(keys) == len(set(keys)) == 3, keys
    (card,) = workspace.top_level()
    assert "succeeded" in card["text"] and len(workspace.replies(card["ts"])) == 2
