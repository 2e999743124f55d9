"""Slack interactivity: verify a button click, then decide the approval it asks for.

The request half (:func:`verify`, :func:`parse`) is what the API endpoint runs
before it answers Slack (within 3 s); the work half (:func:`handle`) runs on a
worker: map the Slack user to a principal, check the approver role, call the
playbook engine's ``approvals.decide`` and tell the clicker what happened. The
message itself (buttons → decision) is updated from the engine's
``approval_decided`` run event, so every path (CLI, API, Slack) shows the same.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import parse_qs

from slack_sdk.signature import SignatureVerifier

from soar.config import Settings
from soar.notify.cards import APPROVE_ACTION, DENY_ACTION, VERDICT_FP_ACTION, VERDICT_TP_ACTION
from soar.store import Store

log = logging.getLogger("soar.notify")

INTERACTIONS_KIND = "slack_interactions"
# Slack action id -> approval decision: a registry, so a new button is one line.
DECISIONS: dict[str, str] = {APPROVE_ACTION: "approve", DENY_ACTION: "deny"}
VERDICTS: dict[str, str] = {VERDICT_TP_ACTION: "true_positive", VERDICT_FP_ACTION: "false_positive"}
MAX_BODY = 64 * 1024


class Rejected(Exception):
    """The request is refused before any work: ``status`` is the HTTP answer."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class Interaction:
    """One button click, reduced to what the decision needs."""

    id: str  # stable per click: a replayed request has the same id
    decision: str
    run_id: str
    step_id: str
    user_id: str
    user_name: str
    channel_id: str
    message_ts: str | None
    alert_id: str | None = None  # verdict clicks name an alert instead of a run step

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Interaction:
        return cls(**{k: data.get(k) for k in cls.__dataclass_fields__})  # type: ignore[arg-type]


def verify(settings: Settings, body: bytes, headers: Mapping[str, str]) -> None:
    """Slack's signature over the raw body; timestamps older than five minutes are replays."""
    secret = settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else ""
    if not secret:
        raise Rejected(503, "Slack interactivity is not configured (slack_signing_secret is not set)")
    if len(body) > MAX_BODY:
        raise Rejected(413, "request body too large")
    lower = {k.lower(): v for k, v in headers.items()}
    timestamp = lower.get("x-slack-request-timestamp")
    signature = lower.get("x-slack-signature")
    if not timestamp or not signature:
        raise Rejected(401, "missing Slack signature headers")
    if not timestamp.isdigit():
        raise Rejected(401, "invalid Slack request timestamp")
    try:  # slack-sdk's verifier decodes the body and would raise on anything else
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Rejected(400, "request body is not UTF-8 text") from exc
    if not SignatureVerifier(secret).is_valid(body=body, timestamp=timestamp, signature=signature):
        raise Rejected(401, "invalid Slack signature or request older than 5 minutes")


def parse(body: bytes) -> Interaction:
    """The click in a ``block_actions`` payload; Rejected(400) for anything else."""
    try:
        form = parse_qs(body.decode("utf-8"), strict_parsing=True)
        payload = json.loads(form["payload"][0])
    except (UnicodeDecodeError, ValueError, KeyError, IndexError) as exc:
        raise Rejected(400, f"malformed interactivity payload: {type(exc).__name__}") from exc
    if not isinstance(payload, dict) or payload.get("type") != "block_actions":
        raise Rejected(400, "unsupported interaction type")
    actions = payload.get("actions")
    if not isinstance(actions, list) or len(actions) != 1 or not isinstance(actions[0], dict):
        raise Rejected(400, "expected exactly one action")
    action = actions[0]
    action_id = str(action.get("action_id"))
    decision = DECISIONS.get(action_id) or VERDICTS.get(action_id)
    if decision is None:
        raise Rejected(400, f"unknown action id {action_id[:80]!r}")
    alert_id: str | None = None
    try:
        value = json.loads(str(action.get("value")))
        if not isinstance(value, dict):
            raise TypeError(type(value).__name__)
        if action_id in VERDICTS:
            alert_id, run_id, step_id = _text(value.get("alert_id")), "-", "-"
        else:
            run_id, step_id = _text(value.get("run_id")), _text(value.get("step_id"))
    except (ValueError, TypeError) as exc:
        raise Rejected(400, "malformed action value") from exc
    user, channel, container = payload.get("user"), payload.get("channel"), payload.get("container") or {}
    if not isinstance(user, dict) or not isinstance(channel, dict) or not isinstance(container, dict):
        raise Rejected(400, "malformed payload: user, channel and container must be objects")
    try:
        user_id, channel_id = _text(user.get("id"), 40), _text(channel.get("id"), 40)
        message_ts = _text(container["message_ts"], 40) if container.get("message_ts") else None
    except (ValueError, TypeError) as exc:
        raise Rejected(400, f"malformed payload: user.id, channel.id or container.message_ts ({exc})") from exc
    ident = json.dumps([user_id, action.get("action_ts"), action_id, run_id, step_id, alert_id])
    return Interaction(
        id=hashlib.sha256(ident.encode()).hexdigest()[:32],
        decision=decision,
        run_id=run_id,
        step_id=step_id,
        user_id=user_id,
        user_name=str(user.get("username") or user.get("name") or user_id)[:80],
        channel_id=channel_id,
        message_ts=message_ts,
        alert_id=alert_id,
    )


def _text(value: Any, limit: int = 200) -> str:
    """A non-empty string of at most ``limit`` characters from a payload, else ValueError/TypeError."""
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    if not value or len(value) > limit:
        raise ValueError(f"expected 1 to {limit} characters")
    return value


