"""The outbox: every Slack message is stored before it is sent.

A message's id is its idempotency key (``card:<incident>``, ``reply:<run>:<event hash>``,
...): enqueueing the same message twice stores it once, and the delivery loop
marks it sent exactly when Slack confirmed it. Replies and updates name their
*target* message by key; they wait until the target has a Slack ``ts``.

Statuses: ``pending`` → ``sending`` → ``sent``; ``superseded`` (a newer update of the same
message went instead, or Slack already shows a newer revision), ``summarized`` (folded into a
storm summary), ``failed`` (Slack rejected this message itself; kept, shown by ``soar notify
outbox``, retried on demand).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from soar.alerts import utcnow_iso
from soar.store import Store

KIND = "outbox"
CHANNELS_KIND = "notify_channels"

Op = Literal["post", "update", "ephemeral"]
MessageKind = Literal["card", "reply", "update", "ephemeral", "summary"]
OPEN_STATUSES = ("pending", "sending")

_counter = itertools.count()


def seq() -> str:
    """A sortable sequence number (as a string: the Elasticsearch store compares flattened values as text)."""
    return f"{time.time_ns():020d}{next(_counter) % 1000:03d}"


def key_for(*parts: Any) -> str:
    """A stable idempotency key from what the message is about."""
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]
    return f"{parts[0]}:{digest}" if parts and isinstance(parts[0], str) else digest


@dataclass
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
    status: str = "pending"
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
        return asdict(self)

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> Message:
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in doc.items() if k in known})


def enqueue(store: Store, message: Message) -> bool:
    """Store the message unless one with its key exists; True if this call stored it."""
    return store.create(KIND, message.key, message.to_doc())


def get(store: Store, key: str) -> Message | None:
    record = store.get(KIND, key)
    return Message.from_doc(record.doc) if record else None


def open_messages(store: Store, channel: str, limit: int = 20000) -> list[tuple[Message, str]]:
    """Pending and in-flight messages of a channel, oldest first, with their store versions."""
    records = store.find(KIND, {"channel": channel, "status": list(OPEN_STATUSES)}, order_by="seq", limit=limit)
    return [(Message.from_doc(r.doc), r.version) for r in records]


def channels_with_open_messages(store: Store, limit: int = 20000, *, overdue_before: float | None = None) -> list[str]:
    """Channels with a waiting message; with ``overdue_before``, only those whose next attempt is older."""
    records = store.find(KIND, {"status": list(OPEN_STATUSES)}, order_by="seq", limit=limit)
    return sorted(
        {
            str(r.doc["channel"])
            for r in records
            if overdue_before is None or float(r.doc.get("next_attempt_at") or 0.0) < overdue_before
        }
    )


def listing(store: Store, statuses: Sequence[str] | None = None, limit: int = 200) -> list[Message]:
    where = {"status": list(statuses)} if statuses else None
    return [Message.from_doc(r.doc) for r in store.find(KIND, where, order_by="seq", descending=True, limit=limit)]
