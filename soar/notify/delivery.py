"""The delivery loop: send a channel's outbox in order, paced, retried, never twice.

One deliverer per channel at a time (a lease in the store), so pacing holds across
workers. A 429 blocks the channel for ``Retry-After``; a 5xx, timeout or outage
blocks it with exponential backoff; a message whose first answer was lost is looked
up in the channel's history by its idempotency key before it is posted again. A
channel Slack does not know is reported once and its messages kept for retry.
A storm — more pending alert cards than ``slack_storm_threshold`` — is folded into
one summary message.
"""

from __future__ import annotations

import logging
import random
import uuid
from dataclasses import dataclass, field, replace
from typing import Any

from soar.clock import SYSTEM, Clock, iso
from soar.config import Settings
from soar.notify import cards, storm
from soar.notify.outbox import CHANNELS_KIND, KIND, Message, open_messages
from soar.notify.transport import CHANNEL_LEVEL_CODES, Permanent, RateLimited, Transient, Transport
from soar.records.outbox import ChannelState, MessageStatus
from soar.store import Conflict, Store

log = logging.getLogger("soar.notify")

LEASE_SECONDS = 120.0
BACKOFF_BASE = 1.0
BACKOFF_MAX = 300.0
MIN_RETRY = 0.5  # never poll a channel faster than this while something waits
CHANNEL_ERROR_RETRY = 300.0  # a channel Slack does not know: try again in five minutes
CHANNEL_LEVEL_ERRORS = CHANNEL_LEVEL_CODES


@dataclass
class DeliveryReport:
    channel: str
    sent: int = 0
    deduplicated: int = 0
    summarized: int = 0
    superseded: int = 0
    failed: int = 0
    busy: bool = False
    retry_in: float | None = None  # seconds until this channel should be delivered again; None = nothing left
    errors: list[str] = field(default_factory=list)


def backoff(attempts: int) -> float:
    """Exponential backoff with jitter: 1, 2, 4, … seconds, capped at five minutes."""
    delay = min(BACKOFF_BASE * 2 ** max(attempts - 1, 0), BACKOFF_MAX)
    return float(min(delay * (0.8 + 0.4 * random.random()), BACKOFF_MAX))  # noqa: S311 (jitter, not security)


