"""``soar scheduler`` (continuous detection) and ``soar detect status|backfill``."""

from __future__ import annotations

import signal
import threading

import typer

from soar.cli._output import echo_json, table
from soar.config import get_settings

app = typer.Typer(no_args_is_help=True)


def register(root: typer.Typer) -> None:
    @root.command("scheduler")
    def scheduler(
        tick: float = typer.Option(1.0, "--tick", min=0.1, help="Seconds between looks at what is due."),
        metrics_port: int = typer.Option(0, "--metrics-port", help="Serve Prometheus metrics (0: the setting)."),
        lease: float = typer.Option(
            0.0, "--lease", min=0, help="Seconds a sent rule stays claimed (0: max(10 s, 2 intervals))."
        ),
    ) -> None:
        """Run every enabled rule on its interval: due rules go to the workers together, each cycle."""
        from soar import metrics_prom
        from soar.dispatch import dispatcher_for
        from soar.scheduler.service import run_scheduler

        settings = get_settings()
        in_process = dispatcher_for(settings).in_process
        port = metrics_port or settings.metrics_port
        if port:
            metrics_prom.serve(port, settings.api_host)
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        mode = "in-process (celery_eager)" if in_process else f"to queue {settings.detection_queue}"
        typer.echo(f"soar scheduler: rules under {settings.content_root}/rules, sending {mode}", err=True)
        if in_process:  # embedded: this long-lived process also retries what Slack did not take
            from soar.notify.service import resume_in_background

            resume_in_background(settings)
        run_scheduler(settings, stop, tick, lease or None)


@app.command("status")
def status(json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> int:
    """Per rule: state, last run, duration, hits, alerts, errors and open gaps; exit 1 if a rule is failing."""
    from soar.scheduler.runtime import store_for
    from soar.scheduler.service import status as rule_status

    settings = get_settings()
    rows = rule_status(settings, store_for(settings))
    failing = 1 if any(r.state in ("error", "disabled", "invalid") for r in rows) else 0
    if json_out:
        echo_json([r.as_dict() for r in rows])
        return failing
    headers = ["rule", "state", "last run", "ms", "hits", "alerts", "errors", "gaps", "gap s", "last error"]
    typer.echo(
        table(
            headers,
            [
                [
                    r.title[:40],
                    r.state,
                    r.last_run,
                    r.duration_ms,
                    r.hits,
                    r.alerts,
                    r.errors,
                    r.open_gaps,
                    r.gap_seconds,
                    (r.last_error or "")[:80],
                ]
                for r in rows
            ],
        )
    )
    return failing


@app.command("backfill")
def backfill(
    rule: str = typer.Option(..., "--rule", help="Rule id or title."),
    start: str = typer.Option(..., "--from", help="ISO-8601 start (inclusive)."),
    end: str = typer.Option(..., "--to", help="ISO-8601 end (exclusive)."),
) -> int:
    """Search a window for one rule by hand; alerts already created are not created again."""
    from soar.errors import ServiceUnavailable
    from soar.scheduler.runtime import detector_for
    from soar.scheduler.service import backfill as run_backfill

    settings = get_settings()
    report = run_backfill(settings, detector_for(settings), rule, start, end)
    run = next(iter(report.runs.values()))
    if run.error is not None:
        if run.error.kind == "unavailable":
            raise ServiceUnavailable(run.error.message)
        typer.echo(f"error: {run.error.message}", err=True)
        return 1
    typer.echo(
        f"{run.rule_id}: {run.hits} hits, {run.alerts} new alerts ({len(report.created)} created) "
        f"in {report.seconds:.2f}s, {report.requests.total} Elasticsearch requests"
    )
    return 0
