"""``soar worker``: a real Celery worker of soar's app."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

import typer

from soar.config import Settings, get_settings


def register(root: typer.Typer) -> None:
    @root.command("worker")
    def worker(
        queues: str = typer.Option("", "--queues", "-Q", help="Comma-separated queues (default: all)."),
        concurrency: int = typer.Option(2, "--concurrency", "-c", min=1),
        loglevel: str = typer.Option("INFO", "--loglevel", "-l"),
        pool: str = typer.Option("prefork", "--pool", help="prefork, threads or solo."),
        metrics_port: int = typer.Option(
            0, "--metrics-port", min=0, max=65535, help="Serve Prometheus metrics summed over the pool's processes."
        ),
    ) -> None:
        """Run a Celery worker consuming detection, response and default queues."""
        from soar.celery_app import all_queues, configure

        settings = get_settings()
        _metrics(metrics_port, settings.api_host, processes=concurrency if pool == "prefork" else 1)
        celery = configure(settings)
        _heartbeat(settings)
        for name in ("celery", "kombu"):  # the CLI quiets client libraries; a worker's own log is its output
            logging.getLogger(name).setLevel(logging.NOTSET)
        logging.getLogger("celery.app.trace").addFilter(quiet_retries)
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


def quiet_retries(record: logging.LogRecord) -> bool:
    """Drop Celery's line for each retry of a soar task: soar retries only what waits for a dependency, and
    says that once when it goes down and once when it is back (soar.tasks.outage), not once per retry."""
    from celery.app.trace import LOG_RETRY

    args = record.args if isinstance(record.args, dict) else {}
    return not (record.msg == LOG_RETRY and str(args.get("name", "")).startswith("soar."))


def _heartbeat(settings: Settings) -> None:
    """The worker's heartbeat (``soar services check --process worker``; systemd's watchdog): a thread in the
    parent process that pings the broker and the state store every 10 s; ready once Celery says the worker
    is and both answer (a worker whose store is away retries its tasks: it is alive, not ready). Either
    going away is one log line, and one when it is back."""
    import threading

    from celery.signals import worker_ready, worker_shutdown

    from soar.connections import redis_client
    from soar.liveness import Dependency, Heartbeat, heartbeat_path

    beat = Heartbeat("worker", heartbeat_path(settings.state_dir, "worker"))
    broker = Dependency("Redis (the task broker)")
    store = Dependency(f"the state store ({settings.store}) for the worker's readiness")  # tasks log their own
    probe_store = _store_probe(settings)
    consuming, stop = threading.Event(), threading.Event()
    worker_ready.connect(lambda **_: consuming.set(), weak=False)
    worker_shutdown.connect(lambda **_: stop.set(), weak=False)

    def loop() -> None:
        client = redis_client(settings)
        while True:
            try:
                client.ping()
            except Exception as exc:  # down: said once, looked at again next beat
                broker.failed(exc)
            else:
                broker.ok()
            try:
                probe_store()
            except Exception as exc:
                store.failed(exc)
            else:
                store.ok()
            beat.beat(ready=consuming.is_set() and broker.up and store.up, dependencies=[broker, store])
            if stop.wait(1.0 if not consuming.is_set() else 10.0):
                return

    threading.Thread(target=loop, name="soar-heartbeat", daemon=True).start()


def _store_probe(settings: Settings) -> Callable[[], object]:
    """A cheap request the state store must answer: Elasticsearch's cluster health (within the cycle budget); the
    embedded SQLite store is a local file, always there."""
    if settings.store != "elasticsearch":
        return lambda: None
    from soar.connections import elasticsearch_client

    client = elasticsearch_client(settings.for_cycles())
    return lambda: client.cluster.health()  # (GET / is the rest-root module, absent from some distributions)


def _metrics(port: int, host: str, *, processes: int) -> None:
    """Multiprocess metrics: an empty directory before the pool forks; the endpoint in this (parent) process."""
    from celery.signals import worker_process_shutdown

    from soar import metrics_prom
    from soar.errors import InputError

    if metrics_prom.reset_multiprocess_dir() is not None:
        worker_process_shutdown.connect(
            lambda pid=None, **_: metrics_prom.mark_process_dead(pid or os.getpid()), weak=False
        )
    elif port and processes > 1:
        raise InputError(
            f"--metrics-port: a prefork pool of {processes} processes needs {metrics_prom.MULTIPROC_ENV} "
            "(an empty directory for prometheus-client's multiprocess mode); without it the endpoint "
            "shows only the parent process, which runs no task"
        )
    if port:
        metrics_prom.serve(port, host)