class Deliverer:
    """Delivers one channel's outbox. Time (now, the pacing wait) comes from ``clock``, a test's or the wall's."""

    def __init__(self, settings: Settings, store: Store, transport: Transport, *, clock: Clock = SYSTEM) -> None:
        self.settings = settings
        self.store = store
        self.transport = transport
        self.clock = clock
        self.owner = uuid.uuid4().hex
        self._last_send_at: float | None = None  # this channel's last call to Slack on ``clock``, kept in its state

    # -- the channel lease and state
    def _channel_state(self, channel: str) -> tuple[ChannelState, str]:
        record = self.store.get(CHANNELS_KIND, channel)
        if record is None:
            self.store.create(CHANNELS_KIND, channel, ChannelState(channel).to_doc())
            record = self.store.get(CHANNELS_KIND, channel)
            assert record is not None
        return ChannelState.from_doc(record.doc, channel), record.version

    def _acquire(self, channel: str) -> ChannelState | None:
        state, version = self._channel_state(channel)
        now = self.clock.now()
        if state.held_by_other(self.owner, now):
            return None
        state.lease_owner, state.lease_until = self.owner, now + LEASE_SECONDS
        try:
            self.store.update(CHANNELS_KIND, channel, state.to_doc(), version=version)
        except Conflict:
            return None
        # Pacing holds across passes (every task, timer or process has its own deliverer): start from
        # the channel's last send, whoever made it.
        self._last_send_at = state.last_sent_at
        return state

    def _set_channel(self, channel: str, **changes: Any) -> ChannelState:
        """Change fields of the channel's state (made on first use)."""
        rec = self.store.mutate(
            CHANNELS_KIND,
            channel,
            lambda doc: replace(ChannelState.from_doc(doc, channel), **changes).to_doc(),
            create=lambda: ChannelState(channel).to_doc(),
            retries=20,
        )
        assert rec is not None  # change always writes
        return ChannelState.from_doc(rec.doc, channel)

    def claim_wake(self, channel: str, delay: float) -> bool:
        """True if the caller should schedule a wake-up in ``delay`` s: at most one is pending per channel.

        A storm sends one delivery task per message; those finding the channel busy would
        otherwise each schedule another look, a task storm of their own.
        """
        state, version = self._channel_state(channel)
        now = self.clock.now()
        if (state.wake_at or 0.0) > now:
            return False
        state.wake_at = now + delay
        try:
            self.store.update(CHANNELS_KIND, channel, state.to_doc(), version=version)
        except Conflict:
            return False
        return True

    # -- one pass
    def deliver(self, channel: str, *, budget_seconds: float = 50.0) -> DeliveryReport:
        report = DeliveryReport(channel)
        state = self._acquire(channel)
        if state is None:
            report.busy = True
            return report
        started = self.clock.now()
        try:
            while True:
                progressed = self._pass(channel, report)
                if report.retry_in is not None or not progressed or self.clock.now() - started > budget_seconds:
                    break
        finally:
            self._set_channel(channel, lease_owner=None, lease_until=0, last_sent_at=self._last_send_at)
        if report.retry_in is None:
            report.retry_in = self._next_due(channel)
        return report

    def _next_due(self, channel: str) -> float | None:
        """Seconds until something in this channel can be sent; a reply waits as long as its card does."""
        pending = {m.key: m for m, _ in open_messages(self.store, channel)}
        if not pending:
            return None
        state, _ = self._channel_state(channel)
        due = min(
            max(m.next_attempt_at, pending[m.target].next_attempt_at if m.target in pending else 0.0)
            for m in pending.values()
        )
        due = max(due, state.blocked_until or 0.0)
        return max(due - self.clock.now(), MIN_RETRY)

    def _pass(self, channel: str, report: DeliveryReport) -> bool:
        """Send what is due; True if anything changed (so another pass may find more)."""
        state, _ = self._channel_state(channel)
        blocked = state.blocked_for(self.clock.now())
        if blocked > 0:
            report.retry_in = blocked
            return False
        entries = open_messages(self.store, channel)
        if not entries:
            return False
        folded = storm.fold(self.store, channel, entries, self.settings.slack_storm_threshold)
        report.summarized += folded
        changed = folded > 0
        if changed:
            entries = open_messages(self.store, channel)
        superseded = storm.coalesce_updates(self.store, entries)
        report.superseded += superseded
        changed = changed or superseded > 0
        targets: dict[str, Message | None] = {}
        for message, version in entries:
            if message.status == "superseded":
                continue
            if message.next_attempt_at > self.clock.now():
                continue
            target = None
            if message.target:
                if message.target not in targets:
                    rec = self.store.get(KIND, message.target)
                    targets[message.target] = Message.from_doc(rec.doc, rec.id) if rec else None
                target = targets[message.target]
                if target is not None and target.status == "summarized" and message.important:
                    storm.unfold(self.store, target.key)  # an approval request needs its card: post it after all
                    targets.pop(message.target)
                    changed = True
                    continue
                if target is None or target.status in ("summarized", "superseded", "failed"):
                    self._finish(message, version, "summarized" if target else "failed", report)
                    changed = True
                    continue
                if target.status != "sent":
                    continue  # wait for the card to be posted first
                if message.op == "update" and self._needless(message, target):
                    self._finish(message, version, "superseded", report)
                    changed = True
                    continue
            if message.status == "sending":
                # Left in flight by a deliverer that died (we hold the lease now): Slack may have it.
                message.uncertain = True
            outcome = self._send(message, version, target, report)
            if outcome == "stop":
                return True
            changed = True
            if message.status == "sent":
                targets[message.key] = message
        return changed

    def _finish(self, message: Message, version: str, status: MessageStatus, report: DeliveryReport) -> None:
        message.status = status
        try:
            self.store.update(KIND, message.key, message.to_doc(), version=version)
        except Conflict:
            return
        if status == "summarized":
            report.summarized += 1
        elif status == "superseded":
            report.superseded += 1
        elif status == "failed":
            report.failed += 1

    @property
    def _can_edit(self) -> bool:
        return bool(getattr(self.transport, "can_edit", True))

    def _needless(self, message: Message, target: Message) -> bool:
        """An update Slack must not get: a revision not newer than what it shows (two workers, a retry
        enqueue out of order), or — where messages cannot be edited — no new follow-up line."""
        shown = target.shown_revision
        if message.revision is not None and shown is not None and message.revision <= shown:
            return True
        if not self._can_edit:
            return not message.followup or message.followup == target.shown_followup
        return False

    def _record_shown(self, target: Message, message: Message) -> None:
        """Remember on the updated message what Slack now shows, for :meth:`_needless`."""
        if message.revision is None and self._can_edit:
            return
        if message.revision is not None:
            target.shown_revision = max(
                message.revision, -1 if target.shown_revision is None else target.shown_revision
            )
        if not self._can_edit:
            target.shown_followup = message.followup

        def change(doc: dict[str, Any]) -> dict[str, Any]:
            stored = doc.get("shown_revision")
            if stored is not None and target.shown_revision is not None:
                target.shown_revision = max(int(stored), target.shown_revision)
            return {**doc, "shown_revision": target.shown_revision, "shown_followup": target.shown_followup}

        self.store.mutate(KIND, target.key, change, retries=20)

    def _pace(self) -> None:
        """Stay under Slack's per-channel limit; the console has none, so it is never slowed down."""
        if not getattr(self.transport, "paced", True):
            return
        interval = self.settings.slack_channel_interval
        if self._last_send_at is None:
            return
        wait = self._last_send_at + interval - self.clock.now()
        if wait > 0:
            self.clock.sleep(min(wait, interval))  # never more than one interval, whatever the clocks say

    def _send(self, message: Message, version: str, target: Message | None, report: DeliveryReport) -> str:
        message.status = "sending"
        message.attempts += 1
        now = self.clock.now()
        if message.first_attempt_at is None:
            message.first_attempt_at = now
        try:
            version = self.store.update(KIND, message.key, message.to_doc(), version=version).version
        except Conflict:
            return "skip"
        self._pace()
        try:
            deduplicated = self._call(message, target)
        except RateLimited as exc:
            message.status = "pending"
            message.last_error = exc.reason
            self._save(message, version)
            self._set_channel(message.channel, blocked_until=self.clock.now() + exc.retry_after)
            report.retry_in = exc.retry_after
            report.errors.append(exc.reason)
            return "stop"
        except Transient as exc:
            delay = backoff(message.attempts)
            message.status = "pending"
            message.uncertain = message.uncertain or exc.uncertain
            message.last_error = exc.reason
            message.next_attempt_at = self.clock.now() + delay
            self._save(message, version)
            self._set_channel(message.channel, blocked_until=self.clock.now() + delay)
            report.retry_in = delay
            report.errors.append(exc.reason)
            return "stop"
        except Permanent as exc:
            return self._permanent(message, version, exc, report)
        finally:
            self._last_send_at = self.clock.now()
        message.status = "sent"
        message.sent_at = iso(self.clock)
        message.last_error = None
        if message.op == "post" and message.revision is not None:
            message.shown_revision = message.revision
        self._save(message, version)
        if message.op == "update" and target is not None:
            self._record_shown(target, message)
        self._channel_ok(message.channel)
        if deduplicated:
            report.deduplicated += 1
        else:
            report.sent += 1
        return "sent"

    def _call(self, message: Message, target: Message | None) -> bool:
        """Send one message; True if it turned out to be posted already (its first answer was lost)."""
        if message.op == "post":
            thread_ts = target.ts if target else None
            if message.uncertain and message.first_attempt_at is not None:
                found = self.transport.find_posted(message.channel, message.key, message.first_attempt_at - 60)
                if found is not None:
                    message.channel_id, message.ts = found.channel_id, found.ts
                    return True
            blocks = message.blocks
            if target is not None and not getattr(self.transport, "can_thread", True):
                blocks = [cards.reference(target.summary, message.incident), *blocks]  # no thread: say which card
            posted = self.transport.post(message.channel, message.text, blocks, thread_ts=thread_ts, key=message.key)
            message.channel_id, message.ts = posted.channel_id, posted.ts
        elif message.op == "update":
            assert target is not None and target.ts is not None
            if self._can_edit:
                channel_id = target.channel_id or target.channel
                self.transport.update(channel_id, target.ts, message.text, message.blocks, key=message.key)
            else:  # a follow-up naming the card stands for the edit Slack cannot make here
                follow = [cards.reference(target.summary, message.incident), cards.section(message.followup or "")]
                self.transport.post(message.channel, message.text, follow, thread_ts=None, key=message.key)
        else:
            thread_ts = target.ts if target else None
            self.transport.ephemeral(
                message.channel, message.user or "", message.text, message.blocks, thread_ts=thread_ts
            )
        return False

    def _permanent(self, message: Message, version: str, exc: Permanent, report: DeliveryReport) -> str:
        message.last_error = exc.reason
        if exc.reason in CHANNEL_LEVEL_ERRORS:
            # The channel (or the token) is wrong, not the message: keep it for retry, report once.
            message.status = "pending"
            message.next_attempt_at = self.clock.now() + CHANNEL_ERROR_RETRY
            self._save(message, version)
            state = self._channel_state(message.channel)[0]
            if state.error != exc.reason:
                log.error("Slack channel %s: %s; messages are kept and retried", message.channel, exc.reason)
                self._set_channel(message.channel, error=exc.reason, error_reported_at=iso(self.clock))
            self._set_channel(message.channel, blocked_until=self.clock.now() + CHANNEL_ERROR_RETRY)
            report.retry_in = CHANNEL_ERROR_RETRY
            report.errors.append(exc.reason)
            return "stop"
        message.status = "failed"
        self._save(message, version)
        log.error("Slack rejected message %s in %s: %s", message.key, message.channel, exc.reason)
        report.failed += 1
        report.errors.append(exc.reason)
        return "failed"

    def _channel_ok(self, channel: str) -> None:
        state = self._channel_state(channel)[0]
        if state.error or state.blocked_until:
            if state.error:
                log.warning("Slack channel %s works again", channel)
            self._set_channel(channel, error=None, blocked_until=0)

    def _save(self, message: Message, version: str) -> None:
        try:
            self.store.update(KIND, message.key, message.to_doc(), version=version)
        except Conflict:  # we hold the lease; only a forced retry can race us, and it wants the same end state
            self.store.put(KIND, message.key, message.to_doc())
