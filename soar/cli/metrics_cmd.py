"""``soar metrics``: MTTD, MTTA, MTTC, MTTR, automation rate, approval wait, false positives, and the chart."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer

from soar.cli._output import echo_json, table
from soar.config import get_settings
from soar.review.render import format_duration
from soar.review.times import parse_time


def register(root: typer.Typer) -> None:
    @root.command("metrics")
    def metrics(
        since: str = typer.Option("30d", "--since", help="Start: a duration ago (30d, 24h) or an ISO time."),
        until: str = typer.Option(None, "--until", help="End: ISO time or a duration ago (default: now)."),
        chart: Path = typer.Option(None, "--chart", help="SVG file for the chart (default: <state_dir>/reports/)."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON (with every incident)."),
    ) -> int:
        """Response metrics over a period, and the threat-mitigation chart (alerts and time to contain)."""
        from soar.review.chart import mitigation_svg
        from soar.review.data import load_period
        from soar.review.metrics import period_metrics
        from soar.review.render import write_atomic
        from soar.review.timeline import impacts_from_registry
        from soar.store import open_store

        settings = get_settings()
        now = datetime.now(UTC)
        start = parse_time(since, what="--since", now=now)
        end = parse_time(until, what="--until", now=now) if until else now
        store = open_store(settings)
        try:
            data = load_period(store, start, end)
        finally:
            store.close()
        impacts = impacts_from_registry(settings)
        result = period_metrics(
            data["alerts"], data["runs"], data["approvals"], data["verdicts"], start=start, end=end, impact_of=impacts
        )
        if chart is None:
            from soar.private import private_dir

            chart = private_dir(settings.state_dir / "reports") / f"mitigation-{now:%Y%m%dT%H%M%S}.svg"
        path = chart
        if path.suffix.lower() != ".svg":
            from soar.errors import InputError

            raise InputError(f"--chart: the chart is SVG; give a file name ending in .svg, got {path}")
        write_atomic(path, mitigation_svg(result["series"]))
        result["chart"] = str(path)
        if as_json:
            echo_json(result)
            return 0
        typer.echo(print_table(result))
        typer.echo(f"chart: {path}")
        return 0


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def print_table(m: dict[str, Any]) -> str:
    lines = [f"period {m['from']} → {m['to']}: {m['alerts']} alerts, {m['responded']} with a playbook run", ""]
    excluded = m.get("excluded_runs") or {}
    if any(excluded.values()):  # what the containment and automation figures leave out, and why
        lines.insert(
            1,
            f"excluded from MTTA, MTTC, MTTR and the automation rate: {excluded.get('dry_run', 0)} dry runs, "
            f"{excluded.get('refused', 0)} runs the policy refused ({m.get('excluded_incidents', 0)} alerts left"
            " with no counted run)",
        )
    lines[1:1] = m.get("unreadable_runs") or []  # one line each; they are in no figure
    rows = []
    for key, label in (
        ("mttd", "MTTD  event → alert"),
        ("mtta", "MTTA  alert → first action"),
        ("mttc", "MTTC  alert → verified containment"),
        ("mttr", "MTTR  alert → release/closure"),
        ("approval_wait", "approval wait"),
    ):
        s = m[key]
        rows.append(
            (label, s["n"], format_duration(s["mean"]), format_duration(s["median"]), format_duration(s["p90"]))
        )
    lines.append(table(["measure", "n", "mean", "median", "p90"], rows))
    lines += [
        "",
        f"automation rate      {_pct(m['automation_rate'])}",
        f"containment uptime   {_pct(m.get('containment_uptime'))} of the watch's looks (mean per incident)",
        f"false-positive rate  {_pct(m['false_positive_rate'])} of {m['verdicts']} verdicts",
    ]
    if m["rules"]:
        lines += ["", "per-rule precision (analyst verdicts)"]
        rule_rows = [(r["rule_id"], r["title"] or "", r["tp"], r["fp"], _pct(r["precision"])) for r in m["rules"]]
        lines.append(table(["rule", "title", "TP", "FP", "precision"], rule_rows))
    return "\n".join(lines)
