"""One living thread per incident, through the real slack-sdk WebClient and the Slack stand-in."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from soar.config import Settings
from soar.notify import notify_alert, notify_run_event
from soar.notify.incidents import open_thread
from soar.notify.outbox import listing
from soar.notify.service import deliver
from soar.playbooks.events import make_event
from soar.store import Store
from tests.integration.notify.standin import Workspace


def _mrkdwn_texts(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["text"]] if node.get("type") == "mrkdwn" else []
        return found + [t for v in node.values() for t in _mrkdwn_texts(v)]
    if isinstance(node, list):
        return [t for v in node for t in _mrkdwn_texts(v)]
    return []


def _run(alert_id: str) -> dict[str, Any]:
    return {
        "id": f"run-{uuid.uuid4().hex[:8]}",
        "playbook": {"name": "contain-ssh-bruteforce"},
        "status": "running",
        "alert": {
            "id": alert_id,
            "rule": {"id": "ssh-brute", "title": "SSH brute force <!channel>", "level": "high"},
            "host": {"name": "web-1"},
            "user": {"name": "root"},
            "source": {"ip": "203.0.113.9"},
        },
    }


def test_a_run_becomes_one_thread_with_replies_and_an_updated_card(
    slack_settings: Settings, store: Store, workspace: Workspace
) -> None:
    alert_id = uuid.uuid4().hex
    store.put(
        "alerts",
        alert_id,
        {
            "id": alert_id,
            "rule": {
                "id": "ssh-brute",
                "title": "SSH brute force <!channel>",
                "level": "high",
                "tags": ["attack.credential_access", "attack.t1110.001"],
            },
            "host": {"name": "web-1"},
            "user": {"name": "root"},
            "source": {"ip": "203.0.113.9"},
            "events": [{"message": "Failed password for root from 203.0.113.9 ```<@U1>"}],
        },
    )
    run = _run(alert_id)
    step = {"id": "block", "uses": "hosts.block_ip", "status": "succeeded", "summary": "203.0.113.9 dropped"}
    events = [
        make_event("run_started", run),
        make_event("step_started", run, step={**step, "status": "running", "summary": None}),
        make_event("step_finished", run, step=step),
        make_event("verification", run, step={**step, "status": "verified"}),
        make_event("run_finished", {**run, "status": "succeeded"}),
    ]
    for event in events:
        notify_run_event(slack_settings, store, event)
    notify_run_event(slack_settings, store, events[2])  # the same event again: no second reply

    cards = workspace.top_level()
    assert len(cards) == 1
    card = cards[0]
    assert card["channel_name"] == "soc-alerts"
    text = str(card["blocks"])
    assert "SSH brute force" in card["text"] and "&lt;!channel&gt;" in card["text"]
    for message in [card, *card["edits"]]:  # Slack parses top-level text and mrkdwn: no forged mentions
        mrkdwn = [message["text"], *_mrkdwn_texts(message["blocks"])]
        assert not any("<!channel>" in t or "<@U1>" in t for t in mrkdwn), mrkdwn
    for expected in ("web-1", "root", "203.0.113.9", "T1110.001", "Failed password", run["id"], "succeeded"):
        assert expected in text, expected
    assert card["edits"], "the card was updated in place"
    replies = workspace.replies(card["ts"])
    reply_text = [str(r["blocks"]) for r in replies]
    assert len(replies) == 4  # run_started, step_finished, verification, run_finished; step_started only moves the card
    assert "203.0.113.9 dropped" in reply_text[1]
    assert "verification" in reply_text[2]
    assert all(m.status in ("sent", "superseded") for m in listing(store))


def test_an_alert_card_is_posted_once_and_routed_by_severity(
    slack_settings: Settings, store: Store, workspace: Workspace
) -> None:
    slack_settings.content_path(slack_settings.notify_routes_file).write_text(
        "default: '#soc-alerts'\nroutes:\n  - channel: '#soc-critical'\n    min_severity: critical\n"
    )
    critical = {"id": uuid.uuid4().hex, "rule": {"id": "r", "title": "Rootkit", "level": "critical"}}
    medium = {"id": uuid.uuid4().hex, "rule": {"id": "r2", "title": "Odd cron", "level": "medium"}}
    for alert in (critical, critical, medium):
        notify_alert(slack_settings, store, alert)
    assert [m["blocks"][0]["text"]["text"] for m in workspace.top_level("#soc-critical")] == ["Rootkit"]
    assert [m["blocks"][0]["text"]["text"] for m in workspace.top_level("#soc-alerts")] == ["Odd cron"]


def test_cards_are_routed_by_rule_and_team_as_configured(
    slack_settings: Settings, store: Store, workspace: Workspace
) -> None:
    slack_settings.content_path(slack_settings.notify_routes_file).write_text(
        "default: '#soc-alerts'\nroutes:\n"
        "  - channel: '#team-payments'\n    team: [payments]\n"
        "  - channel: '#soc-bruteforce'\n    rule: ['ssh-brute-*', 'T1110*']\n"
    )
    for name in ("team-payments", "soc-bruteforce"):
        workspace.add_channel(name)

    def alert(title: str, **extra: Any) -> dict[str, Any]:
        rule = {"id": "r", "title": title, "level": "high", **extra.pop("rule", {})}
        return {"id": uuid.uuid4().hex, "rule": rule, **extra}

    for doc in (
        alert("Team field", team="payments"),
        alert("Team label", labels={"team": "payments"}),
        alert("Team tag", rule={"tags": ["team.payments"]}),
        alert("By rule id", rule={"id": "ssh-brute-force"}),
        alert("By technique", rule={"tags": ["attack.t1110.001"]}),
        alert("Unrouted", labels={"team": "web"}),
    ):
        notify_alert(slack_settings, store, doc)

    def titles(channel: str) -> list[str]:
        return [m["blocks"][0]["text"]["text"] for m in workspace.top_level(channel)]

    assert titles("#team-payments") == ["Team field", "Team label", "Team tag"]
    assert titles("#soc-bruteforce") == ["By rule id", "By technique"]
    assert titles("#soc-alerts") == ["Unrouted"]


def test_the_card_says_what_automation_will_do(tmp_path: Path, slack_settings: Settings, workspace: Workspace) -> None:
    from soar.notify.service import planned_automation
    from soar.store import open_store
    from tests.integration.notify.content import RULE_ID, write_content

    settings = slack_settings.model_copy(update={"content_root": write_content(tmp_path / "content")})
    store = open_store(settings)
    matched = {
        "id": uuid.uuid4().hex,
        "rule": {"id": RULE_ID, "title": "Reverse shell", "level": "high"},
        "host": {"name": "web-1"},
    }
    unmatched = {"id": uuid.uuid4().hex, "rule": {"id": "other", "title": "Odd", "level": "low"}}
    assert planned_automation(settings, store, matched) == "playbook approve-then-contain"
    assert planned_automation(settings, store, unmatched) == "no playbook matches: triage by hand"
    notify_alert(settings, store, matched, planned=planned_automation(settings, store, matched))
    (card,) = workspace.top_level()
    assert "will run: playbook approve-then-contain" in str(card["blocks"])


def test_embedded_mode_retries_on_its_own_after_an_outage(
    slack_settings: Settings, store: Store, workspace: Workspace
) -> None:
    import time

    workspace.outage(True)
    notify_alert(slack_settings, store, {"id": uuid.uuid4().hex, "rule": {"id": "r", "title": "Later", "level": "low"}})
    assert workspace.top_level() == []
    workspace.outage(False)
    deadline = time.monotonic() + 10
    while not workspace.top_level() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [m["text"] for m in workspace.top_level()] == ["[LOW] Later — open"]
    assert [m.status for m in listing(store)] == ["sent"]


def test_a_failed_verification_reaches_the_on_call_even_from_a_card_folded_into_a_storm(
    slack_settings: Settings, store: Store, workspace: Workspace
) -> None:
    settings = slack_settings.model_copy(update={"slack_storm_threshold": 3})
    alerts = [
        {"id": uuid.uuid4().hex, "rule": {"id": "r", "title": f"alert {n}", "level": "high"}, "host": {"name": f"h{n}"}}
        for n in range(10)
    ]
    for alert in alerts:
        open_thread(settings, store, alert)  # queued, not yet delivered: a storm
    deliver(settings, store, "#soc-alerts")
    assert len(workspace.top_level()) == 4  # three cards and one summary of the other seven

    def verification(alert: dict[str, Any], verified: bool) -> dict[str, Any]:
        run = {**_run(alert["id"]), "alert": alert}
        step = {"id": "isolate", "uses": "hosts.isolate_host", "status": "failed" if not verified else "succeeded"}
        return make_event("verification", run, step={**step, "verified": verified})

    notify_run_event(settings, store, verification(alerts[9], verified=True))  # its card stays folded
    notify_run_event(settings, store, verification(alerts[8], verified=False))
    deliver(settings, store, "#soc-alerts")
    cards = {m["text"].split("\n")[0]: m for m in workspace.top_level()}
    card = next(m for text, m in cards.items() if "alert 8" in text)
    replies = [str(r["blocks"]) for r in workspace.replies(card["ts"])]
    assert any(":warning: *verification* step `isolate` — NOT verified" in r for r in replies), replies
    assert not any("alert 9" in text for text in cards)
