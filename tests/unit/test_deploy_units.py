"""The systemd units for hosts without containers: restart on failure, watchdog where the process pings it."""

from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest

UNITS = Path(__file__).resolve().parents[2] / "deploy" / "systemd"


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=True, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys are case-sensitive
    parser.read(UNITS / name, encoding="utf-8")
    return parser


@pytest.mark.parametrize("name", ["soar-scheduler.service", "soar-worker.service", "soar-api.service"])
def test_every_process_restarts_on_failure_unprivileged(name: str) -> None:
    service = unit(name)["Service"]
    assert service["Restart"] == "on-failure" and service["User"] == "soar"
    assert service["NoNewPrivileges"] == "yes" and service["ProtectSystem"] == "strict"
    assert service["ExecStart"].startswith("/opt/soar/bin/soar ")


@pytest.mark.parametrize("name", ["soar-scheduler.service", "soar-worker.service"])
def test_the_scheduler_and_worker_tell_systemd_when_ready_and_feed_its_watchdog(name: str) -> None:
    """soar.liveness sends READY=1 and WATCHDOG=1; a start during an outage may wait (no start timeout)."""
    service = unit(name)["Service"]
    assert service["Type"] == "notify" and service["NotifyAccess"] == "main"
    assert service["WatchdogSec"].endswith("s") and service["TimeoutStartSec"] == "infinity"


def test_systemd_accepts_the_units(tmp_path: Path) -> None:
    """``systemd-analyze verify`` on copies whose ExecStart is an existing binary (soar is not installed there)."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (the syntax is still checked by the tests above)")
    for path in UNITS.glob("*.service"):
        text = path.read_text(encoding="utf-8").replace("/opt/soar/bin/soar", "/bin/true")
        (tmp_path / path.name).write_text(text, encoding="utf-8")
    done = subprocess.run(
        [analyze, "verify", *sorted(str(p) for p in tmp_path.glob("*.service"))],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    problems = [line for line in done.stderr.splitlines() if "soar" in line and "User" not in line]
    assert done.returncode == 0 or not problems, done.stderr
