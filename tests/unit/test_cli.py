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


URL_SECRETS = {
    "SOAR_REDIS_URL": "redis://:redis-pw-41@127.0.0.1:1/0",
    "SOAR_ELASTICSEARCH_URL": "https://elastic:es-pw-42@127.0.0.1:1",
}


def test_config_show_masks_the_password_in_every_url() -> None:
    for args in (("config", "show"), ("config", "show", "--json")):
        out = run_soar(*args, env=URL_SECRETS)
        assert out.returncode == 0, out.stderr
        assert "redis-pw-41" not in out.stdout + out.stderr and "es-pw-42" not in out.stdout + out.stderr
        assert "redis://:***@127.0.0.1:1/0" in out.stdout
        assert "https://elastic:***@127.0.0.1:1" in out.stdout


def test_unreachable_services_are_named_without_the_password_in_their_url() -> None:
    out = run_soar("services", "check", env=URL_SECRETS)
    assert out.returncode == 2
    assert "redis-pw-41" not in out.stdout + out.stderr and "es-pw-42" not in out.stdout + out.stderr
    assert "Elasticsearch at https://elastic:***@127.0.0.1:1 is not reachable: connection refused" in out.stderr
    assert "Redis at redis://:***@127.0.0.1:1/0 is not reachable: connection refused" in out.stderr


def test_an_invalid_url_setting_is_reported_without_its_password_even_with_debug() -> None:
    for debug in ((), ("--debug",)):
        out = run_soar(*debug, "config", "show", env={"SOAR_REDIS_URL": "http://u:bad-pw-43@wrong"})
        assert out.returncode != 0
        assert "bad-pw-43" not in out.stdout + out.stderr
        assert "got 'http://u:***@wrong'" in out.stderr


def test_config_show_warns_what_an_incoming_webhook_cannot_do() -> None:
    hook = "https://hooks.slack.com/services/T0/B0/hook-secret-42"
    for args in (("config", "show"), ("config", "show", "--json")):
        out = run_soar(*args, env={"SOAR_SLACK_WEBHOOK_URL": hook})
        assert out.returncode == 0, out.stderr
        assert out.stderr.count("warning: Slack is configured with an incoming webhook") == 1
        assert "cannot thread, edit or send ephemeral messages" in out.stderr
        assert "hook-secret-42" not in out.stdout + out.stderr
    table = run_soar("config", "show", env={"SOAR_SLACK_WEBHOOK_URL": hook}).stdout
    assert "# Slack: incoming webhook (slack_webhook_url): no threads, no edits, no ephemerals" in table
    bot = run_soar("config", "show", env={"SOAR_SLACK_WEBHOOK_URL": hook, "SOAR_SLACK_BOT_TOKEN": "xoxb-1"})
    assert "warning" not in bot.stderr and "# Slack: Web API with slack_bot_token" in bot.stdout
    assert "# Slack: not configured" in run_soar("config", "show").stdout


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
