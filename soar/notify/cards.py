"""Block Kit rendering: the incident card, its thread replies, approval buttons and storm summaries.

Pure functions of their inputs. Everything that comes from an alert is attacker-controlled,
so it is escaped for mrkdwn (``&``, ``<``, ``>`` — no forged mentions or links) and
truncated to Slack's limits before it reaches a block.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from soar.playbooks.outcomes import DRY_RUN, shown_status
from soar.records.notices import ApprovalNotice, StepNotice
from soar.records.thread import ThreadRun

APPROVE_ACTION = "soar.approve"
DENY_ACTION = "soar.deny"
VERDICT_TP_ACTION = "soar.verdict_tp"
VERDICT_FP_ACTION = "soar.verdict_fp"
HIGH_IMPACT = ("contain", "destructive")

SECTION_LIMIT = 2900  # Slack: 3000 characters per section text
HEADER_LIMIT = 150
FIELD_LIMIT = 1900
MAX_BLOCKS = 50

LEVEL_EMOJI = {
    "informational": ":information_source:",
    "low": ":large_blue_circle:",
    "medium": ":large_yellow_circle:",
    "high": ":large_orange_circle:",
    "critical": ":red_circle:",
}
STATUS_EMOJI = {
    "planned": ":white_circle:",
    "running": ":hourglass_flowing_sand:",
    "started": ":hourglass_flowing_sand:",
    "succeeded": ":white_check_mark:",
    "ok": ":white_check_mark:",
    "done": ":white_check_mark:",
    "failed": ":x:",
    "skipped": ":fast_forward:",
    "awaiting_approval": ":raised_hand:",
    "approved": ":white_check_mark:",
    "denied": ":no_entry:",
    "expired": ":alarm_clock:",
    "rolled_back": ":leftwards_arrow_with_hook:",
}

Block = dict[str, Any]


def status_shown(status: str, dry_run: Any = False, default: str = "") -> tuple[str, str]:
    """(emoji, text) of a run's or step's status: a dry run's "succeeded" reads ``planned (dry run)``."""
    text = shown_status(status, dry_run is True)
    return STATUS_EMOJI["planned"] if text == DRY_RUN else STATUS_EMOJI.get(status, default), text


SLACK_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,20}$")  # only a well-formed id becomes a mention


def escape(value: Any, limit: int = SECTION_LIMIT) -> str:
    """Text safe for mrkdwn: Slack's three control characters escaped, truncated to ``limit``."""
    text = str(value if value is not None else "")
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _plain(value: Any, limit: int) -> str:
    text = " ".join(str(value or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _fallback(value: Any, limit: int = 200) -> str:
    """A message's top-level ``text`` (notifications): Slack parses it as mrkdwn, so it is escaped too."""
    return escape(_plain(value, limit), limit + 40)


def _code(value: str, limit: int = 1200) -> str:
    """A code block of untrusted text; backtick runs cannot close it early."""
    return "```" + escape(value, limit).replace("```", "`\u200b`\u200b`") + "```"


def _get(mapping: Any, dotted: str) -> Any:
    cur = mapping
    for part in dotted.split("."):
        if not isinstance(cur, Mapping):
            return None
        cur = cur.get(part)
    return cur


def attack_techniques(tags: Sequence[str]) -> list[str]:
    """``attack.t1110.001`` -> ``T1110.001``; tactics (``attack.credential_access``) are left out."""
    out = []
    for tag in tags:
        name = tag.lower().removeprefix("attack.")
        if tag.lower().startswith("attack.") and name[:1] == "t" and name[1:5].isdigit():
            out.append(name.upper())
    return out


def alert_summary(alert: Mapping[str, Any]) -> dict[str, Any]:
    """What a card shows of an alert, taken from a stored alert or a run event's alert excerpt."""
    rule = alert.get("rule") or {}
    events = alert.get("events") or []
    return {
        "id": str(alert.get("id", "")),
        "title": str(rule.get("title") or alert.get("title") or "alert"),
        "rule_id": str(rule.get("id") or ""),
        "level": str(rule.get("level") or alert.get("severity") or "medium"),
        "tags": [str(t) for t in rule.get("tags") or []],
        "host": _get(alert, "host.name") or _get(alert, "host.hostname"),
        "user": _get(alert, "user.name"),
        "source_ip": _get(alert, "source.ip"),
        "event": events[0] if events else None,
        "team": alert.get("team") or _get(alert, "labels.team"),
    }


def card_text(summary: Mapping[str, Any], status: str) -> str:
    """The notification text (push notifications and clients without blocks)."""
    host = f" on {summary['host']}" if summary.get("host") else ""
    return _fallback(f"[{str(summary['level']).upper()}] {summary['title']}{host} — {status}", 300)


def incident_card(
    summary: Mapping[str, Any],
    *,
    status: str = "open",
    runs: Mapping[str, ThreadRun] | None = None,
    planned: str | None = None,
) -> list[Block]:
    """The card at the top of an incident's thread; re-rendered and ``chat.update``-d as the run moves."""
    level = str(summary.get("level", "medium"))
    blocks: list[Block] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": _plain(f"{summary['title']}", HEADER_LIMIT), "emoji": False},
        }
    ]
    fields = [f"*Level*\n{LEVEL_EMOJI.get(level, '')} {escape(level, 20)}"]
    for label, key in (("Host", "host"), ("User", "user"), ("Source IP", "source_ip")):
        if summary.get(key):
            fields.append(f"*{label}*\n`{escape(summary[key], 200)}`")
    techniques = attack_techniques(summary.get("tags") or [])
    if techniques:
        fields.append("*ATT&amp;CK*\n" + ", ".join(escape(t, 20) for t in techniques[:8]))
    blocks.append({"type": "section", "fields": [{"type": "mrkdwn", "text": f[:FIELD_LIMIT]} for f in fields[:10]]})
    event = summary.get("event")
    if event:
        excerpt = json.dumps(event, sort_keys=True, default=str, ensure_ascii=False)
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "*Matched event*\n" + _code(excerpt)}})
    automation = automation_lines(runs or {})
    if planned:
        automation.insert(0, f":crystal_ball: will run: {escape(planned, 300)}")
    if automation:
        text = "*Automation*\n" + "\n".join(automation)
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text[:SECTION_LIMIT]}})
    if summary.get("id"):
        blocks.append(verdict_buttons(str(summary["id"])))
    context = f"Status: *{escape(status, 40)}* · alert `{escape(summary.get('id', ''), 64)}`"
    if runs:
        context += " · run " + ", ".join(f"`{escape(r, 64)}`" for r in list(runs)[:3])
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": context}]})
    return blocks[:MAX_BLOCKS]