def accept(store: Store, interaction: Interaction) -> bool:
    """Remember the click; False if this exact request was seen before (a replay inside the window)."""
    return store.create(INTERACTIONS_KIND, interaction.id, {**interaction.to_dict(), "status": "received"})


def handle(settings: Settings, store: Store, interaction: Interaction) -> dict[str, Any]:
    """The work after the ack: who clicked, may they, and the decision itself. Returns what happened."""
    from soar import access, audit
    from soar.notify.service import ephemeral
    from soar.scope import scopes_for

    def refuse(reason: str, *, audited: bool = False) -> dict[str, Any]:
        ephemeral(
            settings,
            store,
            channel=interaction.channel_id,
            user=interaction.user_id,
            text=reason,
            key=f"ephemeral:{interaction.id}",
        )
        _record(store, interaction, "refused", reason)
        if audited:  # the engine wrote its own approval.refused entry
            return {"status": "refused", "reason": reason}
        audit.record(
            store,
            actor=f"slack:{interaction.user_id}",
            action="approval.refused",
            target=f"{interaction.run_id}/{interaction.step_id}",
            details={"via": "slack", "decision": interaction.decision, "reason": reason},
            settings=settings,
        )
        return {"status": "refused", "reason": reason}

    principal = access.principal_for_slack_user(interaction.user_id, settings)
    if principal is None:
        return refuse("You are not a known soar user, so you cannot approve or deny. Ask an admin to add you.")
    if interaction.alert_id is not None:
        return _verdict(settings, store, interaction, principal, refuse)
    try:
        from soar.playbooks import approvals
    except ImportError:
        log.error(
            "approval %s/%s: the playbook engine's approvals are not available", interaction.run_id, interaction.step_id
        )
        return refuse("Approvals are not available on this soar installation yet; nothing was decided.")
    run = store.get("runs", interaction.run_id)
    # the card is already in the channel, so a scope refusal may say why (the API answers 404 instead)
    allowed = access.authorize_in(principal, "approvals:decide", scopes_for(settings).of_run(run.doc if run else None))
    if not allowed.allowed:
        return refuse(f"Not allowed: {allowed.reason}")
    try:  # scope (from the inventory), separation of duties and roles are checked by decide_as
        outcome = approvals.decide_as(
            settings,
            store,
            interaction.run_id,
            interaction.step_id,
            principal=principal,
            decision="deny" if interaction.decision == "deny" else "approve",
            via="slack",
            slack_user=interaction.user_id,
        )
    except Exception as exc:  # a SoarError (unknown run, expired, not allowed) becomes the clicker's answer
        message = str(exc) if _is_soar_error(exc) else f"could not record the decision ({type(exc).__name__})"
        if not _is_soar_error(exc):
            log.exception("approval %s/%s failed", interaction.run_id, interaction.step_id)
        if isinstance(exc, approvals.NotAllowed):
            return refuse(f"Not allowed: {message}", audited=True)
        return refuse(message)
    result = _outcome_dict(outcome)
    if not result.get("changed", True):
        ephemeral(
            settings,
            store,
            channel=interaction.channel_id,
            user=interaction.user_id,
            text=f"Nothing changed: {result.get('message') or 'this approval was already decided'}.",
            key=f"ephemeral:{interaction.id}",
        )
    _record(store, interaction, "decided", result.get("message") or "")
    return {"status": "decided", **result}


def _verdict(
    settings: Settings, store: Store, interaction: Interaction, principal: Any, refuse: Callable[[str], dict[str, Any]]
) -> dict[str, Any]:
    """A true/false-positive click on an alert card: the same verdict the CLI and API record."""
    from soar import access
    from soar.notify.service import ephemeral
    from soar.review.feedback import parse_verdict, record_verdict
    from soar.scope import scopes_for

    alert_id = str(interaction.alert_id)
    alert = store.get("alerts", alert_id)
    allowed = access.authorize_in(
        principal, "verdicts:write", scopes_for(settings).of_alert(alert.doc if alert else None)
    )
    if not allowed.allowed:
        return refuse(f"Not allowed: {allowed.reason}")
    try:
        doc = record_verdict(
            store,
            settings,
            alert_id,
            parse_verdict({"verdict": interaction.decision}),
            analyst=principal.name,
            role=principal.role,
            via="slack",
        )
    except Exception as exc:
        if not _is_soar_error(exc):
            log.exception("verdict on %s failed", alert_id)
        return refuse(str(exc) if _is_soar_error(exc) else f"could not record the verdict ({type(exc).__name__})")
    label = interaction.decision.replace("_", " ")
    ephemeral(
        settings,
        store,
        channel=interaction.channel_id,
        user=interaction.user_id,
        text=f"Recorded: {label} for this alert.",
        key=f"ephemeral:{interaction.id}",
    )
    _record(store, interaction, "decided", f"verdict {label}")
    return {"status": "decided", "verdict": doc.get("verdict"), "alert_id": alert_id}


def _is_soar_error(exc: Exception) -> bool:
    from soar.errors import SoarError

    return isinstance(exc, SoarError)


def _outcome_dict(outcome: Any) -> dict[str, Any]:
    if isinstance(outcome, Mapping):
        return dict(outcome)
    if hasattr(outcome, "to_dict"):
        return dict(outcome.to_dict())
    if hasattr(outcome, "__dataclass_fields__"):
        return asdict(outcome)
    return {"message": str(outcome)}


def _record(store: Store, interaction: Interaction, status: str, reason: str) -> None:
    record = store.get(INTERACTIONS_KIND, interaction.id)
    doc = {**(record.doc if record else interaction.to_dict()), "status": status, "reason": reason}
    store.put(INTERACTIONS_KIND, interaction.id, doc)
