"""Incoming webhooks, the lighter option: cards and replies arrive (no threads), rate limits are honoured."""

from __future__ import annotations

import time
import uuid

from pydantic import SecretStr

from soar.config import Settings
from soar.notify import deliver, notify_run_event, transport_for
from soar.notify.outbox import Message, enqueue, listing
from soar.notify.transport import WebhookTransport
from soar.playbooks.events import make_event
from soar.store import Store
from tests.integration.notify.standin import STANDIN, Workspace


def _webhook_settings(settings: Settings, workspace: Workspace, channel: str = "soc-alerts") -> Settings:
    url = SecretStr(f"{STANDIN}/services/{workspace.token}/{channel}")
    return settings.model_copy(update={"slack_bot_token": None, "slack_webhook_url": url})


def test_a_run_through_a_webhook_posts_the_card_and_each_reply(
    slack_settings: Settings, store: Store, workspace: Workspace
) -> None:
    settings = _webhook_settings(slack_settings, workspace)
    assert isinstance(transport_for(settings), WebhookTransport)
    run = {
        "id": f"run-{uuid.uuid4().hex[:6]}",
        "playbook": {"name": "p"},
        "status": "running",
        "alert": {"id": uuid.uuid4().hex, "rule": {"id": "r", "title": "Odd sudo", "level": "medium"}},
    }
    notify_run_event(settings, store, make_event("run_started", run))
    notify_run_event(settings, store, make_event("run_finished", {**run, "status": "succeeded"}))
    texts = [m["text"] for m in workspace.top_level()]
    assert texts[0].startswith("[MEDIUM] Odd sudo") and len(texts) == 3  # card, started, finished
    assert {m.status for m in listing(store)} <= {"sent", "superseded"}


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
