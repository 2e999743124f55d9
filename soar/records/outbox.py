"""The ``outbox`` document (one Slack message, stored before it is sent) and the ``notify_channels``
document (a channel's delivery state: its lease, pacing and what blocks it).

Pure. ``soar/notify/outbox.py`` says what the statuses mean and how the delivery loop uses them.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, Literal

from soar.records._read import VERSION_FIELD, Reader, check_version, modelled, put, with_nulls

KIND = "outbox"
CHANNELS_KIND = "notify_channels"
SCHEMA_VERSION = 1
CHANNEL_SCHEMA_VERSION = 1

Op = Literal["post", "update", "ephemeral"]
OPS: tuple[Op, ...] = Op.__args__  # type: ignore[attr-defined]
MessageKind = Literal["card", "reply", "update", "ephemeral", "summary"]
MESSAGE_KINDS: tuple[MessageKind, ...] = MessageKind.__args__  # type: ignore[attr-defined]
MessageStatus = Literal["pending", "sending", "sent", "superseded", "summarized", "failed"]
MESSAGE_STATUSES: tuple[MessageStatus, ...] = MessageStatus.__args__  # type: ignore[attr-defined]

_counter = itertools.count()


def utcnow_iso() -> str:
    """Now as soar writes times (``soar.alerts.utcnow_iso``; repeated so records import nothing heavy)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def seq() -> str:
    """A sortable sequence number (as a string: the Elasticsearch store compares flattened values as text)."""
    return f"{time.time_ns():020d}{next(_counter) % 1000:03d}"


@dataclass(slots=True)
class Message:
    key: str
    op: Op
    kind: MessageKind
    channel: str
    text: str
    blocks: list[dict[str, Any]] = field(default_factory=list)
    target: str | None = None  # key of the message this replies to or updates
    user: str | None = None  # ephemeral recipient
    incident: str | None = None
    important: bool = False  # approval requests are never folded into a storm summary
    summary: dict[str, Any] | None = None  # for cards: what the storm summary counts
    status: MessageStatus = "pending"
    seq: str = field(default_factory=seq)
    created_at: str = field(default_factory=utcnow_iso)
    attempts: int = 0
    next_attempt_at: float = 0.0
    first_attempt_at: float | None = None
    uncertain: bool = False
    last_error: str | None = None
    channel_id: str | None = None
    ts: str | None = None
    sent_at: str | None = None
    folded_into: str | None = None
    storm_exempt: bool = False
    # Updates carry the revision of what they show; a posted message remembers the newest revision
    # Slack shows, so an older update arriving late (two workers, a retry) is never sent after it.
    revision: int | None = None
    shown_revision: int | None = None
    # For transports that cannot edit (incoming webhooks): a one-line follow-up standing for the update.
    followup: str | None = None
    shown_followup: str | None = None

    def to_doc(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["blocks"] = list(self.blocks)
        return {VERSION_FIELD: SCHEMA_VERSION, **out}

    @classmethod
    def from_doc(cls, doc: Any, id: str | None = None) -> Message:
        key = str((doc.get("key") if isinstance(doc, dict) else None) or id or "?")
        check_version(KIND, key, doc if isinstance(doc, dict) else {}, SCHEMA_VERSION)
        r = Reader(KIND, key, doc)
        summary = r.opt_obj("summary")
        return cls(
            key=r.string("key", key),
            op=r.choice("op", OPS),
            kind=r.choice("kind", MESSAGE_KINDS),
            channel=r.string("channel"),
            text=r.string("text", ""),
            blocks=[dict(r.child(f"blocks[{i}]", b).doc) for i, b in enumerate(r.array("blocks"))],
            target=r.opt_string("target"),
            user=r.opt_string("user"),
            incident=r.opt_string("incident"),
            important=r.flag("important", False),
            summary=summary,
            status=r.choice("status", MESSAGE_STATUSES, "pending"),
            seq=r.string("seq", "0"),
            created_at=r.string("created_at", ""),
            attempts=r.integer("attempts", 0),
            next_attempt_at=r.number("next_attempt_at", 0.0),
            first_attempt_at=r.opt_number("first_attempt_at"),
            uncertain=r.flag("uncertain", False),
            last_error=r.opt_string("last_error"),
            channel_id=r.opt_string("channel_id"),
            ts=r.opt_string("ts"),
            sent_at=r.opt_string("sent_at"),
            folded_into=r.opt_string("folded_into"),
            storm_exempt=r.flag("storm_exempt", False),
            revision=r.opt_integer("revision"),
            shown_revision=r.opt_integer("shown_revision"),
            followup=r.opt_string("followup"),
            shown_followup=r.opt_string("shown_followup"),
        )


@dataclass(slots=True)
class ChannelState:
    """One channel's delivery state: who delivers it now (the lease), when it last sent, what blocks it.

    Times are epoch seconds; an absent one (None) is as good as 0: not held, not blocked.
    """

    channel: str
    lease_owner: str | None = None
    lease_until: float | None = None
    last_sent_at: float | None = None
    blocked_until: float | None = None
    wake_at: float | None = None
    error: str | None = None
    error_reported_at: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    nulls: frozenset[str] = field(default=frozenset(), compare=False, repr=False)

    @classmethod
    def from_doc(cls, doc: Any, id: str | None = None) -> ChannelState:
        name = str((doc.get("channel") if isinstance(doc, dict) else None) or id or "?")
        check_version(CHANNELS_KIND, name, doc if isinstance(doc, dict) else {}, CHANNEL_SCHEMA_VERSION)
        r = Reader(CHANNELS_KIND, name, doc)
        return cls(
            channel=r.string("channel", name),
            lease_owner=r.opt_string("lease_owner"),
            lease_until=r.opt_number("lease_until"),
            last_sent_at=r.opt_number("last_sent_at"),
            blocked_until=r.opt_number("blocked_until"),
            wake_at=r.opt_number("wake_at"),
            error=r.opt_string("error"),
            error_reported_at=r.opt_string("error_reported_at"),
            extra=r.unknown(modelled(cls)),
            nulls=r.nulls(modelled(cls)),
        )

    def to_doc(self) -> dict[str, Any]:
        out: dict[str, Any] = {VERSION_FIELD: CHANNEL_SCHEMA_VERSION, "channel": self.channel}
        for name in ("lease_owner", "lease_until", "last_sent_at", "blocked_until", "wake_at", "error"):
            put(out, name, getattr(self, name))
        put(out, "error_reported_at", self.error_reported_at)
        return {**self.extra, **with_nulls(out, self.nulls)}

    def held_by_other(self, owner: str, now: float) -> bool:
        """Whether another deliverer's lease on the channel is still running."""
        return self.lease_owner not in (None, owner) and (self.lease_until or 0.0) > now

    def blocked_for(self, now: float) -> float:
        """Seconds the channel stays blocked (a 429, a backoff, an unknown channel); 0 or less when it is not."""
        return (self.blocked_until or 0.0) - now
