"""Small builders for detection tests: inline Sigma rules and ECS events."""

from __future__ import annotations

import textwrap
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


def rule_yaml(
    detection: dict[str, Any],
    *,
    title: str = "Test rule",
    rule_id: str | None = None,
    logsource: dict[str, str] | None = None,
    level: str = "medium",
    extra: dict[str, Any] | None = None,
) -> str:
    """A complete, convention-clean Sigma rule as YAML text."""
    data: dict[str, Any] = {
        "title": title,
        "id": rule_id or str(uuid.uuid4()),
        "status": "test",
        "description": "A rule written by a test.",
        "author": "soar tests",
        "date": "2026-11-28",
        "tags": ["attack.execution", "attack.t1059.004"],
        "logsource": logsource or {"product": "linux", "category": "process_creation"},
        "detection": detection,
        "falsepositives": ["None known"],
        "level": level,
    }
    data.update(extra or {})
    return yaml.safe_dump(data, sort_keys=False)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def process_event(command_line: str, executable: str = "/usr/bin/bash", **extra: Any) -> dict[str, Any]:
    """An Elastic Defend style process start event."""
    event: dict[str, Any] = {
        "@timestamp": "2026-11-28T10:00:00.000Z",
        "ecs": {"version": "8.11.0"},
        "host": {"name": "web-01"},
        "event": {"category": ["process"], "type": ["start"], "action": "exec"},
        "process": {
            "executable": executable,
            "name": executable.rsplit("/", 1)[-1],
            "command_line": command_line,
            "args": command_line.split(),
        },
        "user": {"name": "deploy"},
    }
    for key, value in extra.items():
        target = event
        parts = key.split("__")
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = value
    return event


def auth_event(ts: str, outcome: str, source_ip: str, user: str = "root", host: str = "bastion") -> dict[str, Any]:
    """A Filebeat system.auth sshd event."""
    return {
        "@timestamp": ts,
        "ecs": {"version": "8.11.0"},
        "host": {"name": host},
        "event": {
            "dataset": "system.auth",
            "module": "system",
            "category": ["authentication"],
            "outcome": outcome,
            "action": "ssh_login",
        },
        "process": {"name": "sshd"},
        "source": {"ip": source_ip},
        "user": {"name": user},
        "system": {"auth": {"ssh": {"event": "Failed" if outcome == "failure" else "Accepted", "method": "password"}}},
    }


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str


def run_cli(capsys: Any, monkeypatch: Any, *args: str, env: dict[str, str] | None = None) -> CliResult:
    """Run ``soar ARGS`` in this process (much faster than a subprocess on a busy machine)."""
    from soar.cli import main
    from soar.config import get_settings

    for key, value in (env or {}).items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    capsys.readouterr()
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    finally:
        get_settings.cache_clear()
    captured = capsys.readouterr()
    return CliResult(code, captured.out, captured.err)
