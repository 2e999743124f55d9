"""The hash-chained audit log: append-only entries, each sealing the one before it.

An entry is stored under kind ``audit`` with id = its zero-padded sequence number.
Its ``hash`` is HMAC-SHA-256 (keyed by ``audit_hmac_key``, else by a key generated into the
state directory: see ``soar.audit.keys``) over the canonical JSON of the entry's fields and
the previous entry's hash (a chain written before keys were the default holds plain SHA-256
entries first), so changing,
removing or swapping any entry breaks the chain at that point. Appending is
create-only on the next sequence id: two writers racing for the same id get one
winner; the loser re-reads the winner and chains after it. A ``head`` anchor
(kind ``audit_head``, sealed by the key) remembers the last sequence number so a cut-off tail
is noticed too, and a checkpoint of that head outside the store (``soar.audit.keys``) notices
a tail cut together with the head, a rewound head, and a wiped log.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
import weakref
from collections.abc import Iterator, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from soar.alerts import utcnow_iso
from soar.audit.keys import (
    chain_key,
    checkpoint_path,
    head_mac,
    key_path,
    note_append,
    read_checkpoints,
    sealing_key,
    store_id,
)
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

Problem = Literal[
    "modified",
    "removed",
    "reordered",
    "unkeyed",
    "truncated",
    "wiped",
    "rewound",
    "rechained",
    "junk",
    "head",
    "checkpoint",
]
ENTRY_ID = re.compile(rf"\d{{{SEQ_WIDTH}}}")


def seq_id(seq: int) -> str:
    return str(seq).zfill(SEQ_WIDTH)


def canonical(entry: Mapping[str, Any]) -> bytes:
    """The bytes an entry's hash covers: its sealed fields, sorted, compact, UTF-8."""
    sealed = {name: entry.get(name) for name in SEALED_FIELDS}
    return json.dumps(sealed, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def entry_hash(entry: Mapping[str, Any], key: bytes | None) -> str:
    """HMAC-SHA-256 with ``key``; plain SHA-256 without (a chain written before keys were the default)."""
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
    key = sealing_key(settings)
    secrets = configured_secrets(settings)
    body = {
        "at": utcnow_iso(),
        "actor": redact(str(actor), secrets),
        "action": str(action),
        "target": None if target is None else redact(str(target), secrets),
        "details": _plain(redact(details or {}, secrets)),
        "alg": "hmac-sha256",
    }
    tail = _cached_tail(store)
    prev: dict[str, Any] | None = {"seq": tail[0], "hash": tail[1]} if tail else last_entry(store)
    for _ in range(MAX_RETRIES):
        seq = prev["seq"] + 1 if prev else 1
        entry = {**body, "seq": seq, "key": seq_id(seq), "prev_hash": prev["hash"] if prev else GENESIS}
        entry["hash"] = entry_hash(entry, key)
        if store.create(KIND, seq_id(seq), entry):
            version = _advance_head(store, seq, entry["hash"], key, tail[2] if tail else None)
            _remember_tail(store, (seq, entry["hash"], version))
            note_append(settings, store, key, seq, entry["hash"])
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


def _advance_head(store: Store, seq: int, digest: str, key: bytes, version: str | None) -> str | None:
    """Move the head anchor forward (never back); the head's new version, when this writer moved it."""
    doc = {"seq": seq, "hash": digest, "mac": head_mac(key, seq, digest)}
    if version is not None:
        with suppress(Conflict):
            return store.update(HEAD_KIND, HEAD_ID, doc, version=version).version
    moved = False

    def forward(head: dict[str, Any]) -> dict[str, Any] | None:
        nonlocal moved
        moved = int(head.get("seq", 0)) < seq
        return doc if moved else None

    try:
        rec = store.mutate(HEAD_KIND, HEAD_ID, forward, create=lambda: {"seq": 0}, retries=MAX_RETRIES)
    except Conflict:
        return None
    return rec.version if rec is not None and moved else None


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
    checkpoint_seq: int | None = None  # the last checkpoint outside the store: what the log had then
    checkpoint_at: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "entries": self.entries,
            "head_hash": self.head_hash,
            "keyed": self.keyed,
            "checkpoint_seq": self.checkpoint_seq,
            "checkpoint_at": self.checkpoint_at,
            "findings": [f.to_dict() for f in self.findings],
        }


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return -1


def _span(first: int, last: int) -> str:
    return f"{first}" if first == last else f"{first}-{last}"


