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
def verify_cmd(
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    checkpoints: list[Path] = typer.Option(
        [],
        "--checkpoints",
        help="A file a syslog collector kept of the checkpoints (audit_checkpoint_syslog); repeatable.",
    ),
) -> int:
    """Recompute every hash, compare with the checkpoints outside the store; one line per finding (exit 3 if any)."""
    from soar.audit import verify
    from soar.errors import InputError
    from soar.store import open_store

    for copy in checkpoints:
        if not copy.is_file():
            raise InputError(f"--checkpoints {copy}: no such file")
    settings = get_settings()
    store = open_store(settings)
    try:
        result = verify(store, settings, checkpoints)
    finally:
        store.close()
    from soar.audit.spool import pending, spool_path

    waiting = pending(settings)
    if as_json:
        echo_json({**result.to_dict(), "spooled": waiting})
        return 0 if result.ok else TAMPERED_EXIT
    if waiting:
        typer.echo(f"{waiting} entries wait in {spool_path(settings)} (written while the store was unreachable)")
    if result.ok:
        keyed = " (HMAC-keyed)" if result.keyed else " (unkeyed)"
        checkpoint = (
            f"; checkpoint at entry {result.checkpoint_seq} ({result.checkpoint_at})"
            if result.checkpoint_seq is not None
            else "; no checkpoint yet"
        )
        typer.echo(f"audit log intact{keyed}: {result.entries} entries, head {result.head_hash}{checkpoint}")
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
    """Write a signed evidence bundle (JSON + HTML summary) of the audit entries between --from and --to.

    The export itself is audited (action audit.exported): its actor is the principal the command line
    authenticates as (SOAR_TOKEN or the login's os_user), else cli:<login of the effective uid>.
    """
    from soar.audit import export_bundle, record
    from soar.cli._identity import cli_principal, os_login
    from soar.errors import InputError
    from soar.store import open_store

    settings = get_settings()
    t1 = parse_time(start, what="--from") if start else None
    t2 = parse_time(end, what="--to") if end else None
    store = open_store(settings)
    try:
        bundle = export_bundle(store, settings, out, start=t1, end=t2)
        user = os_login()  # the effective uid's account: $USER and $LOGNAME are the caller's to set
        try:
            actor = cli_principal(settings).name
        except InputError:
            actor = f"cli:{user}"
        record(
            store,
            actor=actor,
            action="audit.exported",
            target=str(out.absolute()),
            details={
                "via": "cli",
                "os_user": user,
                "from": bundle["from"],
                "to": bundle["to"],
                "count": bundle["count"],
                "first_seq": bundle["first_seq"],
                "last_seq": bundle["last_seq"],
                "sha256": bundle["sha256"],
                "chain_ok": bundle["verification"]["ok"],
            },
            settings=settings,
        )
    finally:
        store.close()
    state = "intact" if bundle["verification"]["ok"] else "NOT intact"
    typer.echo(f"wrote {bundle['json']} and {bundle['html']}: {bundle['count']} entries, chain {state}")
    typer.echo(f"sha256 {bundle['sha256']}; signed (hmac-sha256, key id {bundle['signature']['key_id']})")
    return 0 if bundle["verification"]["ok"] else TAMPERED_EXIT


@app.command("verify-bundle")
def verify_bundle_cmd(
    path: Path = typer.Argument(..., help="An evidence bundle written by soar audit export (.json)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> int:
    """Check an evidence bundle's signature (the chain's key), its entries' hashes and links (exit 3 if bad)."""
    from soar.audit.export import verify_bundle

    bundle, problems = verify_bundle(path, get_settings())
    if as_json:
        echo_json({"ok": not problems, "count": bundle.get("count"), "problems": problems})
    elif problems:
        for problem in problems:
            typer.echo(f"BAD: {problem}")
        typer.echo(f"bundle NOT verified: {len(problems)} problems")
    else:
        span = f"entries {bundle.get('first_seq')}-{bundle.get('last_seq')}" if bundle.get("count") else "no entries"
        state = "intact" if bundle.get("verification", {}).get("ok") else "NOT intact"
        typer.echo(f"bundle signature valid: {bundle.get('count')} {span}; the chain was {state} at export")
    return TAMPERED_EXIT if problems else 0
