"""The root Typer app and its global options."""

from __future__ import annotations

import logging

import typer

from soar.cli._settings import check_settings
from soar.urls import mask_log_records

app = typer.Typer(
    name="soar",
    help="Incident detection and fast response: Sigma rules on Elasticsearch, playbooks, verified containment.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks and debug logs."),
) -> None:
    mask_log_records()  # a URL's password never reaches a log line, whoever logs it
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not debug:
        # Client libraries log every retry; soar reports failures itself, once.
        for noisy in ("elastic_transport", "urllib3", "paramiko", "celery", "kombu"):
            logging.getLogger(noisy).setLevel(logging.ERROR)
    check_settings()  # an invalid setting stops every command, naming the setting


@app.command()
def version() -> None:
    """Print soar's version."""
    from soar import __version__

    typer.echo(f"soar {__version__}")
