"""Storms and coalescing: fewer, better messages when many wait for one channel.

A storm — more pending alert cards than ``slack_storm_threshold`` — keeps the oldest
cards and folds the rest into one summary (counts per rule and level, number of hosts).
A card with a pending approval request is never folded, and a late approval request
unfolds its card. Of several pending updates of one message only the newest — the highest
revision, whatever order workers enqueued them in — is sent.
"""

from __future__ import annotations

from soar.notify import cards
from soar.notify.outbox import KIND, Message, enqueue
from soar.store import Conflict, Store

Entries = list[tuple[Message, str]]  # (message, store version), oldest first


def fold(store: Store, channel: str, entries: Entries, threshold: int) -> int:
    """Fold the cards beyond ``threshold`` into one summary message; the number folded."""
    waiting = [(m, v) for m, v in entries if m.kind == "card" and m.status == "pending" and m.attempts == 0]
    important_targets = {m.target for m, _ in entries if m.important and m.target}
    foldable = [(m, v) for m, v in waiting if not m.storm_exempt and m.key not in important_targets]
    if len(waiting) <= threshold or len(foldable) <= 1:
        return 0
    keep = max(threshold - (len(waiting) - len(foldable)), 0)
    folded = foldable[keep:]
    if len(folded) <= 1:
        return 0
    summary_key = f"summary:{folded[0][0].key}"
    text, blocks = cards.storm_summary([m.summary or {} for m, _ in folded], channel)
    enqueue(store, Message(key=summary_key, op="post", kind="summary", channel=channel, text=text, blocks=blocks))
    count = 0
    for message, version in folded:
        message.status = "summarized"
        message.folded_into = summary_key
        try:
            store.update(KIND, message.key, message.to_doc(), version=version)
            count += 1
        except Conflict:
            continue
    return count


def unfold(store: Store, key: str) -> None:
    """Put a folded card back in line (its incident needs a thread after all)."""
    record = store.get(KIND, key)
    if record is None:
        return
    doc = {**record.doc, "status": "pending", "storm_exempt": True, "folded_into": None}
    try:
        store.update(KIND, key, doc, version=record.version)
    except Conflict:
        return


def _newness(message: Message) -> tuple[int, str]:
    """Revision first (workers may enqueue out of order), then creation order."""
    return (message.revision if message.revision is not None else -1, message.seq)


def coalesce_updates(store: Store, entries: Entries) -> int:
    """Supersede all but the newest (highest revision) pending update of each message; the number superseded."""
    newest: dict[str, Message] = {}
    for message, _ in entries:
        if message.op == "update" and message.target and message.status == "pending":
            best = newest.get(message.target)
            if best is None or _newness(message) > _newness(best):
                newest[message.target] = message
    latest = {target: m.key for target, m in newest.items()}
    count = 0
    for message, version in entries:
        if message.op == "update" and message.status == "pending" and latest.get(message.target or "") != message.key:
            message.status = "superseded"
            try:
                store.update(KIND, message.key, message.to_doc(), version=version)
                count += 1
            except Conflict:
                pass
    return count
