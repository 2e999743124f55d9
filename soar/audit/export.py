"""Evidence for auditors: the audit entries of a period, the chain's verification, and their hashes.

Every bundle is signed: ``signature.mac`` is HMAC-SHA-256, with the chain's key, over the bundle's
canonical bytes (the bundle without ``signature``, JSON with sorted keys, compact, UTF-8).
``verify_bundle`` (``soar audit verify-bundle FILE``) rechecks the signature, the entries' digest,
their hashes and their links.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime
from pathlib import Path
from typing import Any

from soar import __version__
from soar.alerts import utcnow_iso
from soar.audit.chain import GENESIS, entry_hash, iter_entries, verify
from soar.audit.keys import chain_key, mac, sealing_key
from soar.audit.redact import configured_secrets, redact
from soar.config import Settings
from soar.errors import InputError
from soar.review.render import render, write_atomic
from soar.review.times import check_range, to_iso
from soar.store import Store


def build_bundle(
    store: Store, settings: Settings, *, start: datetime | None = None, end: datetime | None = None
) -> tuple[dict[str, Any], str]:
    """The bundle and its canonical JSON text. The whole chain is verified, not just the period,
    so a bundle never vouches for a log that was tampered with elsewhere."""
    check_range(start, end, what="--from/--to")
    start_iso = to_iso(start) if start else None
    end_iso = to_iso(end) if end else None
    entries = [{k: v for k, v in e.items() if k != "_id"} for e in iter_entries(store, start=start_iso, end=end_iso)]
    entries = redact(entries, configured_secrets(settings))
    verification = verify(store, settings)
    entries_digest = hashlib.sha256(
        json.dumps(entries, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    ).hexdigest()
    bundle: dict[str, Any] = {
        "kind": "soar-audit-evidence",
        "soar_version": __version__,
        "generated_at": utcnow_iso(),
        "from": start_iso,
        "to": end_iso,
        "verification": verification.to_dict(),
        "count": len(entries),
        "first_seq": entries[0]["seq"] if entries else None,
        "last_seq": entries[-1]["seq"] if entries else None,
        # the entry before the period seals it: a reader can recheck the chain from here
        "anchor_prev_hash": entries[0]["prev_hash"] if entries else None,
        "entries_sha256": entries_digest,
        "entries": entries,
    }
    bundle["signature"] = sign(bundle, sealing_key(settings))
    return bundle, json.dumps(bundle, indent=2, sort_keys=True, ensure_ascii=False)


def canonical_bundle(bundle: dict[str, Any]) -> bytes:
    """The bytes a bundle's signature covers: everything but ``signature``, sorted, compact, UTF-8."""
    unsigned = {k: v for k, v in bundle.items() if k != "signature"}
    return json.dumps(unsigned, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def key_id(key: bytes) -> str:
    """Which key signed: a keyed fingerprint that says nothing about the key itself."""
    return mac(key, "soar-audit-key-id")[:16]


def sign(bundle: dict[str, Any], key: bytes) -> dict[str, str]:
    digest = hmac.new(key, canonical_bundle(bundle), hashlib.sha256).hexdigest()
    return {"alg": "hmac-sha256", "key_id": key_id(key), "mac": digest}


def verify_bundle(path: Path, settings: Settings) -> tuple[dict[str, Any], list[str]]:
    """The bundle at ``path`` and what is wrong with it (nothing: signed by our key, entries unaltered)."""
    try:
        bundle = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"{path}: not a readable evidence bundle: {exc}") from None
    if not isinstance(bundle, dict) or bundle.get("kind") != "soar-audit-evidence":
        raise InputError(f"{path}: not a soar audit evidence bundle")
    key = chain_key(settings, create=False)
    problems: list[str] = []
    signature = bundle.get("signature")
    if not isinstance(signature, dict) or not signature.get("mac"):
        problems.append("the bundle is not signed")
    elif key is None:
        problems.append(
            "no HMAC key (audit_hmac_key unset, none in the state directory): the signature cannot be checked"
        )
    elif signature.get("key_id") != key_id(key):
        problems.append(f"signed with another key (key id {signature.get('key_id')}, ours is {key_id(key)})")
    else:
        expected = hmac.new(key, canonical_bundle(bundle), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(str(signature["mac"]), expected):
            problems.append("the signature does not match: the bundle was altered after it was signed")
    entries = bundle.get("entries")
    if not isinstance(entries, list):
        return bundle, [*problems, "the bundle holds no entries list"]
    digest = hashlib.sha256(
        json.dumps(entries, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    ).hexdigest()
    if digest != bundle.get("entries_sha256"):
        problems.append("entries_sha256 does not match the entries")
    if bundle.get("count") != len(entries):
        problems.append(f"count says {bundle.get('count')}, the bundle holds {len(entries)} entries")
    prev, prev_seq = bundle.get("anchor_prev_hash") or GENESIS, None
    for entry in entries:
        seq = entry.get("seq") if isinstance(entry, dict) else None
        if not isinstance(entry, dict):
            problems.append("an entry is not an object")
            continue
        keyed = entry.get("alg") == "hmac-sha256"
        check = key if keyed else None  # the unkeyed start of a chain from before keys were the default
        if (check is not None or not keyed) and not hmac.compare_digest(
            entry_hash(entry, check), str(entry.get("hash"))
        ):
            problems.append(f"entry {seq} does not match its hash")
        # a period is chosen by time: a concurrent writer's entry may fall outside it, so only neighbours link
        if (prev_seq is None or seq == prev_seq + 1) and entry.get("prev_hash") != prev:
            problems.append(f"entry {seq} does not follow the entry before it in the bundle")
        prev, prev_seq = entry.get("hash"), seq if isinstance(seq, int) else None
    return bundle, problems


def export_bundle(
    store: Store,
    settings: Settings,
    out: Path,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
) -> dict[str, Any]:
    """Write ``out`` (JSON) and ``out`` with ``.html`` (summary); return the bundle written."""
    check_range(start, end, what="--from/--to")
    if out.suffix.lower() != ".json":
        raise InputError(f"{out}: the evidence bundle is JSON; give a file name ending in .json")
    bundle, text = build_bundle(store, settings, start=start, end=end)
    digest = hashlib.sha256(text.encode()).hexdigest()
    html_path = out.with_suffix(".html")
    html = render(
        "audit_summary.html.j2",
        bundle=bundle,
        bundle_sha256=digest,
        actors=_count(bundle["entries"], "actor"),
        actions=_count(bundle["entries"], "action"),
        json_name=out.name,
    )
    write_atomic(out, text)
    write_atomic(html_path, html)
    return {"json": str(out), "html": str(html_path), "sha256": digest, **bundle}


def _count(entries: list[dict[str, Any]], key: str) -> list[tuple[str, int]]:
    counts: dict[str, int] = {}
    for entry in entries:
        name = str(entry.get(key))
        counts[name] = counts.get(name, 0) + 1
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
