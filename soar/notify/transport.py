"""How a message leaves soar: Slack's Web API (slack-sdk ``WebClient``) or, unconfigured, the log.

A transport sends exactly once per call and classifies every failure, so the
delivery loop (not the HTTP client) decides about retries:

    DeliveryError
    ├── RateLimited     429: wait ``retry_after`` seconds, the message was not posted
    ├── Transient       5xx, timeout, connection error: retry with backoff; ``uncertain``
    │                   when Slack may have posted it before the answer was lost
    └── Permanent       the request itself is wrong (channel_not_found, invalid_auth, ...)
"""

from __future__ import annotations

import functools
import itertools
import logging
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.webhook import WebhookClient

from soar.config import Settings
from soar.notify.cards import blocks_as_text

log = logging.getLogger("soar.notify")

METADATA_EVENT = "soar_outbox"
TIMEOUT = 10


class DeliveryError(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RateLimited(DeliveryError):
    def __init__(self, retry_after: float) -> None:
        super().__init__(f"rate limited, retry after {retry_after:g}s")
        self.retry_after = retry_after


class Transient(DeliveryError):
    def __init__(self, reason: str, *, uncertain: bool) -> None:
        super().__init__(reason)
        self.uncertain = uncertain


class Permanent(DeliveryError):
    pass


@dataclass(frozen=True)
class Posted:
    channel_id: str
    ts: str


class Transport(Protocol):
    """What the delivery loop needs from Slack."""

    name: str
    can_edit: bool  # chat.update: False for incoming webhooks (updates become follow-up posts)
    can_thread: bool  # thread_ts: False for incoming webhooks (replies name their card instead)

    def post(
        self, channel: str, text: str, blocks: Sequence[Mapping[str, Any]], *, thread_ts: str | None, key: str
    ) -> Posted: ...

    def update(self, channel_id: str, ts: str, text: str, blocks: Sequence[Mapping[str, Any]], *, key: str) -> None:
        """Edit a posted message; ``key`` (the update's idempotency key, with its revision) goes in its metadata."""
        ...

    def ephemeral(
        self, channel: str, user: str, text: str, blocks: Sequence[Mapping[str, Any]], *, thread_ts: str | None
    ) -> None: ...

    def find_posted(self, channel: str, key: str, oldest: float) -> Posted | None:
        """A message we posted with this idempotency key, if Slack has it (for uncertain retries)."""
        ...


# Slack error codes that retrying cannot fix without someone changing something.
# Errors of the channel or the credentials, not of one message: every message to that channel waits.
CHANNEL_LEVEL_CODES = frozenset(
    {
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "missing_scope",
    }
)
PERMANENT_CODES = CHANNEL_LEVEL_CODES | {
    "invalid_blocks",
    "msg_too_long",
    "no_text",
    "message_not_found",
    "cant_update_message",
    "thread_not_found",
    "user_not_found",
    "user_not_in_channel",
}


def _classify(exc: Exception, *, sent: bool) -> DeliveryError:
    if isinstance(exc, SlackApiError):
        status = int(getattr(exc.response, "status_code", 0) or 0)
        data = exc.response.data if isinstance(exc.response.data, dict) else {}
        code = str(data.get("error") or f"http {status}")
        if status == 429 or code == "ratelimited":
            headers = {k.lower(): v for k, v in (exc.response.headers or {}).items()}
            raw = headers.get("retry-after", "1")
            value = raw[0] if isinstance(raw, list) else raw
            try:
                retry_after = max(float(value), 0.0)
            except (TypeError, ValueError):
                retry_after = 1.0
            return RateLimited(retry_after)
        if status >= 500:
            return Transient(f"Slack answered {status} ({code})", uncertain=sent)
        if code in PERMANENT_CODES:
            return Permanent(code)
        return Transient(code, uncertain=False)
    reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".strip()
    return Transient(f"Slack not reachable ({reason[:200]})", uncertain=sent)


class SlackTransport:
    """The Web API with a bot token; the client's own retries are off — the outbox retries."""

    name = "slack"
    can_edit = True
    can_thread = True

    def __init__(self, token: str, base_url: str) -> None:
        self.client = WebClient(token=token, base_url=base_url, timeout=TIMEOUT, retry_handlers=[])

    @classmethod
    def from_settings(cls, settings: Settings) -> SlackTransport:
        assert settings.slack_bot_token is not None
        return cls(settings.slack_bot_token.get_secret_value(), settings.slack_api_url)

    def post(
        self, channel: str, text: str, blocks: Sequence[Mapping[str, Any]], *, thread_ts: str | None, key: str
    ) -> Posted:
        try:
            resp = self.client.chat_postMessage(
                channel=channel,
                text=text,
                blocks=[dict(b) for b in blocks] or None,
                thread_ts=thread_ts,
                unfurl_links=False,
                unfurl_media=False,
                metadata={"event_type": METADATA_EVENT, "event_payload": {"key": key}},
            )
        except Exception as exc:
            raise _classify(exc, sent=True) from exc
        return Posted(str(resp["channel"]), str(resp["ts"]))

    def update(self, channel_id: str, ts: str, text: str, blocks: Sequence[Mapping[str, Any]], *, key: str) -> None:
        try:
            self.client.chat_update(
                channel=channel_id,
                ts=ts,
                text=text,
                blocks=[dict(b) for b in blocks],
                metadata={"event_type": METADATA_EVENT, "event_payload": {"key": key}},
            )
        except Exception as exc:
            raise _classify(exc, sent=False) from exc  # an update repeated is the same update

    def ephemeral(
        self, channel: str, user: str, text: str, blocks: Sequence[Mapping[str, Any]], *, thread_ts: str | None
    ) -> None:
        try:
            self.client.chat_postEphemeral(
                channel=channel, user=user, text=text, blocks=[dict(b) for b in blocks] or None, thread_ts=thread_ts
            )
        except Exception as exc:
            raise _classify(exc, sent=False) from exc

    def find_posted(self, channel: str, key: str, oldest: float) -> Posted | None:
        try:
            resp = self.client.conversations_history(
                channel=channel, oldest=f"{oldest:.6f}", limit=200, include_all_metadata=True
            )
        except Exception as exc:
            raise _classify(exc, sent=False) from exc
        for message in resp.get("messages") or []:
            meta = message.get("metadata") or {}
            if meta.get("event_type") == METADATA_EVENT and (meta.get("event_payload") or {}).get("key") == key:
                return Posted(str(resp.get("channel") or channel), str(message["ts"]))
        return None


class ConsoleTransport:
    """Slack not configured: the same content, as text, to the log and stderr."""

    name = "console"
    paced = False  # no rate limit to respect
    can_edit = True  # an update prints the card again
    can_thread = True

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream or sys.stderr
        self._ids = itertools.count(1)

    def _emit(self, head: str, text: str, blocks: Sequence[Mapping[str, Any]]) -> str:
        ts = f"console.{next(self._ids):06d}"
        body = blocks_as_text(blocks) or text
        log.info("%s %s", head, text)
        print(f"[slack→console] {head}\n{body}\n", file=self.stream, flush=True)
        return ts

    def post(
        self, channel: str, text: str, blocks: Sequence[Mapping[str, Any]], *, thread_ts: str | None, key: str
    ) -> Posted:
        where = f"{channel} (thread {thread_ts})" if thread_ts else channel
        return Posted(channel, self._emit(f"post to {where}", text, blocks))

    def update(self, channel_id: str, ts: str, text: str, blocks: Sequence[Mapping[str, Any]], *, key: str) -> None:
        self._emit(f"update {channel_id} {ts}", text, blocks)

    def ephemeral(
        self, channel: str, user: str, text: str, blocks: Sequence[Mapping[str, Any]], *, thread_ts: str | None
    ) -> None:
        self._emit(f"ephemeral to {user} in {channel}", text, blocks)

    def find_posted(self, channel: str, key: str, oldest: float) -> Posted | None:
        return None


WEBHOOK_LIMITS = (
    "Slack is configured with an incoming webhook (slack_webhook_url): it cannot thread, edit or send "
    "ephemeral messages, so replies are posted as messages naming their alert card, card updates as "
    "one-line status follow-ups, and refusals are only logged. Set slack_bot_token for threads, "
    "in-place card updates and approvals."
)


@functools.cache
def warn_webhook_limits() -> None:
    """Said once per process: the on-call should know what a webhook cannot do before relying on it."""
    log.warning(WEBHOOK_LIMITS)


class WebhookTransport:
    """An incoming webhook: the lighter option. One fixed channel, no threads, no edits, no ephemerals.

    Slack's limitation, not ours: the deliverer posts replies as messages of their own that name
    their card, and each card update as a compact follow-up when the status changed (coalesced
    like updates); ephemerals are logged. Use a bot token for threads and approvals.
    """

    name = "webhook"
    can_edit = False
    can_thread = False

    def __init__(self, url: str) -> None:
        self.client = WebhookClient(url, timeout=TIMEOUT, retry_handlers=[])
        self._ids = itertools.count(1)

    def post(
        self, channel: str, text: str, blocks: Sequence[Mapping[str, Any]], *, thread_ts: str | None, key: str
    ) -> Posted:
        try:
            resp = self.client.send(text=text, blocks=[dict(b) for b in blocks] or None, unfurl_links=False)
        except Exception as exc:
            raise _classify(exc, sent=True) from exc
        if resp.status_code == 429:
            raw = {k.lower(): v for k, v in (resp.headers or {}).items()}.get("retry-after", "1")
            value = raw[0] if isinstance(raw, list) else raw
            raise RateLimited(float(value) if str(value).replace(".", "", 1).isdigit() else 1.0)
        if resp.status_code >= 500:
            raise Transient(f"Slack webhook answered {resp.status_code}", uncertain=True)
        if resp.status_code != 200:
            code = (resp.body or f"http {resp.status_code}").strip()[:80]
            raise Permanent("channel_not_found" if code in ("channel_not_found", "no_service") else code)
        return Posted(channel, f"webhook.{next(self._ids):06d}")

    def update(self, channel_id: str, ts: str, text: str, blocks: Sequence[Mapping[str, Any]], *, key: str) -> None:
        raise Permanent("cant_update_message")  # the deliverer posts a follow-up instead (can_edit is False)

    def ephemeral(
        self, channel: str, user: str, text: str, blocks: Sequence[Mapping[str, Any]], *, thread_ts: str | None
    ) -> None:
        log.warning("webhook cannot send ephemeral messages (to %s): %s", user, text)

    def find_posted(self, channel: str, key: str, oldest: float) -> Posted | None:
        return None  # a webhook cannot read history: an uncertain post is sent again


def transport_name(settings: Settings) -> str:
    """Which transport these settings choose: ``slack`` (bot token), ``webhook`` or ``console``."""
    if settings.slack_bot_token is not None and settings.slack_bot_token.get_secret_value():
        return SlackTransport.name
    if settings.slack_webhook_url is not None and settings.slack_webhook_url.get_secret_value():
        return WebhookTransport.name
    return ConsoleTransport.name


def transport_for(settings: Settings) -> Transport:
    """Slack's Web API when a bot token is configured, else an incoming webhook, else the console."""
    name = transport_name(settings)
    if name == SlackTransport.name:
        return SlackTransport.from_settings(settings)
    if name == WebhookTransport.name:
        warn_webhook_limits()
        assert settings.slack_webhook_url is not None
        return WebhookTransport(settings.slack_webhook_url.get_secret_value())
    return ConsoleTransport()
