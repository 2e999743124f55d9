"""``soar worker``: a real Celery worker of soar's app."""

from __future__ import annotations

import logging

import typer

from soar.config import get_settings


def register(root: typer.Typer) -> None:
    @root.command("worker")
    def worker(
        queues: str = typer.Option("", "--queues", "-Q", help="Comma-separated queues (default: all)."),
        concurrency: int = typer.Option(2, "--concurrency", "-c", min=1),
        loglevel: str = typer.Option("INFO", "--loglevel", "-l"),
        pool: str = typer.Option("prefork", "--pool", help="prefork, threads or solo."),
    ) -> None:
        """Run a Celery worker consuming detection, response and default queues."""
        from soar.celery_app import all_queues, configure

        settings = get_settings()
        celery = configure(settings)
        for name in ("celery", "kombu"):  # the CLI quiets client libraries; a worker's own log is its output
            logging.getLogger(name).setLevel(logging.NOTSET)
        qs = queues or ",".join(all_queues(settings))
        celery.worker_main(
            [
                "worker",
                "-Q",
                qs,
                "-c",
                str(concurrency),
                "-l",
                loglevel,
                "-P",
                pool,
                "--without-gossip",
                "--without-mingle",
            ]
        )
