"""The CLI's contract: one clear line for user errors, tracebacks only with --debug."""

from __future__ import annotations

import subprocess
import sys

from soar import __version__
from tests.conftest import env_without_soar


def run_soar(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "soar", *args],
        capture_output=True,
        text=True,
        env={**env_without_soar(), **(env or {})},
        timeout=60,
        check=False,
    )


def test_version() -> None:
    out = run_soar("version")
    assert out.returncode == 0
    assert out.stdout.strip() == f"soar {__version__}"


def test_help_lists_groups() -> None:
    out = run_soar("--help")
    assert out.returncode == 0
    for group in ("config", "services", "worker"):
        assert group in out.stdout


def test_config_show_masks_secrets() -> None:
    out = run_soar("config", "show", "--json", env={"SOAR_SLACK_BOT_TOKEN": "xoxb-123-secret"})
    assert out.returncode == 0, out.stderr
    assert "xoxb-123-secret" not in out.stdout
    assert '"slack_bot_token": "********"' in out.stdout


def test_bad_setting_is_one_line_without_traceback() -> None:
    out = run_soar("config", "show", env={"SOAR_REDIS_URL": "http://wrong"})
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("error: redis_url (SOAR_REDIS_URL):")
    assert "Traceback" not in out.stderr


def test_debug_shows_traceback() -> None:
    out = run_soar("--debug", "config", "show", env={"SOAR_REDIS_URL": "http://wrong"})
    assert out.returncode != 0
    assert "Traceback" in out.stderr


def test_unknown_command_is_usage_error() -> None:
    out = run_soar("no-such-command")
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
