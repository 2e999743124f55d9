"""Liveness: one log line per change, capped backoff with jitter, heartbeat files a supervisor reads (pure)."""

from __future__ import annotations

import logging
import socket
import stat
import threading
from pathlib import Path

import pytest

from soar.liveness import Dependency, Heartbeat, backoff, read_heartbeat, sd_notify, wait_for


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_backoff_doubles_to_its_cap_with_jitter_between_half_and_whole() -> None:
    assert [backoff(n, rng=lambda: 1.0) for n in range(8)] == [0.5, 1, 2, 4, 8, 16, 30, 30]
    assert backoff(3, rng=lambda: 0.0) == 2.0 and backoff(100, rng=lambda: 0.0) == 15.0


def test_a_dependency_logs_once_down_once_back_and_reminds_every_five_minutes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    dep = Dependency("Elasticsearch", clock=clock)
    with caplog.at_level(logging.WARNING, logger="soar.liveness"):
        for _ in range(120):  # two minutes of ticks during an outage
            dep.failed(ConnectionError("Connection refused to http://elastic:hunter2-secret@es:9200"))
            clock.now += 1
        clock.now += 200
        dep.failed(ConnectionError("still refused"))
        dep.ok()
        dep.ok()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3, lines
    assert lines[0].startswith("Elasticsearch is down: ConnectionError: Connection refused")
    assert "hunter2-secret" not in lines[0]
    assert lines[1].startswith("Elasticsearch still down after 320 s")
    assert lines[2] == "Elasticsearch is back after 320 s"


def test_wait_for_retries_until_it_works_and_stops_when_asked() -> None:
    attempts: list[int] = []
    waits: list[int] = []

    def flaky() -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise OSError("down")
        return "store"

    stop = threading.Event()
    dep = Dependency("store")
    assert wait_for(flaky, dep, stop, cap=0.01, on_wait=lambda: waits.append(1)) == "store"
    assert len(attempts) == 3 and len(waits) == 2 and dep.up
    stop.set()
    assert wait_for(flaky, Dependency("x"), stop) is None


def test_a_heartbeat_is_private_atomic_and_read_as_ready_stale_or_not_ready(tmp_path: Path) -> None:
    path = tmp_path / "state" / "run" / "scheduler.json"
    clock = Clock()
    beat = Heartbeat("scheduler", path, clock=clock)
    dep = Dependency("the store", clock=clock)
    dep.failed(OSError("refused"))
    beat.beat(ready=False, dependencies=[dep])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    healthy, why = read_heartbeat(path, max_age=30, now=clock.now + 1)
    assert not healthy and "not ready" in why and "the store down for" in why and "refused" in why
    dep.ok()
    beat.beat(ready=True, dependencies=[dep])
    assert read_heartbeat(path, max_age=30, now=clock.now + 1)[0]
    stale = read_heartbeat(path, max_age=30, now=clock.now + 31)
    assert not stale[0] and "last heartbeat 31 s ago" in stale[1]
    assert not read_heartbeat(tmp_path / "none.json", max_age=30)[0]
    assert [p.name for p in path.parent.iterdir()] == ["scheduler.json"]  # no temporary file left


def test_sd_notify_speaks_to_systemds_socket_only_when_given_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert sd_notify("READY=1") is False
    address = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(address)
        monkeypatch.setenv("NOTIFY_SOCKET", address)
        assert sd_notify("READY=1") is True
        assert server.recv(64) == b"READY=1"
