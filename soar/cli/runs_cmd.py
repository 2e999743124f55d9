"""``soar runs list|show|approve|deny``."""

from __future__ import annotations

from typing import Any

import typer

from soar.cli._output import echo_json, table
from soar.config import get_settings
from soar.errors import InputError

app = typer.Typer(no_args_is_help=True)


def _store() -> Any:
    from soar.store import open_store

    return open_store(get_settings())


@app.command("list")
def list_runs(
    status: str | None = typer.Option(None, "--status", help="Only runs in this status."),
    limit: int = typer.Option(50, "--limit", min=1, max=10000),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> int:
    """Recent runs, newest first; a dry run shows as "planned (dry run)", never "succeeded"."""
    from soar.playbooks.outcomes import run_is_dry, shown_status
    from soar.playbooks.records import RUNS

    where = {"status": status} if status else None
    recs = _store().find(RUNS, where, order_by="created_at", descending=True, limit=limit)
    rows = [
        {
            "id": r.id,
            "playbook": r.doc["playbook"]["name"],
            "alert": r.doc["alert_id"],
            "status": r.doc["status"],
            "dry_run": run_is_dry(r.doc),
            "shown_status": shown_status(r.doc["status"], run_is_dry(r.doc)),
            "created_at": r.doc["created_at"],
            "finished_at": r.doc.get("finished_at"),
        }
        for r in recs
    ]
    if as_json:
        echo_json(rows)
    else:
        typer.echo(
            table(
                ["run", "playbook", "status", "alert", "created"],
                [(r["id"], r["playbook"], r["shown_status"], str(r["alert"])[:16], r["created_at"]) for r in rows],
            )
        )
    return 0


def show_run(doc: dict[str, Any]) -> None:
    """The run as it happened: steps in the run's own order, a dry run as planned, a skip with its reason."""
    from soar.playbooks.outcomes import in_order, planned_only, run_is_dry, shown_status, step_status

    dry = run_is_dry(doc)
    typer.echo(
        f"run {doc['id']}: {shown_status(doc['status'], dry)}  playbook {doc['playbook']['name']} "
        f"({doc['playbook']['version_hash'][:12]})  alert {doc['alert_id']}"
    )
    if dry:
        typer.echo("dry run: host actions were planned, nothing was touched")
    if doc.get("error"):
        typer.echo(f"error: {doc['error']}")
    rollback = doc.get("rollback") or {}
    for step in in_order(doc["steps"]):
        if step.get("phase") == "rollback" and rollback.get("reason"):
            typer.echo(f"rollback: {rollback['reason']}")
            rollback = {}
        error = f": {step['error']}" if step.get("error") else ""
        typer.echo(f"- {step['id']} ({step['uses']}): {step_status(step)}{error}")
        for inst in step.get("instances", []):
            attempts = len(inst.get("attempts", []))
            decision = (inst.get("decision") or {}).get("outcome", "-")
            status = shown_status(inst["status"], planned_only(inst))
            typer.echo(f"    {inst['key']}: {status} (policy {decision}, attempts {attempts})")
            if inst["status"] == "waiting_approval":
                typer.echo(f"      approve: soar runs approve {doc['id']} --step {inst['key']}")
    if rollback.get("reason"):
        typer.echo(f"rollback: {rollback['reason']}")


@app.command("show")
def show(
    run_id: str = typer.Argument(..., help="Run id."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> int:
    """One run with its steps, attempts, approvals and policy decisions."""
    from soar.playbooks.records import RUNS

    rec = _store().get(RUNS, run_id)
    if rec is None:
        raise InputError(f"no run {run_id!r}")
    doc = {k: v for k, v in rec.doc.items() if k != "lease"}
    for step in doc["steps"].values():
        for inst in step.get("instances", []):
            inst.pop("_params", None)
    if as_json:
        echo_json(doc)
    else:
        show_run(doc)
    return 0


def _decide(run_id: str, step: str, decision: str) -> int:
    """A person's decision, as the principal this command line authenticates as (never a name from a flag)."""
    from soar.cli._identity import cli_principal_with
    from soar.playbooks.approvals import decide_as

    settings = get_settings()
    principal = cli_principal_with(settings, "approvals:decide")
    outcome = decide_as(
        settings,
        _store(),
        run_id,
        step,
        principal=principal,
        decision=decision,  # type: ignore[arg-type]
        via="cli",
    )
    typer.echo(f"{outcome.run_id} {outcome.step}: {outcome.status} ({outcome.message})")
    return 0


@app.command("approve")
def approve(
    run_id: str = typer.Argument(..., help="Run id."),
    step: str = typer.Option(..., "--step", help="Step id or instance key waiting for approval."),
) -> int:
    """Approve a paused step as yourself (SOAR_TOKEN, or your login's os_user); the run resumes when enough agreed."""
    return _decide(run_id, step, "approve")


@app.command("deny")
def deny(
    run_id: str = typer.Argument(..., help="Run id."),
    step: str = typer.Option(..., "--step", help="Step id or instance key waiting for approval."),
) -> int:
    """Deny a paused step as yourself; its on_failure decides what the run does next."""
    return _decide(run_id, step, "deny")


@app.command("rollback")
def rollback(
    run_id: str = typer.Argument(..., help="Run id of a finished run."),
    reason: str = typer.Option("", "--reason", help="Why (recorded)."),
) -> int:
    """Undo a finished run as yourself: its rollback steps, else the revert of every completed containment."""
    from soar.access import authorize_in
    from soar.cli._identity import cli_principal_with
    from soar.errors import NotFound
    from soar.playbooks import dispatch
    from soar.playbooks.records import RUNS
    from soar.playbooks.rollback import request_rollback
    from soar.scope import scopes_for

    settings = get_settings()
    principal = cli_principal_with(settings, "runs:rollback")
    rt = dispatch.runtime_for(settings)
    found = rt.store.get(RUNS, run_id)
    if found is None or not authorize_in(principal, "runs:rollback", scopes_for(settings).of_run(found.doc)).allowed:
        raise NotFound(f"no run {run_id!r}")
    doc = request_rollback(rt, run_id, actor=principal.name, reason=reason)
    steps = ", ".join(e["id"] for e in doc["rollback"]["steps"]) or "nothing to revert"
    typer.echo(f"{run_id}: rolling back ({steps})")
    dispatch.kick(settings, run_id, runtime=rt)
    rec = rt.store.get(RUNS, run_id)
    if rec is not None and rec.doc["status"] not in ("running",):
        typer.echo(f"{run_id}: {rec.doc['status']}" + (f" ({rec.doc['error']})" if rec.doc.get("error") else ""))
        return 0 if rec.doc["status"] == "rolled_back" else 1
    return 0


def _register_report() -> None:
    """``soar runs report`` lives with the review area (soar/cli/report_cmd.py) and plugs in here."""
    try:
        from soar.cli import report_cmd
    except ImportError:  # pragma: no cover - the review area not installed
        return
    report_cmd.register(app)


_register_report()
