"""``soar playbooks validate|plan|run``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from soar.cli._output import echo_json, table
from soar.config import get_settings
from soar.errors import InputError, SourceLocation

app = typer.Typer(no_args_is_help=True)


def read_alert(path: Path) -> dict[str, Any]:
    """An alert JSON file, checked; errors name the file (and line for bad JSON)."""
    from soar.playbooks.engine import validate_alert

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the alert: {exc}", SourceLocation(path)) from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON: {exc.msg}", SourceLocation(path, exc.lineno, exc.colno)) from None
    return validate_alert(doc, str(path))


def parse_inputs(pairs: list[str] | None) -> dict[str, Any]:
    """``--input name=value`` pairs; values are YAML scalars (numbers, booleans, strings)."""
    import yaml

    from soar import _yaml

    out: dict[str, Any] = {}
    for pair in pairs or []:
        name, sep, raw = pair.partition("=")
        if not sep or not name:
            raise InputError(f"--input {pair!r}: expected name=value")
        try:
            out[name] = _yaml.load(raw) if raw else ""
        except yaml.YAMLError:
            out[name] = raw
    return out


INPUT_OPTION = typer.Option(None, "--input", help="Override a declared input: name=value (repeatable).")


@app.command("validate")
def validate(
    paths: list[Path] = typer.Argument(None, help="Playbook files or folders (default: <content root>/playbooks)."),
) -> int:
    """Check playbooks against the schema, their templates and the action registry; every error as file:line."""
    from soar.actions import load_registry
    from soar.playbooks.loader import load_playbooks
    from soar.policy import load_policy

    settings = get_settings()
    load_policy(settings.policy_path)  # a broken policy is reported here too
    targets = list(paths) if paths else [settings.content_root / "playbooks"]
    for p in targets:
        if not p.exists():
            raise InputError(f"{p}: no such file or folder")
    result = load_playbooks(targets, load_registry(settings))
    for err in result.errors:
        typer.echo(f"error: {err}", err=True)
    typer.echo(f"{len(result.playbooks)} playbook(s) valid, {len(result.errors)} error(s)")
    return 1 if result.errors else 0


@app.command("plan")
def plan(
    playbook: str = typer.Argument(..., help="Playbook name or file."),
    alert: Path = typer.Option(..., "--alert", help="Alert JSON file."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    inputs: list[str] = INPUT_OPTION,
) -> int:
    """Dry run: every step with its exact parameters, commands per host and policy decision. Touches nothing."""
    from soar.playbooks.engine import plan as make_plan
    from soar.playbooks.runtime import Runtime

    settings = get_settings()
    alert_doc = read_alert(alert)
    rt = Runtime.build(settings, store=_NoStore(), log_errors=False)
    result = make_plan(rt, rt.playbook(playbook), alert_doc, parse_inputs(inputs))
    if as_json:
        echo_json(result)
        return 0
    typer.echo(f"plan: {result['playbook']['name']} for alert {result['alert']['id']}")
    if not result["matches_trigger"]:
        typer.echo("note: this alert does not match the playbook's trigger")
    for step in result["steps"]:
        head = f"- {step['id']} ({step['uses']}, impact {step.get('impact', '?')}): {step['status']}"
        typer.echo(head + (f": {step.get('error') or step.get('reason')}" if step["status"] != "planned" else ""))
        for inst in step.get("instances", []):
            pol = inst["policy"]
            typer.echo(f"    {inst['key']}: policy {pol['outcome']} ({'; '.join(pol['reasons'])})")
            typer.echo(f"      params: {json.dumps(inst['params'], ensure_ascii=False, sort_keys=True)}")
            if inst["dry_run_error"]:
                typer.echo(f"      would fail: {inst['dry_run_error']}")
            for cmd in inst["commands"]:
                stdin = f" < {cmd['stdin_script']}" if cmd.get("stdin_script") else ""
                typer.echo(f"      [{cmd['host']}] {' '.join(cmd['argv'])}{stdin}")
    return 0


@app.command("run")
def run(
    playbook: str = typer.Argument(..., help="Playbook name or file."),
    alert: Path = typer.Option(..., "--alert", help="Alert JSON file."),
    queue: bool = typer.Option(False, "--queue", help="Hand the run to the workers instead of running it here."),
    as_json: bool = typer.Option(False, "--json", help="Print the run record as JSON."),
    inputs: list[str] = INPUT_OPTION,
) -> int:
    """Run a playbook for real against an alert (one run per playbook and alert)."""
    from soar.access import authorize_in
    from soar.cli._identity import cli_principal_with
    from soar.errors import Forbidden
    from soar.incidents import attach_quietly
    from soar.playbooks import dispatch
    from soar.playbooks.engine import ALERTS, check_inputs, start_run
    from soar.playbooks.records import RUNS
    from soar.playbooks.runtime import Runtime
    from soar.records import Run
    from soar.scope import scopes_for

    settings = get_settings()
    principal = cli_principal_with(settings, "runs:start")
    scopes = scopes_for(settings)
    alert_doc = scopes.enrich(read_alert(alert))
    allowed = authorize_in(principal, "runs:start", scopes.of_alert(alert_doc))
    if not allowed.allowed:
        raise Forbidden(allowed.reason)
    rt = Runtime.build(settings, log_errors=False)
    pb = rt.playbook(playbook)
    overrides = parse_inputs(inputs)
    check_inputs(pb, overrides)  # refuse before anything is written
    rt.store.create(ALERTS, str(alert_doc["id"]), alert_doc)
    attach_quietly(rt.store, settings, str(alert_doc["id"]))  # every alert has its incident, this one too
    run_id, created = start_run(rt, pb, alert_doc, origin="cli", inputs=overrides, requested_by=principal.name)
    if not created:
        typer.echo(f"run {run_id} already exists for this playbook and alert (see: soar runs show {run_id})")
    if queue:
        dispatch.schedule(settings, run_id)
        typer.echo(f"queued {run_id}")
        return 0
    dispatch.drive(rt, run_id)
    rec = rt.store.get(RUNS, run_id)
    if rec is None:
        raise InputError(f"no run {run_id!r}")
    ran = Run.from_doc(rec.doc, run_id)
    if as_json:
        from soar.cli.runs_cmd import shown_record

        echo_json(shown_record(rec.doc))
    else:
        from soar.cli.runs_cmd import show_run

        show_run(ran)
    return 0 if ran.status in ("succeeded", "waiting_approval") else 1


class _NoStore:
    """Plans touch nothing: any store access is a bug and fails loudly."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"dry run tried to use the store ({name})")


__all__ = ["app", "read_alert", "table"]
