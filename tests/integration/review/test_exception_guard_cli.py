"""``soar verdict ... --except-value`` as a person (or a script fed alert data) runs it (issue #15).

A value that would except (almost) every event is one line on stderr, a non-zero exit and nothing
written; a narrow one is proposed.
"""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
from pathlib import Path

import pytest

from soar.review.feedback import EXCEPTIONS, VERDICTS
from soar.store.sqlite import SQLiteStore
from tests.conftest import env_without_soar


def _soar(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """As the OS login running the tests, which the principals file maps to a responder (os_user)."""
    env = {**env_without_soar(), "SOAR_STATE_DIR": str(state), "SOAR_API_TOKENS_FILE": str(state / "tokens.yml")}
    return subprocess.run(
        [sys.executable, "-m", "soar", *args], cwd=state, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def state(tmp_path: Path) -> Path:
    store = SQLiteStore(tmp_path / "state.sqlite3")
    store.create("alerts", "a1", {"id": "a1", "rule": {"id": "r1", "title": "t"}, "@timestamp": "2026-12-01T00:00:00Z"})
    store.close()
    login = pwd.getpwuid(os.geteuid()).pw_name
    (tmp_path / "tokens.yml").write_text(f"principals:\n  - {{name: ana, roles: [responder], os_user: {login}}}\n")
    return tmp_path


def test_cli_refuses_exceptions_that_except_everything(state: Path) -> None:
    for value, why in (
        ("0.0.0.0/0", "would except (almost) every address"),
        ("::/0", "would except (almost) every address"),
        ("[!~]*", "would except every event"),
        ("?*", "would except every event"),
    ):
        out = _soar(state, "verdict", "a1", "fp", "--except-field", "source.ip", "--except-value", value)
        lines = [line for line in out.stderr.splitlines() if line.strip()]
        assert out.returncode != 0 and "Traceback" not in out.stderr, out.stderr
        assert len(lines) == 1 and f"exception.values: the value {value!r}" in lines[0] and why in lines[0], lines
    store = SQLiteStore(state / "state.sqlite3")
    assert store.count(EXCEPTIONS) == 0 and store.count(VERDICTS) == 0
    ok = _soar(state, "verdict", "a1", "fp", "--except-field", "source.ip", "--except-value", "203.0.113.0/24")
    assert ok.returncode == 0, ok.stderr
    assert store.count(EXCEPTIONS) == 1
    assert store.get(VERDICTS, "a1").doc["analyst"] == "ana"  # type: ignore[union-attr]  # the mapped login