def card_followup(status: str, runs: Mapping[str, ThreadRun]) -> str:
    """An update told in one line, for transports that cannot edit the card (incoming webhooks).

    Only the statuses: each step has its own reply, so the line changes — and is posted — only
    when the incident or a run changes status.
    """
    line = f":arrows_counterclockwise: status *{escape(status, 40)}*"
    for run in list(runs.values())[:3]:
        _, shown = status_shown(run.status, run.dry_run)
        line += f" · playbook *{escape(run.playbook, 100)}* {escape(shown, 30)}"
    return line


def reference(summary: Mapping[str, Any] | None, incident: str | None) -> Block:
    """A context line naming the card a message belongs to, where Slack cannot thread it."""
    summary = summary or {}
    host = f" on `{escape(summary['host'], 100)}`" if summary.get("host") else ""
    level = escape(str(summary.get("level") or "?").upper(), 20)
    text = f":leftwards_arrow_with_hook: re *[{level}] {escape(summary.get('title') or 'alert', 150)}*{host}"
    if incident:
        text += f" · alert `{escape(incident, 64)}`"
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


def verdict_buttons(alert_id: str) -> Block:
    """The analyst's verdict on the card: it feeds rule precision and proposed exceptions."""
    value = json.dumps({"alert_id": alert_id})
    return {
        "type": "actions",
        "block_id": "soar.verdict",
        "elements": [
            {
                "type": "button",
                "text": {"type": "plain_text", "text": "True positive"},
                "action_id": VERDICT_TP_ACTION,
                "value": value,
            },
            {
                "type": "button",
                "text": {"type": "plain_text", "text": "False positive"},
                "action_id": VERDICT_FP_ACTION,
                "value": value,
            },
        ],
    }


def automation_lines(runs: Mapping[str, ThreadRun]) -> list[str]:
    lines: list[str] = []
    for run in list(runs.values())[:5]:
        emoji, status = status_shown(run.status, run.dry_run)
        lines.append(f"{emoji} playbook *{escape(run.playbook, 100)}* — {escape(status, 40)}")
        for step_id, step in list(run.steps.items())[:15]:
            mark, st = status_shown(step.status or "planned", step.dry_run, "•")
            line = f"    {mark} `{escape(step_id, 60)}` {escape(step.uses, 80)} — {escape(st, 30)}"
            if step.summary:
                line += f": {escape(step.summary, 200)}"
            lines.append(line)
    return lines


