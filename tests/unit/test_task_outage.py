"""A task that finds the state store out of reach: retried with capped backoff, given up with a line, never a
traceback; any other error unchanged; the store's outage said once (soar.tasks.outage)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import elastic_transport
import pytest
import redis

from soar.connections import unreachable
from soar.errors import ServiceUnavailable
from soar.hosts.errors import SSHError
from soar.tasks import outage


class Retried(Exception):
    def __init__(self, countdown: float) -> None:
        self.countdown = countdown


@dataclass
class Request:
    retries: int = 0
    called_directly: bool = False
    is_eager: bool = False
    args: list[Any] = field(default_factory=lambda: ["run-1"])


@dataclass
class FakeTask:
    """What ``waiting_for_store`` uses of a bound Celery task."""

    request: Request
    max_retries: int | None = outage.GIVE_UP_AFTER
    name: str = "soar.playbooks.advance"

    def retry(self, exc: BaseException, countdown: float) -> Retried:
        raise Retried(countdown)


def refused() -> Exception:
    try:
        raise OSError(111, "Connection refused")
    except OSError as cause:
        try:
            raise elastic_transport.ConnectionError("Connection error") from cause
        except elastic_transport.ConnectionError as exc:
            return exc


@pytest.fixture(autouse=True)
def fresh_dependency(monkeypatch: pytest.MonkeyPatch) -> None:
    from soar import liveness

    monkeypatch.setattr(liveness, "_shared", {})
    monkeypatch.setattr(outage, "_recover_soon", lambda settings: None)


def test_what_counts_as_unreachable() -> None:
    assert unreachable(refused())
    assert unreachable(elastic_transport.ConnectionTimeout("timed out"))
    assert unreachable(redis.ConnectionError("gone"))
    assert unreachable(ServiceUnavailable("Elasticsearch at x is not reachable"))
    wrapped = RuntimeError("while saving")
    wrapped.__cause__ = refused()
    assert unreachable(wrapped)  # through the chain
    assert not unreachable(ValueError("a bug"))
    assert not unreachable(KeyError("steps"))
    assert not unreachable(
        SSHError("web1", "no route to host")
    )  # a host out of reach is the step's outcome, not the store's


def test_an_outage_is_a_retry_with_capped_growing_backoff() -> None:
    delays = []
    for n in range(12):
        with pytest.raises(Retried) as caught, outage.waiting_for_store(FakeTask(Request(retries=n))):
            raise refused()
        delays.append(caught.value.countdown)
    assert 0.5 <= delays[0] <= 1.0
    assert all(0 < d <= outage.BACKOFF_CAP for d in delays)
    assert delays[-1] >= outage.BACKOFF_CAP / 2  # jitter in [1/2, 1] of the cap


def test_past_its_retries_a_task_gives_up_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    task = FakeTask(Request(retries=outage.GIVE_UP_AFTER))
    with caplog.at_level(logging.WARNING), outage.waiting_for_store(task):
        raise refused()
    gave_up = [r for r in caplog.records if "gave up after" in r.getMessage()]
    assert len(gave_up) == 1 and "recovery resumes it" in gave_up[0].getMessage()
    assert all(r.exc_info is None for r in caplog.records)  # no traceback


def test_in_process_the_caller_gets_the_error() -> None:
    with (
        pytest.raises(elastic_transport.ConnectionError),
        outage.waiting_for_store(FakeTask(Request(called_directly=True))),
    ):
        raise refused()


def test_another_error_is_not_retried() -> None:
    with pytest.raises(ValueError), outage.waiting_for_store(FakeTask(Request())):
        raise ValueError("a bug")


def test_without_retry_the_work_is_dropped_and_said_once(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        for _ in range(5):
            with outage.waiting_for_store(FakeTask(Request()), retry=False):
                raise refused()
        with outage.waiting_for_store(FakeTask(Request()), retry=False):
            pass
    lines = [r.getMessage() for r in caplog.records]
    assert len([m for m in lines if " is down: " in m]) == 1, lines
    assert len([m for m in lines if " is back after " in m]) == 1, lines


def test_the_store_back_sends_recovery(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[str] = []
    monkeypatch.setattr(outage, "_recover_soon", lambda settings: sent.append("recover"))
    with pytest.raises(Retried), outage.waiting_for_store(FakeTask(Request())):
        raise refused()
    with outage.waiting_for_store(FakeTask(Request())):
        pass
    with outage.waiting_for_store(FakeTask(Request())):  # up already: nothing more
        pass
    assert sent == ["recover"]


def test_the_worker_drops_celerys_line_per_retry_of_a_soar_task_and_keeps_the_rest() -> None:
    import logging

    from celery.app.trace import LOG_RETRY, LOG_SUCCESS

    from soar.cli.worker_cmd import quiet_retries

    def line(msg: str, name: str) -> logging.LogRecord:
        fields = {"name": name, "id": "t1", "exc": "Retry in 2s", "return_value": None, "runtime": 0.1}
        return logging.LogRecord("celery.app.trace", logging.INFO, __file__, 1, msg, (fields,), None)

    assert not quiet_retries(line(LOG_RETRY, "soar.playbooks.advance"))  # soar says down/back once instead
    assert quiet_retries(line(LOG_RETRY, "someone.elses.task"))
    assert quiet_retries(line(LOG_SUCCESS, "soar.playbooks.advance"))
