"""``soar alerts``: the queue on the command line, scoped like the API, every change audited with its principal (#17).

Run as the OS login, which the principals file maps (``os_user``); a second principal (by token) is scoped to
env=staging and sees only the staging host's alerts.
"""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import sys
from pathlib import Path

import pytest

from soar.store.sqlite import SQLiteStore
from tests.conftest import env_without_soar

INVENTORY = """\
hosts:
  web1: {address: 10.0.1.11, labels: {env: prod}}
  stage1: {address: 10.0.2.11, labels: {env: staging}}
"""
STAGING_TOKEN = "sam-staging-token-000000001"


def _soar(state: Path, *args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {
        **env_without_soar(),
        "SOAR_STATE_DIR": str(state),
        "SOAR_CONTENT_ROOT": str(state),
        "SOAR_API_TOKENS_FILE": str(state / "tokens.yml"),
    }
    if token:
        env["SOAR_TOKEN"] = token
    return subprocess.run(
        [sys.executable, "-m", "soar", *args], cwd=state, env=env, capture_output=True, text=True, timeout=120
    )


def _alert(n: int, host: str, level: str, title: str, minute: int) -> dict[str, object]:
    return {
        "id": f"{'abcd' if n < 3 else 'wxyz'}{n:02d}" + "f" * 34,
        "@timestamp": f"2026-12-01T10:{minute:02d}:00.000Z",
        "rule": {"id": f"rule-{level}", "title": title, "level": level},
        "severity": level,
        "host": {"name": host},
        "user": {"name": "alice" if n % 2 else "bob"},
    }


@pytest.fixture
def state(tmp_path: Path) -> Path:
    store = SQLiteStore(tmp_path / "state.sqlite3")
    alerts = [
        _alert(0, "web1", "high", "Reverse shell", 1),
        _alert(1, "web1", "medium", "Sudo by a stranger", 2),
        _alert(2, "stage1", "critical", "Reverse shell", 3),
        _alert(3, "stage1", "low", "Cron written", 4),
    ]
    for doc in alerts:
        store.create("alerts", str(doc["id"]), doc)
    store.close()
    login = pwd.getpwuid(os.geteuid()).pw_name
    (tmp_path / "tokens.yml").write_text(
        "principals:\n"
        f"  - {{name: ana, roles: [responder], os_user: {login}}}\n"
        f"  - {{name: sam, roles: [responder], token: {STAGING_TOKEN}, attributes: {{env: [staging]}}}}\n"
        "  - {name: bo, roles: [viewer]}\n"
    )
    (tmp_path / "inventory.yml").write_text(INVENTORY)
    return tmp_path


def _ids(out: subprocess.CompletedProcess[str]) -> list[str]:
    assert out.returncode == 0, out.stderr
    return [str(a["id"])[2:6] for a in json.loads(out.stdout)]


def test_list_filters_sorts_and_pages(state: Path) -> None:
    assert _ids(_soar(state, "alerts", "list", "--json")) == ["yz03", "cd02", "cd01", "cd00"]  # newest first
    assert _ids(_soar(state, "alerts", "list", "--json", "--host", "web1")) == ["cd01", "cd00"]
    assert _ids(_soar(state, "alerts", "list", "--json", "--level", "critical")) == ["cd02"]
    assert _ids(_soar(state, "alerts", "list", "--json", "--text", "REVERSE")) == ["cd02", "cd00"]
    assert _ids(_soar(state, "alerts", "list", "--json", "--user", "alice")) == ["yz03", "cd01"]
    assert _ids(_soar(state, "alerts", "list", "--json", "--sort", "severity")) == ["cd02", "cd00", "cd01", "yz03"]
    since = _soar(state, "alerts", "list", "--json", "--since", "2026-12-01T10:02:30Z")
    assert _ids(since) == ["yz03", "cd02"]
    first = _soar(state, "alerts", "list", "--limit", "2")
    assert first.returncode == 0 and "more: soar alerts list --before 2026-12-01T10:03:00.000Z" in first.stderr
    rest = _soar(state, "alerts", "list", "--json", "--before", "2026-12-01T10:03:00.000Z")
    assert _ids(rest) == ["cd01", "cd00"]
    bad = _soar(state, "alerts", "list", "--status", "pending")
    assert bad.returncode != 0 and bad.stderr.startswith("error: --status: one of open, acknowledged, closed")


def test_a_scoped_principal_sees_and_touches_only_its_hosts(state: Path) -> None:
    assert _ids(_soar(state, "alerts", "list", "--json", token=STAGING_TOKEN)) == ["yz03", "cd02"]
    hidden = _soar(state, "alerts", "show", "abcd00", token=STAGING_TOKEN)
    assert hidden.returncode != 0 and "unknown alert id 'abcd00'" in hidden.stderr
    # "abcd" is ambiguous for ana; sam may see only abcd02 of them, so for sam it resolves, naming no other
    shown = _soar(state, "alerts", "show", "abcd", token=STAGING_TOKEN)
    assert shown.returncode == 0 and "abcd02" in shown.stdout and "abcd00" not in shown.stdout + shown.stderr
    refused = _soar(state, "alerts", "close", "abcd00", token=STAGING_TOKEN)
    assert refused.returncode != 0 and "unknown alert id" in refused.stderr


def test_prefixes_resolve_uniquely_or_list_the_candidates(state: Path) -> None:
    one = _soar(state, "alerts", "show", "abcd00")
    assert one.returncode == 0 and "Reverse shell" in one.stdout and "web1" in one.stdout
    both = _soar(state, "alerts", "show", "abcd")
    assert both.returncode != 0 and "is ambiguous" in both.stderr
    assert all(f"abcd0{n}" in both.stderr for n in range(3)) and "Traceback" not in both.stderr
    short = _soar(state, "alerts", "show", "abc")
    assert short.returncode != 0 and "at least 4 characters" in short.stderr
    none = _soar(state, "alerts", "show", "zzzz")
    assert none.returncode != 0 and "unknown alert id 'zzzz'" in none.stderr


def test_ack_assign_close_reopen_are_audited_with_the_principal(state: Path) -> None:
    alert = "abcd00" + "f" * 34
    assert _soar(state, "alerts", "ack", "abcd00").stdout.strip() == f"alert {alert}: acknowledged by ana"
    assert "already acknowledged" in _soar(state, "alerts", "ack", "abcd00").stdout
    assert "assigned to me by ana" in _soar(state, "alerts", "assign", "abcd00", "me").stdout
    refused = _soar(state, "alerts", "assign", "abcd00", "mallory")
    assert refused.returncode != 0 and "'mallory' is not a principal" in refused.stderr
    assert _ids(_soar(state, "alerts", "list", "--json", "--assignee", "me")) == ["cd00"]
    assert _soar(state, "alerts", "close", "abcd00", "--note", "benign admin").returncode == 0
    assert _ids(_soar(state, "alerts", "list", "--json", "--status", "closed")) == ["cd00"]
    assert _ids(_soar(state, "alerts", "list", "--json", "--status", "open")) == ["yz03", "cd02", "cd01"]
    assert "reopened by ana" in _soar(state, "alerts", "reopen", "abcd00").stdout
    assert "already acknowledged" in _soar(state, "alerts", "reopen", "abcd00").stdout  # not closed: nothing to do
    store = SQLiteStore(state / "state.sqlite3")
    doc = store.get("alerts", alert).doc  # type: ignore[union-attr]
    assert doc["status"] == "acknowledged" and doc.get("closed_at") is None and doc["reopened_by"] == "ana"
    assert doc["assignee"] == "ana" and doc["acknowledged_by"] == "ana"
    verdict = _soar(state, "verdict", "abcd01", "tp")  # the short id the queue shows is enough everywhere
    assert verdict.returncode == 0 and verdict.stdout.startswith("alert abcd01" + "f" * 34 + ": true_positive")
    audit = [(r.doc["actor"], r.doc["action"]) for r in store.find("audit", order_by="seq", limit=100)]
    assert audit == [
        ("ana", "alert.acknowledged"),
        ("ana", "alert.assigned"),
        ("ana", "alert.closed"),
        ("ana", "alert.reopened"),
        ("ana", "verdict.recorded"),
    ]
