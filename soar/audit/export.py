"""Evidence for auditors: the audit entries of a period, the chain's verification, and their hashes."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from pathlib import Path
from typing import Any

from soar import __version__
from soar.alerts import utcnow_iso
from soar.audit.chain import iter_entries, verify
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
    return bundle, json.dumps(bundle, indent=2, sort_keys=True, ensure_ascii=False)


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
