"""``soar demo``: the whole loop with no servers, in about a minute."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from soar.config import get_settings

CONTAINMENT = ("hosts.isolate_host", "hosts.block_ip", "hosts.lock_account", "hosts.kill_sessions")


def _minutes(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def register(root: typer.Typer) -> None:
    @root.command("demo")
    def demo(
        workdir: Path = typer.Option(None, "--workdir", help="Where the demo writes (default: <state_dir>/demo)."),
        lab: bool = typer.Option(False, "--lab", help="Act for real on the local lab hosts (root, scripts/lab.sh up)."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    ) -> None:
        """Replay a bundled intrusion: detect with every shipped rule, respond, notify, report."""
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        from soar.demo import notification_digest, run_demo

        settings = get_settings()
        if workdir is None:
            from soar.private import private_dir

            private_dir(settings.state_dir)  # the demo's folder is made inside it: the state directory stays 0700
        target = workdir or settings.state_dir / "demo"
        console = Console(file=sys.stderr)  # bound now: the demo captures stderr for the notifications
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TimeElapsedColumn(),
            console=console,
            disable=quiet,
            transient=True,
        ) as bar:
            task = bar.add_task("starting", total=1.0)

            def progress(what: str, done: float) -> None:
                bar.update(task, description=what, completed=done)
                if not quiet and "alert:" in what:
                    bar.console.print(f"  {what}")

            result = run_demo(settings, target, lab=lab, progress=progress)

        echo = typer.echo
        mode = "dry run: host actions planned, nothing touched" if result.dry_run else "LAB: host actions executed"
        echo(f"\nsoar demo: {result.events} events, {result.cycles} detection cycles ({mode})\n")
        echo(f"Alerts by rule ({sum(result.alerts_by_rule.values())}):")
        for title, count in result.alerts_by_rule.items():
            echo(f"  {count:3d}  {title}")
        echo(f"\nIncidents ({len(result.incidents)}: alerts of one host, user or source address close in time):")
        for inc in result.incidents:
            echo(f"  {inc['alerts']:3d} alerts  {inc['severity']:<9} {inc['key']:<28} {inc['id'][:16]}")
        echo(f"\nPlaybook runs ({len(result.runs)}):")
        for run in result.runs:
            echo(f"  {run['playbook']:<22} {run['host']:<11} {run['shown']:<17} {run['id']}")
        echo("\nHost actions and policy decisions:")
        for act in result.actions:
            reasons = f" ({'; '.join(act['reasons'])})" if act["reasons"] else ""
            echo(f"  {act['uses']:<22} {act['host']:<11} {act['shown']:<17} policy: {act['policy']}{reasons}")
            for cmd in act["commands"]:
                echo(f"      $ {cmd}")
        if result.approvals:
            echo("\nApprovals given by the on-call:")
            for line in result.approvals:
                echo(f"  {line}")
        contained = [a for a in result.actions if a["uses"] in CONTAINMENT and a["status"] == "succeeded"]
        verb = "planned (dry run)" if result.dry_run else "executed and verified"
        echo(f"\nContainment {verb}:")
        for act in contained or [{"uses": "none", "host": ""}]:
            echo(f"  {act['uses']} {act['host']}")
        if result.notifications is not None:
            digest = notification_digest(result.notifications)
            echo(
                f"\nOn-call channel (console, no Slack token): {digest['cards']} alert cards, "
                f"{digest['replies']} thread replies, {digest['updates']} card updates -> {result.notifications}"
            )
        echo(f"MTTD (first event → alert, median): {_minutes(result.mttd_seconds)}")
        mttc = (
            _minutes(result.mttc_seconds)
            if not result.dry_run
            else "n/a in dry run (use --lab for verified containment)"
        )
        echo(f"MTTC (alert → verified containment, median): {mttc}")
        echo(f"\nPost-incident report: {result.report_path}")
        echo(f"All reports: {result.workdir / 'reports'}   state: {result.workdir / 'state'}")
