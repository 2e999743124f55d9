"""The post-incident report of one run: JSON for machines, a self-contained printable HTML page for people."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from soar import __version__
from soar.alerts import utcnow_iso
from soar.audit.redact import configured_secrets, redact
from soar.config import Settings
from soar.review.render import render
from soar.review.timeline import ImpactOf, build_timeline, default_impact_of
from soar.store import Store


def build_report(
    store: Store, settings: Settings, run_id: str, *, impact_of: ImpactOf = default_impact_of
) -> dict[str, Any]:
    """The report as a JSON-able dict (secrets redacted); UnknownRun if there is no such run."""
    from soar.review.data import load_run

    data = load_run(store, run_id)
    tl = build_timeline(
        data["run"], alert=data["alert"], approvals=data["approvals"], audit=data["audit"], impact_of=impact_of
    )
    tl.watch = data.get("containments", [])
    report = {
        "kind": "soar-run-report",
        "generated_at": utcnow_iso(),
        "soar_version": __version__,
        **tl.to_dict(),
        "verdict": data["verdict"],
        "audit": [{k: e.get(k) for k in ("seq", "at", "actor", "action", "target", "hash")} for e in data["audit"]],
    }
    return seal(report, settings)


def seal(report: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """A report as it leaves soar: configured secrets redacted, and ``report_sha256`` of its JSON form."""
    report = redact(report, configured_secrets(settings))
    body = json.dumps(report, sort_keys=True, separators=(",", ":"), default=str).encode()
    report["report_sha256"] = hashlib.sha256(body).hexdigest()
    return dict(report)


def report_html(report: dict[str, Any]) -> str:
    return render("run_report.html.j2", r=report, soar_version=__version__)
