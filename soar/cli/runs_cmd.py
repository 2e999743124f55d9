"""``soar runs list|show|approve|deny``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from soar.cli._output import echo_json, table
from soar.config import get_settings

if TYPE_CHECKING:
    from soar.records import Run

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
    from soar.playbooks.outcomes import shown_status
    from soar.playbooks.records import RUNS
    from soar.records import Run, run_planned

    where = {"status": status} if status else None
    recs = _store().find(RUNS, where, order_by="created_at", descending=True, limit=limit)
    runs = [Run.from_doc(r.doc, r.id) for r in recs]
    rows = [
        {
            "id": run.id,
            "playbook": run.playbook.name,
            "alert": run.alert_id,
            "status": run.status,
            "dry_run": run_planned(run),
            "shown_status": shown_status(run.status, run_planned(run)),
            "created_at": run.created_at,
            "finished_at": run.finished_at,
        }
        for run in runs
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


def shown_record(doc: dict[str, Any]) -> dict[str, Any]:
    """A run record as stored, without its lease and the unredacted parameters the engine keeps for itself."""
    out = {k: v for k, v in doc.items() if k != "lease"}
    for step in (out.get("steps") or {}).values():
        for inst in step.get("instances", []):
            inst.pop("_params", None)
    return out


def show_run(run: Run, watch: list[dict[str, Any]] | None = None) -> None:
    """The run as it happened: steps in the run's own order, a dry run as planned, a skip with its reason."""
    from soar.playbooks.outcomes import shown_status, shown_step
    from soar.records import instance_planned, run_planned

    dry = run_planned(run)
    typer.echo(
        f"run {run.id}: {shown_status(run.status, dry)}  playbook {run.playbook.name} "
        f"({run.playbook.version_hash[:12]})  alert {run.alert_id}"
    )
    if dry:
        typer.echo("dry run: host actions were planned, nothing was touched")
    if run.error:
        typer.echo(f"error: {run.error}")
    rollback_reason = run.rollback.reason
    for step in run.steps_in_order:
        if step.phase == "rollback" and rollback_reason:
            typer.echo(f"rollback: {rollback_reason}")
            rollback_reason = None
        error = f": {step.error}" if step.error else ""
        typer.echo(f"- {step.id} ({step.uses}): {shown_step(step)}{error}")
        for inst in step.instances:
            decision = inst.decision.outcome if inst.decision else "-"
            status = shown_status(inst.status, instance_planned(inst))
            typer.echo(f"    {inst.key}: {status} (policy {decision}, attempts {len(inst.attempts)})")
            if inst.status == "waiting_approval":
                typer.echo(f"      approve: soar runs approve {run.id} --step {inst.key}")
    if rollback_reason:
        typer.echo(f"rollback: {rollback_reason}")
    for line in watch_lines(watch or []):
        typer.echo(line)


def watch_lines(watch: list[dict[str, Any]]) -> list[str]:
    """The containment watch's view of the run's containments (soar.containment): in force or released, looks,
    drifts, repairs, and the last drifts with what they found."""
    if not watch:
        return []
    out = ["containment watch:"]
    for c in watch:
        where = " ".join(str(v) for k, v in c["params"].items() if k in ("host", "ip", "user") and v)
        if c["state"] == "in_force":
            state = f"in force since {c['in_force_since']}"
        else:
            state = f"released {c['released_at']} ({c['released_by']}), in force from {c['in_force_since']}"
        last = f" (last {c['last_check']}: {c['last_outcome']})" if c["last_check"] else ""
        escalated = ", ESCALATED" if c["escalated"] else ""
        out.append(f"- {c['step']} ({c['action']} {where}): {state}")
        out.append(f"    {c['checks']} checks{last}, {c['drifts']} drifts, {c['repairs']} repairs{escalated}")
        for look in c["drift_log"]:
            decision = f" -> {look['decision']}" if look.get("decision") not in (None, "none") else ""
            out.append(f"    {look['at']} {look['outcome']}{decision}: {'; '.join(look['found'])}")
    return out


@app.command("show")
def show(
    run_id: str = typer.Argument(..., help="Run id."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> int:
    """One run with its steps, attempts, approvals and policy decisions."""
    from soar.cli._identity import cli_principal_with
    from soar.records import Run
    from soar.review.data import watched

    settings = get_settings()
    principal = cli_principal_with(settings, "runs:read")
    store = _store()
    rec = _resolve_run(settings, store, run_id, principal, "runs:read")
    run_id = rec.id
    run = Run.from_doc(rec.doc, run_id)
    watch = watched(store, run_id)
    if as_json:
        echo_json({**shown_record(rec.doc), "containment_watch": watch})
    else:
        show_run(run, watch)
    return 0


def _resolve_run(settings: Any, store: Any, text: str, principal: Any, permission: str) -> Any:
    """The run ``text`` names (an id or a unique prefix) among those in the principal's scope, else NotFound."""
    from soar.access import authorize_in
    from soar.ids import resolve
    from soar.playbooks.records import RUNS
    from soar.scope import scopes_for

    scopes = scopes_for(settings)
    return resolve(
        store, RUNS, text, "run", lambda r: authorize_in(principal, permission, scopes.of_run(r.doc)).allowed
    )


def _decide(run_id: str, step: str, decision: str) -> int:
    """A person's decision, as the principal this command line authenticates as (never a name from a flag)."""
    from soar.cli._identity import cli_principal_with
    from soar.playbooks.approvals import decide_as

    settings = get_settings()
    principal = cli_principal_with(settings, "approvals:decide")
    run_id = _resolve_run(settings, _store(), run_id, principal, "approvals:decide").id
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
    from soar.cli._identity import cli_principal_with
    from soar.playbooks import dispatch
    from soar.playbooks.records import RUNS
    from soar.playbooks.rollback import request_rollback
    from soar.records import Run

    settings = get_settings()
    principal = cli_principal_with(settings, "runs:rollback")
    rt = dispatch.runtime_for(settings)
    run_id = _resolve_run(settings, rt.store, run_id, principal, "runs:rollback").id
    reopened = request_rollback(rt, run_id, actor=principal.name, reason=reason)
    steps = ", ".join(e.id for e in reopened.rollback.steps) or "nothing to revert"
    typer.echo(f"{run_id}: rolling back ({steps})")
    dispatch.kick(settings, run_id, runtime=rt)
    rec = rt.store.get(RUNS, run_id)
    run = Run.from_doc(rec.doc, run_id) if rec is not None else None
    if run is not None and run.status != "running":
        typer.echo(f"{run_id}: {run.status}" + (f" ({run.error})" if run.error else ""))
        return 0 if run.status == "rolled_back" else 1
    return 0


def _register_report() -> None:
    """``soar runs report`` lives with the review area (soar/cli/report_cmd.py) and plugs in here."""
    try:
        from soar.cli import report_cmd
    except ImportError:  # pragma: no cover - the review area not installed
        return
    report_cmd.register(app)


_register_report()
