"""``soar services``."""

from __future__ import annotations

import typer

from soar.config import get_settings
from soar.connections import check_elasticsearch, check_redis
from soar.errors import ServiceUnavailable

app = typer.Typer(no_args_is_help=True)


@app.command("check")
def check(
    process: str = typer.Option(
        "", "--process", help="Instead: is this host's scheduler or worker alive and ready (its heartbeat)?"
    ),
    max_age: float = typer.Option(60.0, "--max-age", min=1, help="With --process: seconds a heartbeat stays fresh."),
) -> int:
    """Report the reachable Elasticsearch and Redis versions; exit 2 when one is down.

    With ``--process scheduler|worker``: exit 0 when that process on this host is alive and ready, 1 when it is
    alive but waiting for a dependency (or its heartbeat is stale or missing), saying why in one line.
    """
    settings = get_settings()
    if process:
        from soar.errors import InputError
        from soar.liveness import heartbeat_path, read_heartbeat

        if process not in ("scheduler", "worker"):
            raise InputError(f"--process: scheduler or worker, got {process!r}")
        healthy, why = read_heartbeat(heartbeat_path(settings.state_dir, process), max_age=max_age)
        typer.echo(why, err=not healthy)
        return 0 if healthy else 1
    failures = 0
    for probe in (check_elasticsearch, check_redis):
        try:
            status = probe(settings)
        except ServiceUnavailable as exc:
            typer.echo(str(exc), err=True)
            failures += 1
            continue
        typer.echo(f"{status.name} {status.version} at {status.url}")
    return 2 if failures else 0
