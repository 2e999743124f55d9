"""The hash-chained audit log: append-only entries, each sealing the one before it.

An entry is stored under kind ``audit`` with id = its zero-padded sequence number.
Its ``hash`` is SHA-256 (or HMAC-SHA-256 when ``audit_hmac_key`` is set) over the
canonical JSON of the entry's fields and the previous entry's hash, so changing,
removing or swapping any entry breaks the chain at that point. Appending is
create-only on the next sequence id: two writers racing for the same id get one
winner; the loser re-reads the winner and chains after it. A ``head`` anchor
(kind ``audit_head``) remembers the last sequence number so a cut-off tail is
noticed too.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import weakref
from collections.abc import Iterator, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any, Literal

from soar.alerts import utcnow_iso
from soar.audit.redact import configured_secrets, redact
from soar.config import Settings, get_settings
from soar.errors import ConfigError
from soar.store import Conflict, Range, Store

KIND = "audit"
HEAD_KIND = "audit_head"
HEAD_ID = "head"
GENESIS = "0" * 64
SEQ_WIDTH = 12
MAX_RETRIES = 1000
PAGE = 1000
SEALED_FIELDS = ("seq", "at", "actor", "action", "target", "details", "prev_hash", "alg")

Problem = Literal["modified", "removed", "reordered", "unkeyed", "truncated"]


def seq_id(seq: int) -> str:
    return str(seq).zfill(SEQ_WIDTH)


def _key(settings: Settings | None) -> bytes | None:
    if settings is None or settings.audit_hmac_key is None:
        return None
    value = settings.audit_hmac_key.get_secret_value()
    return value.encode() if value else None


def canonical(entry: Mapping[str, Any]) -> bytes:
    """The bytes an entry's hash covers: its sealed fields, sorted, compact, UTF-8."""
    sealed = {name: entry.get(name) for name in SEALED_FIELDS}
    return json.dumps(sealed, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def entry_hash(entry: Mapping[str, Any], key: bytes | None) -> str:
    data = canonical(entry)
    if key is not None:
        return hmac.new(key, data, hashlib.sha256).hexdigest()
    return hashlib.sha256(data).hexdigest()


def _plain(value: Any) -> Any:
    """What the stores hand back: JSON types only, so the hash recomputes identically after a round trip."""
    return json.loads(json.dumps(value, default=str, ensure_ascii=False))


def record(
    store: Store,
    *,
    actor: str,
    action: str,
    target: str | None = None,
    details: dict[str, Any] | None = None,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Append one entry (secrets redacted) and return it as stored. Safe under concurrent writers."""
    settings = settings if settings is not None else get_settings()
    key = _key(settings)
    secrets = configured_secrets(settings)
    body = {
        "at": utcnow_iso(),
        "actor": redact(str(actor), secrets),
        "action": str(action),
        "target": None if target is None else redact(str(target), secrets),
        "details": _plain(redact(details or {}, secrets)),
        "alg": "hmac-sha256" if key is not None else "sha256",
    }
    tail = _cached_tail(store)
    prev: dict[str, Any] | None = {"seq": tail[0], "hash": tail[1]} if tail else last_entry(store)
    for _ in range(MAX_RETRIES):
        seq = prev["seq"] + 1 if prev else 1
        entry = {**body, "seq": seq, "key": seq_id(seq), "prev_hash": prev["hash"] if prev else GENESIS}
        entry["hash"] = entry_hash(entry, key)
        if store.create(KIND, seq_id(seq), entry):
            version = _advance_head(store, seq, entry["hash"], tail[2] if tail else None)
            _remember_tail(store, (seq, entry["hash"], version))
            return entry
        winner = store.get(KIND, seq_id(seq))  # realtime read of whoever took this id
        if winner is not None:
            prev = winner.doc
    raise ConfigError(f"audit: could not append after {MAX_RETRIES} concurrent collisions")  # pragma: no cover


# The last entry this process appended per store (seq, hash, head version): the next append
# tries the following id at once. A stale tail only costs a collision, which reads the winner.
_tails: weakref.WeakKeyDictionary[Any, tuple[int, str, str | None]] = weakref.WeakKeyDictionary()


def _cached_tail(store: Store) -> tuple[int, str, str | None] | None:
    try:
        return _tails.get(store)
    except TypeError:  # an unhashable store: no cache
        return None


def _remember_tail(store: Store, tail: tuple[int, str, str | None]) -> None:
    with suppress(TypeError):
        current = _tails.get(store)
        if current is None or current[0] < tail[0]:
            _tails[store] = tail


def last_entry(store: Store) -> dict[str, Any] | None:
    """The entry with the highest sequence number (by the head anchor, then probing forward).

    If the head's entry was deleted, the chain continues after it, so the gap stays visible.
    """
    head = store.get(HEAD_KIND, HEAD_ID)
    seq = int(head.doc.get("seq", 0)) if head else 0
    if seq == 0:
        found = store.find(KIND, order_by="key", descending=True, limit=1)
        seq = int(found[0].doc["seq"]) if found else 0
    rec = store.get(KIND, seq_id(seq)) if seq else None
    current: dict[str, Any] | None = rec.doc if rec else None
    if current is None and head is not None and seq:
        current = {"seq": seq, "hash": head.doc.get("hash")}
    while True:  # the head may lag behind by a writer that has not advanced it yet
        nxt = store.get(KIND, seq_id(seq + 1))
        if nxt is None:
            return current
        current, seq = nxt.doc, seq + 1


def _advance_head(store: Store, seq: int, digest: str, version: str | None) -> str | None:
    """Move the head anchor forward (never back); the head's new version, when this writer moved it."""
    doc = {"seq": seq, "hash": digest}
    if version is not None:
        with suppress(Conflict):
            return store.update(HEAD_KIND, HEAD_ID, doc, version=version).version
    for _ in range(MAX_RETRIES):
        head = store.get(HEAD_KIND, HEAD_ID)
        if head is None:
            if store.create(HEAD_KIND, HEAD_ID, doc):
                return None
            continue
        if int(head.doc.get("seq", 0)) >= seq:
            return None
        try:
            return store.update(HEAD_KIND, HEAD_ID, doc, version=head.version).version
        except Conflict:
            continue
    return None


def iter_entries(store: Store, *, start: str | None = None, end: str | None = None) -> Iterator[dict[str, Any]]:
    """Every stored entry in sequence order, paged; ``start``/``end`` filter on ``at`` (ISO strings)."""
    last_key = ""
    while True:
        where: dict[str, Any] = {"key": Range(gt=last_key)} if last_key else {}
        if start or end:
            where["at"] = Range(gte=start, lte=end)
        page = store.find(KIND, where, order_by="key", limit=PAGE)
        for rec in page:
            doc = dict(rec.doc)
            doc["_id"] = rec.id
            yield doc
        if len(page) < PAGE:
            return
        last_key = str(page[-1].doc.get("key", page[-1].id))


@dataclass(frozen=True)
class Finding:
    """One break in the chain, named by the sequence number where it shows."""

    seq: int
    problem: Problem
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "problem": self.problem, "message": self.message}


@dataclass
class Verification:
    ok: bool
    entries: int
    head_hash: str
    keyed: bool
    findings: list[Finding] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "entries": self.entries,
            "head_hash": self.head_hash,
            "keyed": self.keyed,
            "findings": [f.to_dict() for f in self.findings],
        }


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return -1


