"""Block Kit rendering: what the on-call sees, and that attacker text cannot forge mentions or links."""

from __future__ import annotations

import json
from typing import Any

from soar.notify import cards
from soar.records import ThreadRun, ThreadStep

HOSTILE = "<!channel> <https://evil.example|click> ``` & <@U123>"


def _mrkdwn(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["text"]] if node.get("type") == "mrkdwn" else []
        return own + [t for v in node.values() for t in _mrkdwn(v)]
    if isinstance(node, list):
        return [t for v in node for t in _mrkdwn(v)]
    return []


def _alert() -> dict[str, Any]:
    return {
        "id": "a1",
        "rule": {
            "id": "r1",
            "title": "Reverse shell",
            "level": "critical",
            "tags": ["attack.execution", "attack.t1059.004"],
        },
        "host": {"name": "web-1"},
        "user": {"name": HOSTILE},
        "source": {"ip": "198.51.100.7"},
        "events": [{"process": {"command_line": HOSTILE}}],
    }


def test_the_card_shows_rule_level_entities_techniques_event_automation_and_run() -> None:
    summary = cards.alert_summary(_alert())
    runs = {
        "run-1": ThreadRun(
            playbook="contain",
            status="running",
            steps={"isolate": ThreadStep(uses="hosts.isolate_host", status="awaiting_approval")},
        )
    }
    blocks = cards.incident_card(summary, status="awaiting approval", runs=runs)
    text = json.dumps(blocks)
    assert blocks[0] == {"type": "header", "text": {"type": "plain_text", "text": "Reverse shell", "emoji": False}}
    for expected in (
        "critical",
        "web-1",
        "198.51.100.7",
        "T1059.004",
        "Matched event",
        "hosts.isolate_host",
        "awaiting_approval",
        "run-1",
        "awaiting approval",
    ):
        assert expected in text, expected
    assert "EXECUTION" not in text  # tactics are not techniques


def test_attacker_text_is_escaped_everywhere_slack_parses_mrkdwn() -> None:
    summary = cards.alert_summary(_alert())
    texts = [*_mrkdwn(cards.incident_card(summary)), cards.card_text({**summary, "title": HOSTILE}, "open")]
    event = {
        "type": "step_finished",
        "run_id": "r",
        "step": {"id": "s", "uses": "x", "status": "failed", "summary": HOSTILE},
    }
    text, blocks = cards.step_reply(event)
    texts += [text, *_mrkdwn(blocks)]
    for t in texts:
        assert "<!channel>" not in t and "<@U123>" not in t and "<https://" not in t, t
    joined = "\n".join(texts)
    assert "&lt;!channel&gt;" in joined and "&amp;" in joined
    code = next(t for t in texts if t.startswith("*Matched event*"))
    assert code.count("```") == 2  # a backtick run in the event cannot close the code block


def test_approval_buttons_carry_the_run_and_step_and_confirm_high_impact() -> None:
    event = {
        "type": "approval_requested",
        "run_id": "run-9",
        "step": {"id": "isolate", "uses": "hosts.isolate_host"},
        "approval": {
            "step": "isolate",
            "required": 2,
            "approvers": [],
            "expires_at": "2026-11-28T13:00:00Z",
            "impact": "contain",
        },
    }
    _, blocks = cards.approval_request(event)
    actions = next(b for b in blocks if b["type"] == "actions")
    approve, deny = actions["elements"]
    assert (approve["action_id"], deny["action_id"]) == (cards.APPROVE_ACTION, cards.DENY_ACTION)
    assert json.loads(approve["value"]) == {"run_id": "run-9", "step_id": "isolate"}
    assert "confirm" in approve and "confirm" not in deny
    assert "0 of 2" in blocks[0]["text"]["text"]
    low = {**event, "approval": {**event["approval"], "impact": "notify"}}
    assert "confirm" not in cards.approval_request(low)[1][1]["elements"][0]


def test_a_final_decision_replaces_the_buttons_and_a_partial_one_keeps_them() -> None:
    base = {"type": "approval_decided", "run_id": "run-9", "approval": {"step": "isolate", "required": 2}}
    partial = {**base, "approval": {**base["approval"], "approvers": ["alice"], "status": "pending"}}
    _, blocks = cards.approval_decided(partial, final=False)
    assert any(b["type"] == "actions" for b in blocks) and "1 of 2 approvals: alice" in blocks[0]["text"]["text"]
    final = {**base, "approval": {**base["approval"], "approvers": ["alice", "bob"], "status": "approved"}}
    _, blocks = cards.approval_decided(final, final=True)
    assert not any(b["type"] == "actions" for b in blocks)
    assert "approved" in blocks[0]["text"]["text"] and "alice, bob" in blocks[0]["text"]["text"]


def test_a_denial_names_the_denier_and_only_a_well_formed_slack_id_becomes_a_mention() -> None:
    approval = {
        "step": "isolate",
        "required": 2,
        "status": "denied",
        "approvers": ["alice"],
        "denials": ["bob", HOSTILE],
        "slack_users": {"alice": "UALICE", "bob": "UBOB", HOSTILE: "U1> <!channel"},
    }
    event = {"type": "approval_decided", "run_id": "run-9", "approval": approval}
    text, blocks = cards.approval_decided(event, final=True)
    shown = blocks[0]["text"]["text"]
    assert not any(b["type"] == "actions" for b in blocks)
    assert shown.startswith(":no_entry: step `isolate` *denied* by bob (<@UBOB>), &lt;!channel&gt;")
    assert "<!channel" not in shown and text.startswith("step isolate denied by bob")
    reply_text, reply = cards.decision_reply(event)
    assert reply_text.startswith("step isolate denied by bob")  # the notification names the denier too
    assert "*denied* by bob (<@UBOB>)" in reply[0]["text"]["text"]
    assert "approvals: alice (<@UALICE>) (1 of 2)" in reply[0]["text"]["text"]


def test_long_values_are_cut_to_slack_limits() -> None:
    summary = cards.alert_summary(
        {**_alert(), "events": [{"message": "x" * 50_000}], "rule": {"title": "t" * 500, "level": "low"}}
    )
    blocks = cards.incident_card(summary)
    assert len(blocks[0]["text"]["text"]) <= cards.HEADER_LIMIT
    assert all(len(t) <= 3000 for t in _mrkdwn(blocks))


def test_a_storm_summary_counts_alerts_per_rule() -> None:
    summaries = [{"title": "SSH brute force", "level": "high", "host": f"h{i % 4}"} for i in range(30)]
    summaries += [{"title": "Cron persistence", "level": "medium", "host": "h9"}] * 5
    text, blocks = cards.storm_summary(summaries, "#soc-alerts")
    assert "35 alerts" in text
    body = blocks[0]["text"]["text"]
    assert "SSH brute force (high) ×30" in body and "Cron persistence (medium) ×5" in body and "5 hosts" in body
