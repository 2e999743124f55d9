"""``soar services``."""

from __future__ import annotations

import typer

from soar.config import get_settings
from soar.connections import check_elasticsearch, check_redis
from soar.errors import ServiceUnavailable

app = typer.Typer(no_args_is_help=True)


@app.command("check")
def check() -> int:
    """Report the reachable Elasticsearch and Redis versions; exit 2 when one is down."""
    settings = get_settings()
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
