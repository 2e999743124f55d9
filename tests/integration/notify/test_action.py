"""The `slack.notify` action playbooks call, found through the action registry."""

from __future__ import annotations

import uuid

from soar.actions import ActionContext, load_registry
from soar.config import Settings
from soar.notify import notify_run_event
from soar.playbooks.events import make_event
from soar.store import Store
from tests.integration.notify.standin import Workspace


def test_slack_notify_replies_in_the_runs_thread_once_even_when_the_step_is_retried(
    slack_settings: Settings, store: Store, workspace: Workspace
) -> None:
    run = {
        "id": f"run-{uuid.uuid4().hex[:8]}",
        "playbook": {"name": "p"},
        "status": "running",
        "alert": {"id": uuid.uuid4().hex, "rule": {"id": "r", "title": "Odd login", "level": "low"}},
    }
    notify_run_event(slack_settings, store, make_event("run_started", run))
    action = load_registry(slack_settings).get("slack.notify")
    assert action.spec.impact == "notify"
    ctx = ActionContext(settings=slack_settings, run_id=run["id"], step_id="notify", resources={"store": store})
    text = "Blocked 198.51.100.7 <!here>"
    first = action.call(ctx, {"text": text})
    second = action.call(ctx, {"text": text})  # the engine retried the step
    assert first.ok and first.verified and first.output["in_thread"] and first.output["status"] == "sent"
    assert second.output["outbox_key"] == first.output["outbox_key"]
    (card,) = workspace.top_level()
    replies = [r["text"] for r in workspace.replies(card["ts"]) if "Blocked" in r["text"]]
    assert replies == ["Blocked 198.51.100.7 &lt;!here&gt;"]


def test_slack_notify_in_a_dry_run_posts_nothing(slack_settings: Settings, store: Store, workspace: Workspace) -> None:
    action = load_registry(slack_settings).get("slack.notify")
    ctx = ActionContext(settings=slack_settings, dry_run=True, run_id="r", resources={"store": store})
    result = action.call(ctx, {"text": "hello", "channel": "#soc-alerts"})
    assert result.ok and result.output["would_post"] == "hello"
    assert workspace.state()["messages"] == []
    assert not action.call(ctx, {"text": "  "}).ok