def step_reply(event: Mapping[str, Any]) -> tuple[str, list[Block]]:
    step = StepNotice.from_payload(event.get("step"))
    emoji, status = status_shown(step.status or "finished", step.dry_run, ":small_blue_diamond:")
    text = f"{emoji} step `{escape(step.id or '?', 60)}` ({escape(step.uses or '', 80)}) {escape(status, 30)}"
    if step.summary:
        text += f": {escape(step.summary, 1500)}"
    return _fallback(f"step {step.id or '?'} {status}"), [section(text)]


def approval_request(event: Mapping[str, Any]) -> tuple[str, list[Block]]:
    """The approval message: what will happen, who may approve, and the two buttons."""
    approval = ApprovalNotice.from_payload(event.get("approval"))
    step = StepNotice.from_payload(event.get("step"))
    run_id = str(event.get("run_id", ""))
    step_id = approval.step or step.id or ""
    impact = approval.impact or step.impact or "contain"
    text = (
        f":raised_hand: *Approval needed* for step `{escape(step_id, 60)}`"
        f" ({escape(step.uses or '', 80)}, impact {escape(impact, 20)})"
        f"\n{len(approval.approvers)} of {approval.required} approvals"
    )
    if approval.approvers:
        text += ": " + ", ".join(escape(a, 60) for a in approval.approvers)
    if approval.expires_at:
        text += f"\nexpires {escape(approval.expires_at, 40)}"
    if event.get("dry_run") is True:  # the on-call must know a yes here touches nothing
        text += "\n:white_circle: dry run: approving plans the step, nothing is touched"
    value = json.dumps({"run_id": run_id, "step_id": step_id}, separators=(",", ":"))
    approve: Block = {
        "type": "button",
        "action_id": APPROVE_ACTION,
        "style": "primary",
        "text": {"type": "plain_text", "text": "Approve"},
        "value": value,
    }
    if impact in HIGH_IMPACT:
        approve["confirm"] = {
            "title": {"type": "plain_text", "text": "Approve containment?"},
            "text": {"type": "mrkdwn", "text": _fallback(f"Run {step.uses or step_id} on the target now.", 250)},
            "confirm": {"type": "plain_text", "text": "Approve"},
            "deny": {"type": "plain_text", "text": "Cancel"},
            "style": "danger",
        }
    deny: Block = {
        "type": "button",
        "action_id": DENY_ACTION,
        "style": "danger",
        "text": {"type": "plain_text", "text": "Deny"},
        "value": value,
    }
    blocks = [
        section(text),
        {"type": "actions", "block_id": _plain(f"approval:{run_id}:{step_id}", 255), "elements": [approve, deny]},
    ]
    return _fallback(f"Approval needed for step {step_id}"), blocks


def people(approval: ApprovalNotice, field: Literal["approvers", "denials"] = "approvers") -> str:
    """Who voted, for a message: each principal, with a mention of the Slack user who clicked."""
    out = []
    for name in approval.denials if field == "denials" else approval.approvers:
        sid = approval.slack_users.get(name, "")
        out.append(f"{escape(name, 60)} (<@{sid}>)" if SLACK_USER_ID.match(sid) else escape(name, 60))
    return ", ".join(out)


def _denied_by(approval: ApprovalNotice) -> str:
    return people(approval, "denials") or "unknown"


def _decided(event: Mapping[str, Any]) -> tuple[ApprovalNotice, str, str]:
    """The approval an event decides, what was decided (``approved`` when it does not say) and for which step."""
    approval = ApprovalNotice.from_payload(event.get("approval"))
    step = approval.step or StepNotice.from_payload(event.get("step")).id or "?"
    return approval, approval.status or "approved", step


def approval_decided(event: Mapping[str, Any], *, final: bool) -> tuple[str, list[Block]]:
    """The approval message after a decision: buttons replaced by who decided, unless more approvals are needed."""
    approval, decision, raw_step = _decided(event)
    emoji = STATUS_EMOJI.get(decision, ":ballot_box_with_check:")
    step_id = escape(raw_step, 60)
    if not final:
        return approval_request(event)
    text = f"{emoji} step `{step_id}` *{escape(decision, 20)}*"
    if decision == "approved":
        text += f" by {people(approval) or 'nobody'}"
    elif decision == "denied":
        text += f" by {_denied_by(approval)}"
    return _fallback(_decision_line(raw_step, decision, approval)), [section(text)]


