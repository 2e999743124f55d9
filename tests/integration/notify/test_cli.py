"""`soar notify`: see what waits, fix the cause, deliver now; a bad routes file is one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from soar.config import load_settings
from soar.notify.outbox import Message, enqueue
from soar.store import open_store
from tests.conftest import env_without_soar
from tests.integration.notify.standin import Workspace


def _soar(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "soar", *args],
        capture_output=True,
        text=True,
        env={**env_without_soar(), **env},
        timeout=60,
        check=False,
    )


def test_a_message_for_a_missing_channel_waits_and_goes_out_once_the_channel_exists(
    tmp_path: Path, workspace: Workspace
) -> None:
    env = {
        "SOAR_STATE_DIR": str(tmp_path / "state"),
        "SOAR_CONTENT_ROOT": str(tmp_path),
        "SOAR_SLACK_BOT_TOKEN": workspace.token,
        "SOAR_SLACK_API_URL": workspace.api_url,
        "SOAR_SLACK_CHANNEL_INTERVAL": "0",
    }
    settings = load_settings(**{k.removeprefix("SOAR_").lower(): v for k, v in env.items()})
    store = open_store(settings)
    enqueue(store, Message(key="cli:1", op="post", kind="card", channel="#soc-later", text="hello later"))
    first = _soar(env, "notify", "deliver")
    assert first.returncode == 1 and "channel_not_found" in first.stdout
    listed = _soar(env, "notify", "outbox")
    assert listed.returncode == 0 and "cli:1" in listed.stdout and "channel_not_found" in listed.stdout
    workspace.add_channel("soc-later")
    assert _soar(env, "notify", "deliver").returncode == 0  # still backing off: nothing sent yet
    assert workspace.top_level() == []
    done = _soar(env, "notify", "deliver", "--now")
    assert done.returncode == 0, done.stdout + done.stderr
    assert [m["text"] for m in workspace.top_level()] == ["hello later"]
    assert "cli:1" not in _soar(env, "notify", "outbox").stdout


def test_a_bad_routes_file_is_one_line_naming_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "notify.yml").write_text("routes:\n  - channel: '#x'\n    min_severity: huge\n")
    out = _soar({"SOAR_CONTENT_ROOT": str(tmp_path), "SOAR_STATE_DIR": str(tmp_path)}, "notify", "routes")
    assert out.returncode != 0
    assert out.stderr.strip().count("\n") == 0 and "Traceback" not in out.stderr
    assert "notify.yml:3" in out.stderr and "min_severity" in out.stderr
    (tmp_path / "notify.yml").write_text("routes:\n  - channel: '#crit'\n    min_severity: critical\n")
    ok = _soar(
        {"SOAR_CONTENT_ROOT": str(tmp_path), "SOAR_STATE_DIR": str(tmp_path)},
        "notify",
        "routes",
        "--severity",
        "critical",
    )
    assert ok.returncode == 0 and ok.stdout.strip().endswith("→ #crit")
