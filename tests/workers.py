"""Start real Celery workers of soar's app for end-to-end tests, with their own Redis db.

Each area uses its own Redis database number so workers of different test
modules never take each other's tasks; the worker runs the current code.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path

from tests.services import require

REPO_ROOT = Path(__file__).resolve().parent.parent


def redis_url_for_db(db: int) -> str:
    base = os.environ.get("SOARDEV_TEST_REDIS", "redis://127.0.0.1:6379")
    return f"{base}/{db}"


def flush_db(db: int) -> None:
    import redis

    redis.Redis.from_url(redis_url_for_db(db)).flushdb()


@contextmanager
def running_worker(
    db: int,
    env: Mapping[str, str] | None = None,
    *,
    concurrency: int = 2,
    pool: str = "prefork",
    log_path: Path | None = None,
    ready_timeout: float = 60.0,
    extra_args: tuple[str, ...] = (),
    redis_url: str | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """A `soar worker` subprocess on Redis db ``db`` (or on ``redis_url``: a test's own Redis); killed (and its
    children) on exit."""
    from celery import Celery

    url = redis_url or redis_url_for_db(db)
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SOAR_")}
    full_env.update({"SOAR_REDIS_URL": url, "SOAR_CONTENT_ROOT": str(REPO_ROOT), **(env or {})})
    log = Path(log_path or os.devnull).open("ab")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen(
        [sys.executable, "-m", "soar", "worker", "-c", str(concurrency), "--pool", pool, "-l", "INFO", *extra_args],
        env=full_env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        cwd=REPO_ROOT,
    )
    probe = Celery("probe", broker=url)
    try:
        deadline = time.monotonic() + ready_timeout

        def _wait_ready() -> None:
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    raise RuntimeError(f"worker exited with {proc.returncode}")
                if probe.control.ping(timeout=0.5):
                    return
            raise RuntimeError("worker did not answer a ping in time")

        require("Celery worker", _wait_ready)
        yield proc
    finally:
        probe.close()
        kill_group(proc)
        log.close()


def kill_group(proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
    """Kill the worker and its pool children (they share the session)."""
    if proc.poll() is None:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
