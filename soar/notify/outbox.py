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
import json
from collections.abc import Sequence
from typing import Any

from soar.records.outbox import CHANNELS_KIND, KIND, Message, MessageKind, Op, seq
from soar.store import Store

__all__ = [
    "CHANNELS_KIND",
    "KIND",
    "OPEN_STATUSES",
    "Message",
    "MessageKind",
    "Op",
    "channels_with_open_messages",
    "enqueue",
    "get",
    "key_for",
    "listing",
    "open_messages",
    "seq",
]

OPEN_STATUSES = ("pending", "sending")


def key_for(*parts: Any) -> str:
    """A stable idempotency key from what the message is about."""
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]
    return f"{parts[0]}:{digest}" if parts and isinstance(parts[0], str) else digest


def enqueue(store: Store, message: Message) -> bool:
    """Store the message unless one with its key exists; True if this call stored it."""
    return store.create(KIND, message.key, message.to_doc())


def get(store: Store, key: str) -> Message | None:
    record = store.get(KIND, key)
    return Message.from_doc(record.doc, key) if record else None


def open_messages(store: Store, channel: str, limit: int = 20000) -> list[tuple[Message, str]]:
    """Pending and in-flight messages of a channel, oldest first, with their store versions."""
    records = store.find(KIND, {"channel": channel, "status": list(OPEN_STATUSES)}, order_by="seq", limit=limit)
    return [(Message.from_doc(r.doc, r.id), r.version) for r in records]


def channels_with_open_messages(store: Store, limit: int = 20000, *, overdue_before: float | None = None) -> list[str]:
    """Channels with a waiting message; with ``overdue_before``, only those whose next attempt is older."""
    records = store.find(KIND, {"status": list(OPEN_STATUSES)}, order_by="seq", limit=limit)
    return sorted(
        {
            m.channel
            for m in (Message.from_doc(r.doc, r.id) for r in records)
            if overdue_before is None or m.next_attempt_at < overdue_before
        }
    )


def listing(store: Store, statuses: Sequence[str] | None = None, limit: int = 200) -> list[Message]:
    where = {"status": list(statuses)} if statuses else None
    records = store.find(KIND, where, order_by="seq", descending=True, limit=limit)
    return [Message.from_doc(r.doc, r.id) for r in records]