def decision_reply(event: Mapping[str, Any]) -> tuple[str, list[Block]]:
    """The thread reply for a decision: who has approved so far, or the final outcome and who decided it."""
    approval, decision, raw_step = _decided(event)
    approvers, required = approval.approvers, approval.required
    step_id = escape(raw_step, 60)
    who = people(approval)
    if decision == "pending":
        text = f":ballot_box_with_check: step `{step_id}`: {len(approvers)} of {required} approvals ({who})"
    else:
        text = f"{STATUS_EMOJI.get(decision, ':ballot_box_with_check:')} step `{step_id}` *{escape(decision, 20)}*"
        if decision == "denied":
            text += f" by {_denied_by(approval)}"
        if who:
            text += f" — approvals: {who} ({len(approvers)} of {required})"
    return _fallback(_decision_line(raw_step, decision, approval)), [section(text)]


def _decision_line(step: str, decision: str, approval: ApprovalNotice) -> str:
    """The notification text of a decision (unescaped; the caller escapes it)."""
    deniers = ", ".join(approval.denials)
    return f"step {step} {decision}" + (f" by {deniers}" if decision == "denied" and deniers else "")


def generic_reply(event: Mapping[str, Any]) -> tuple[str, list[Block]]:
    kind = str(event.get("type", "event"))
    step = StepNotice.from_payload(event.get("step"))
    icons = {
        "run_started": ":arrow_forward:",
        "run_finished": ":checkered_flag:",
        "verification": ":mag:",
        "rollback": ":leftwards_arrow_with_hook:",
        "containment_drifted": ":rotating_light:",
        "containment_repaired": ":wrench:",
        "containment_escalated": ":sos:",
    }
    parts = [icons.get(kind, ":small_blue_diamond:"), f"*{escape(kind.replace('_', ' '), 40)}*"]
    if kind in ("run_started", "run_finished"):
        parts.append(f"playbook *{escape(event.get('playbook', '?'), 100)}*")
    if step.id:
        parts.append(f"step `{escape(step.id, 60)}`")
    status = event.get("status") or step.status
    if kind == "run_finished" and status:
        status = status_shown(str(status), event.get("dry_run"))[1]
    if kind.startswith("containment_"):  # the watch's finding, not the (long finished) run's status
        status = kind.removeprefix("containment_")
    if kind == "verification" and step.verified is not None:
        # what the on-call must see is the check's outcome, not the run's status (still "running")
        status = "verified" if step.verified else "NOT verified"
        if not step.verified:
            parts[0] = ":warning:"
    if status:
        parts.append(f"— {escape(status, 40)}")
    summary = event.get("summary") or step.summary
    if summary:
        parts.append(f": {escape(summary, 1500)}")
    parts.append(f"(run `{escape(event.get('run_id', ''), 64)}`)")
    return _fallback(f"{kind} {status or ''}"), [section(" ".join(parts))]


def storm_summary(summaries: Sequence[Mapping[str, Any]], channel: str) -> tuple[str, list[Block]]:
    """One message standing for many alert cards, so a storm does not flood the channel."""
    rules = Counter((str(s.get("title", "?")), str(s.get("level", "?"))) for s in summaries)
    hosts = {str(s["host"]) for s in summaries if s.get("host")}
    lines = [f"• {escape(title, 120)} ({escape(level, 20)}) ×{n}" for (title, level), n in rules.most_common(15)]
    if len(rules) > 15:
        lines.append(f"• … and {len(rules) - 15} more rules")
    text = (
        f":cyclone: *Alert storm*: {len(summaries)} more alerts for {escape(channel, 80)} were summarised"
        f" instead of posted one by one ({len(hosts)} hosts).\n" + "\n".join(lines)
    )
    return _fallback(f"Alert storm: {len(summaries)} alerts summarised"), [section(text[:SECTION_LIMIT])]


def section(text: str) -> Block:
    """A mrkdwn section of already-escaped text, cut to Slack's limit."""
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:SECTION_LIMIT]}}


def blocks_as_text(blocks: Sequence[Mapping[str, Any]]) -> str:
    """Plain text of blocks, for the console fallback and logs."""
    out: list[str] = []
    for block in blocks:
        text = block.get("text")
        if isinstance(text, Mapping):
            out.append(str(text.get("text", "")))
        for f in block.get("fields") or []:
            out.append(str(f.get("text", "")).replace("\n", ": "))
        for el in block.get("elements") or []:
            if isinstance(el.get("text"), Mapping):
                out.append(f"[{el['text'].get('text', '')}]")
            elif "text" in el:
                out.append(str(el["text"]))
    return "\n".join(out)
