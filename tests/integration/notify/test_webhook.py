"""Incoming webhooks, the lighter option: no threads or edits, so replies name their card and updates follow up."""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

import pytest
from pydantic import SecretStr

from soar.config import Settings
from soar.notify import deliver, notify_run_event, transport_for
from soar.notify.incidents import handle_event
from soar.notify.outbox import Message, enqueue, listing
from soar.notify.transport import WebhookTransport, warn_webhook_limits
from soar.playbooks.events import make_event
from soar.store import Store
from tests.integration.notify.standin import STANDIN, Workspace


def _webhook_settings(settings: Settings, workspace: Workspace, channel: str = "soc-alerts") -> Settings:
    url = SecretStr(f"{STANDIN}/services/{workspace.token}/{channel}")
    return settings.model_copy(update={"slack_bot_token": None, "slack_webhook_url": url})


def _run() -> dict[str, Any]:
    return {
        "id": f"run-{uuid.uuid4().hex[:6]}",
        "playbook": {"name": "p"},
        "status": "running",
        "alert": {"id": uuid.uuid4().hex, "rule": {"id": "r", "title": "Odd sudo", "level": "medium"}},
    }


def _events(run: dict[str, Any]) -> list[dict[str, Any]]:
    step = {"id": "lock", "uses": "hosts.lock_account", "status": "succeeded", "summary": "locked"}
    return [
        make_event("run_started", run),
        make_event("step_started", run, step={**step, "status": "running", "summary": None}),
        make_event("step_finished", run, step=step),
        make_event("run_finished", {**run, "status": "succeeded"}),
    ]


def test_a_run_through_a_webhook_names_its_card_and_posts_status_changes_as_follow_ups(
    slack_settings: Settings, store: Store, workspace: Workspace, caplog: pytest.LogCaptureFixture
) -> None:
    settings = _webhook_settings(slack_settings, workspace)
    warn_webhook_limits.cache_clear()
    with caplog.at_level(logging.WARNING, logger="soar.notify"):
        assert isinstance(transport_for(settings), WebhookTransport)
        run = _run()
        for event in _events(run):
            notify_run_event(settings, store, event)
    warnings = [r.getMessage() for r in caplog.records if "incoming webhook" in r.getMessage()]
    assert len(warnings) == 1 and "cannot thread, edit" in warnings[0]  # said once, not per message
    posted = workspace.top_level()
    assert [m["text"] for m in posted] == [
        "[MEDIUM] Odd sudo — open",  # the card
        "run_started running",
        "[MEDIUM] Odd sudo — in progress",  # a follow-up: the status changed
        "step lock succeeded",  # step_started and step_finished changed no status: no follow-up
        "run_finished succeeded",
        "[MEDIUM] Odd sudo — succeeded",
    ]
    alert_id = run["alert"]["id"]
    for message in posted[1:]:  # without threads, every later message says which card it belongs to
        reference = message["blocks"][0]
        assert reference["type"] == "context" and f"alert `{alert_id}`" in reference["elements"][0]["text"]
        assert "re *[MEDIUM] Odd sudo*" in reference["elements"][0]["text"]
    assert "status *succeeded* · playbook *p* succeeded" in str(posted[-1]["blocks"])
    assert workspace.calls("chat.update") == []
    assert {m.status for m in listing(store)} <= {"sent", "superseded"}


def test_webhook_follow_ups_are_coalesced_while_the_channel_waits(
    slack_settings: Settings, store: Store, workspace: Workspace
) -> None:
    settings = _webhook_settings(slack_settings, workspace)
    run = _run()
    for event in _events(run):  # enqueued while the channel waits (paced, rate limited, down): not yet sent
        handle_event(settings, store, event)
    deliver(settings, store, "#soc-alerts")
    texts = [m["text"] for m in workspace.top_level()]
    assert texts == [
        "[MEDIUM] Odd sudo — open",
        "run_started running",
        "step lock succeeded",
        "run_finished succeeded",
        "[MEDIUM] Odd sudo — succeeded",  # one follow-up, the newest, for four card updates
    ]


def test_a_webhook_429_is_honoured_and_an_unknown_channel_is_kept(
    slack_settings: Settings, store: Store, workspace: Workspace
) -> None:
    settings = _webhook_settings(slack_settings, workspace)
    enqueue(store, Message(key="w:1", op="post", kind="card", channel="#soc-alerts", text="one"))
    workspace.fault("rate_limit", method="webhook", retry_after=1)
    report = deliver(settings, store, "#soc-alerts")
    assert report.sent == 0 and report.retry_in == 1
    time.sleep(1.1)
    assert deliver(settings, store, "#soc-alerts").sent == 1
    assert [m["text"] for m in workspace.top_level()] == ["one"]

    gone = _webhook_settings(slack_settings, workspace, channel="deleted")
    enqueue(store, Message(key="w:2", op="post", kind="card", channel="#deleted", text="two"))
    report = deliver(gone, store, "#deleted")
    assert report.errors == ["channel_not_found"]
    assert [m.status for m in listing(store, ["pending"])] == ["pending"]