def _is_entry(doc: Mapping[str, Any]) -> bool:
    return (
        ENTRY_ID.fullmatch(str(doc.get("_id"))) is not None
        and all(name in doc for name in ("seq", "prev_hash", "alg"))
        and isinstance(doc.get("hash"), str)
    )


def verify(store: Store, settings: Settings | None = None, collected: Sequence[Path] = ()) -> Verification:
    """Walk the whole chain and compare it with the last checkpoint; name every kind of tampering.

    ``collected``: files a syslog collector kept of the checkpoints (``audit_checkpoint_syslog``), read
    beside the local checkpoint file, so removing that file hides no truncation.

    Never generates a key: without one (``audit_hmac_key`` unset and the state directory's key
    missing) keyed entries can only be checked for their links, which is itself a finding.
    """
    settings = settings if settings is not None else get_settings()
    key = chain_key(settings, create=False)
    findings: list[Finding] = []
    # what claims the log is at least this long is read before the entries, so an append racing
    # this walk (created, then head advanced, then checkpointed) never reads as a cut tail
    path = checkpoint_path(settings)
    points, bad = read_checkpoints(path, key, store_id(store))
    for copy in collected:
        more, _skipped = read_checkpoints(copy, key, store_id(store), collected=True)
        points += more
    head_before = store.get(HEAD_KIND, HEAD_ID)
    claimed_seq = _int(head_before.doc.get("seq", 0)) if head_before is not None else 0
    stored_rows = store.count(KIND)
    rows = list(iter_entries(store))
    for doc in rows:
        if not _is_entry(doc):
            ident = str(doc["_id"])
            where = _int(ident) if ENTRY_ID.fullmatch(ident) else 0
            findings.append(Finding(where, "junk", f"junk row {ident!r} in the audit log: not a chain entry"))
    unreachable = stored_rows - len(rows)  # rows the walk by key cannot reach (no key field)
    if unreachable > 0:
        findings.append(Finding(0, "junk", f"{unreachable} junk rows in the audit log: not in sequence order"))
    # by storage id, not by the (editable) content: a swapped entry shows where it sits
    entries = sorted((e for e in rows if _is_entry(e)), key=lambda e: str(e["_id"]))
    by_id = {_int(e["_id"]): e for e in entries}
    if key is None and any(e.get("alg") == "hmac-sha256" for e in entries):
        findings.append(
            Finding(
                0,
                "unkeyed",
                f"no HMAC key (audit_hmac_key is unset and {key_path(settings)} is missing):"
                " entry contents cannot be checked, only their links",
            )
        )
    # the stored hash of each entry by the sequence number its content claims
    hash_by_seq = {_int(e.get("seq")): str(e.get("hash")) for e in entries}
    hash_by_seq[0] = GENESIS
    expected = 1
    keyed_seen = False
    for entry in entries:
        seq = _int(entry.get("seq"))
        id_seq = _int(entry["_id"])
        stored = str(entry.get("hash"))
        keyed_entry = entry.get("alg") == "hmac-sha256"
        if id_seq > expected:
            findings.append(
                Finding(
                    expected, "removed", f"entry {_span(expected, id_seq - 1)} removed: the sequence jumps to {id_seq}"
                )
            )
        if seq != id_seq:
            findings.append(Finding(id_seq, "reordered", f"entry {id_seq} reordered: it holds entry {seq}'s content"))
        else:
            problem: str | None = None
            if key is not None and hmac.compare_digest(entry_hash(entry, key), stored):
                pass  # sealed by the key
            elif key is None and keyed_entry:
                pass  # no key to tell (one "unkeyed" finding says so)
            elif hmac.compare_digest(entry_hash(entry, None), stored):
                # plain SHA-256: the unkeyed start of a chain from before keys were the default, or a forgery
                problem = "rechained" if keyed_seen or keyed_entry else None
            else:
                problem = "modified"
            if problem == "rechained":
                findings.append(Finding(seq, "rechained", ""))
            elif problem == "modified":
                findings.append(Finding(seq, "modified", f"entry {seq} modified: its content does not match its hash"))
            elif seq - 1 in hash_by_seq and entry.get("prev_hash") != hash_by_seq[seq - 1]:
                findings.append(Finding(seq, "modified", f"entry {seq}: the entry before it was modified or replaced"))
        keyed_seen = keyed_seen or keyed_entry
        expected = max(expected, id_seq) + 1
    findings = _merge_rechained(findings)
    last_seq = expected - 1
    last = entries[-1] if entries else None
    named = {f.seq for f in findings}
    for f in findings:
        if f.problem == "rechained":
            named.update(range(f.seq, last_seq + 1))

    # -- the head anchor in the store
    head = head_before
    for grace in (0.0, 0.05):  # a head behind the entries may be an append between its create and its head
        if head is None or _int(head.doc.get("seq", 0)) >= last_seq:
            break
        time.sleep(grace)
        head = store.get(HEAD_KIND, HEAD_ID)
    head_seq = _int(head.doc.get("seq", 0)) if head is not None else 0
    if head is not None:
        at_head = by_id.get(head_seq)
        if at_head is not None and head_seq not in named and at_head.get("hash") != head.doc.get("hash"):
            findings.append(
                Finding(head_seq, "modified", f"entry {head_seq} replaced: it differs from the head anchor")
            )
        seal = head.doc.get("mac")
        must_seal = seal is not None or keyed_seen
        if (
            key is not None
            and must_seal
            and not hmac.compare_digest(str(seal), head_mac(key, head_seq, str(head.doc.get("hash"))))
        ):
            findings.append(
                Finding(head_seq, "head", f"head anchor (entry {head_seq}) not sealed by the key: it was rewritten")
            )

    # -- the checkpoint outside the store
    for number in bad:
        findings.append(Finding(0, "checkpoint", f"{path}:{number}: not a checkpoint line"))
    for point in points:
        if key is not None and not point.sealed:
            findings.append(
                Finding(
                    0,
                    "checkpoint",
                    f"{point.path or path}:{point.line}: checkpoint of entry {point.seq} not sealed by the key",
                )
            )
    trusted = [p for p in points if p.sealed or key is None]
    newest = max(trusted, key=lambda p: p.seq, default=None)
    cp_seq = newest.seq if newest is not None else 0
    for point in sorted(trusted, key=lambda p: p.seq):
        at_point = by_id.get(point.seq)
        if at_point is not None and point.seq not in named and at_point.get("hash") != point.hash:
            findings.append(
                Finding(
                    point.seq,
                    "rechained",
                    f"entry {point.seq} differs from the checkpoint of {point.at}: the chain was rewritten up to it",
                )
            )
            break
    claims = []
    if claimed_seq > last_seq:
        claims.append(f"the head anchor says {claimed_seq}")
    if newest is not None and cp_seq > last_seq:
        claims.append(f"the checkpoint of {newest.at} says {cp_seq}")
    if claims and not entries:
        findings.append(Finding(1, "wiped", f"audit log wiped: the store holds no entries, but {' and '.join(claims)}"))
    elif claims:
        gap = _span(last_seq + 1, max(claimed_seq, cp_seq))
        findings.append(
            Finding(
                last_seq + 1,
                "truncated",
                f"entry {gap} removed: the log ends at {last_seq}, but {' and '.join(claims)}",
            )
        )
    if head is not None and entries and head_seq < last_seq:
        findings.append(
            Finding(head_seq, "rewound", f"head anchor rewound to entry {head_seq}: the entries run to {last_seq}")
        )
    elif head is not None and newest is not None and head_seq < cp_seq <= last_seq:
        findings.append(
            Finding(
                head_seq,
                "rewound",
                f"head anchor rewound to entry {head_seq}: the checkpoint of {newest.at} says {cp_seq}",
            )
        )
    prev_hash = str(last.get("hash")) if last else GENESIS
    return Verification(
        not findings,
        len(entries),
        prev_hash,
        key is not None,
        findings,
        checkpoint_seq=newest.seq if newest is not None else None,
        checkpoint_at=newest.at if newest is not None else None,
    )


def _merge_rechained(findings: list[Finding]) -> list[Finding]:
    """Entries re-hashed without the key, one finding per run of consecutive entries."""
    merged: list[Finding] = []
    run: list[int] = []

    def close() -> None:
        if run:
            merged.append(
                Finding(
                    run[0],
                    "rechained",
                    f"entry {_span(run[0], run[-1])} re-chained without the key: plain SHA-256, not the chain's HMAC",
                )
            )
            run.clear()

    for f in findings:
        if f.problem == "rechained" and not f.message and (not run or run[-1] + 1 == f.seq):
            run.append(f.seq)
            continue
        close()
        if f.problem == "rechained" and not f.message:
            run.append(f.seq)
            continue
        merged.append(f)
    close()
    return merged
