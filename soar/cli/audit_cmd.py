"""``soar audit``: verify the hash chain, export evidence for auditors."""

from __future__ import annotations

from pathlib import Path

import typer

from soar.cli._output import echo_json
from soar.config import get_settings
from soar.review.times import parse_time

app = typer.Typer(no_args_is_help=True)

TAMPERED_EXIT = 3


@app.command("verify")
def verify_cmd(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> int:
    """Recompute every hash; name each modified, removed or reordered entry (exit 3 if any)."""
    from soar.audit import verify
    from soar.store import open_store

    settings = get_settings()
    store = open_store(settings)
    try:
        result = verify(store, settings)
    finally:
        store.close()
    if as_json:
        echo_json(result.to_dict())
    elif result.ok:
        keyed = " (HMAC-keyed)" if result.keyed else ""
        typer.echo(f"audit log intact{keyed}: {result.entries} entries, head {result.head_hash}")
    else:
        for finding in result.findings:
            typer.echo(f"TAMPERED: {finding.message}")
        typer.echo(f"audit log NOT intact: {len(result.findings)} findings in {result.entries} entries")
    return 0 if result.ok else TAMPERED_EXIT


@app.command("export")
def export_cmd(
    start: str = typer.Option(None, "--from", help="Start: ISO time or a duration ago (30d)."),
    end: str = typer.Option(None, "--to", help="End: ISO time or a duration ago (default: now)."),
    out: Path = typer.Option(Path("audit-evidence.json"), "--out", "-o", help="Bundle file (.json; .html beside it)."),
) -> int:
    """Write an evidence bundle (JSON + HTML summary) of the audit entries between --from and --to."""
    from soar.audit import export_bundle
    from soar.store import open_store

    settings = get_settings()
    t1 = parse_time(start, what="--from") if start else None
    t2 = parse_time(end, what="--to") if end else None
    store = open_store(settings)
    try:
        bundle = export_bundle(store, settings, out, start=t1, end=t2)
    finally:
        store.close()
    state = "intact" if bundle["verification"]["ok"] else "NOT intact"
    typer.echo(f"wrote {bundle['json']} and {bundle['html']}: {bundle['count']} entries, chain {state}")
    typer.echo(f"sha256 {bundle['sha256']}")
    return 0 if bundle["verification"]["ok"] else TAMPERED_EXIT