def verify(store: Store, settings: Settings | None = None) -> Verification:
    """Walk the whole chain; name every modified, removed or reordered entry."""
    settings = settings if settings is not None else get_settings()
    key = _key(settings)
    # by storage id, not by the (editable) content: a swapped entry shows where it sits
    entries = sorted(iter_entries(store), key=lambda e: str(e["_id"]))
    findings: list[Finding] = []
    # the stored hash of each entry by the sequence number its content claims
    hash_by_seq = {_int(e.get("seq")): str(e.get("hash")) for e in entries}
    hash_by_seq[0] = GENESIS
    expected = 1
    for entry in entries:
        seq = _int(entry.get("seq"))
        id_seq = _int(entry["_id"])
        if id_seq > expected:
            gap = f"{expected}" if id_seq == expected + 1 else f"{expected}-{id_seq - 1}"
            findings.append(Finding(expected, "removed", f"entry {gap} removed: the sequence jumps to {id_seq}"))
        if seq != id_seq:
            findings.append(Finding(id_seq, "reordered", f"entry {id_seq} reordered: it holds entry {seq}'s content"))
        elif entry.get("alg") == "hmac-sha256" and key is None:
            raise ConfigError("audit_hmac_key: the audit chain is HMAC-keyed; set the key to verify it")
        elif key is not None and entry.get("alg") != "hmac-sha256":
            findings.append(Finding(seq, "unkeyed", f"entry {seq} is not HMAC-keyed: it may have been rewritten"))
        elif not hmac.compare_digest(entry_hash(entry, key), str(entry.get("hash"))):
            findings.append(Finding(seq, "modified", f"entry {seq} modified: its content does not match its hash"))
        elif seq - 1 in hash_by_seq and entry.get("prev_hash") != hash_by_seq[seq - 1]:
            findings.append(Finding(seq, "modified", f"entry {seq}: the entry before it was modified or replaced"))
        expected = max(expected, id_seq) + 1
    last = entries[-1] if entries else None
    prev_hash = str(last.get("hash")) if last else GENESIS
    head = store.get(HEAD_KIND, HEAD_ID)
    last_seq = expected - 1
    head_seq = int(head.doc.get("seq", 0)) if head is not None else 0
    at_head = next((e for e in entries if _int(e["_id"]) == head_seq), None)
    named = {f.seq for f in findings}
    if (
        head is not None
        and at_head is not None
        and head_seq not in named
        and at_head.get("hash") != head.doc.get("hash")
    ):
        findings.append(Finding(head_seq, "modified", f"entry {head_seq} replaced: it differs from the head anchor"))
    if head is not None and int(head.doc.get("seq", 0)) > last_seq:
        head_seq = int(head.doc["seq"])
        gap = f"{last_seq + 1}" if head_seq == last_seq + 1 else f"{last_seq + 1}-{head_seq}"
        findings.append(Finding(last_seq + 1, "truncated", f"entry {gap} removed: the log ends before its head"))
    return Verification(not findings, len(entries), prev_hash, key is not None, findings)
