"""``soar runs report RUN``: the post-incident timeline of one run (text, JSON or a printable HTML page)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from soar.cli._output import echo_json, table
from soar.config import get_settings


def register(runs: typer.Typer) -> None:
    @runs.command("report")
    def report(
        run_id: str = typer.Argument(..., help="The run id (see 'soar runs list')."),
        html: Path = typer.Option(None, "--html", help="Write a self-contained HTML page to this file."),
        as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    ) -> int:
        """Timeline from the first event to release, with the duration of each segment and the evidence."""
        from soar.review.render import format_duration, write_atomic
        from soar.review.report import build_report, report_html
        from soar.review.timeline import impacts_from_registry
        from soar.store import open_store

        settings = get_settings()
        store = open_store(settings)
        try:
            rep = build_report(store, settings, run_id, impact_of=impacts_from_registry(settings))
        finally:
            store.close()
        if html is not None:
            write_atomic(html, report_html(rep))
        if as_json:
            echo_json(rep)
            return 0
        rule = (rep["alert"].get("rule") or {}) if isinstance(rep["alert"], dict) else {}
        typer.echo(f"run {rep['run_id']}  playbook {rep['playbook']}  status {rep['status']}")
        typer.echo(f"alert {rep['alert'].get('id')}  {rule.get('title', '')} ({rule.get('level', '?')})\n")
        typer.echo(
            table(["segment", "duration"], [(_segment(s), format_duration(s["seconds"])) for s in rep["segments"]])
        )
        typer.echo("")
        typer.echo(
            table(["time", "event", "detail"], [(e["at"] or "—", e["title"], e["detail"]) for e in rep["events"]])
        )
        if rep["evidence"]:
            typer.echo("")
            typer.echo(
                table(["step", "evidence", "sha256"], [(e["step"], e["name"], e["sha256"]) for e in rep["evidence"]])
            )
        if html is not None:
            typer.echo(f"\nwrote {html}")
        return 0


def _segment(s: dict[str, Any]) -> str:
    """A segment's label, with what the containment watch saw for "containment held" (checks, drifts, repairs)."""
    return f"{s['label']} ({s['detail']})" if s.get("detail") else str(s["label"])
