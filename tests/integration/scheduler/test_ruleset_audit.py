"""The audit log says which rule set the scheduler runs: once per change, with its hash."""

from __future__ import annotations

import shutil
from pathlib import Path

from soar.audit import iter_entries, verify
from soar.config import load_settings
from soar.scheduler.loop import MemoryLeases, Scheduler
from soar.store.sqlite import SQLiteStore
from tests.conftest import REPO_ROOT


def test_rule_set_loads_are_audited_once_per_change(tmp_path: Path) -> None:
    content = tmp_path / "content"
    shutil.copytree(REPO_ROOT / "rules" / "linux" / "auditd", content / "rules" / "linux" / "auditd")
    settings = load_settings(content_root=content, state_dir=tmp_path / "state")
    store = SQLiteStore(tmp_path / "state.sqlite3")
    scheduler = Scheduler(settings, store, MemoryLeases(), lambda _ids: None)

    first = scheduler.rules()
    scheduler.rules()  # unchanged: no second entry
    loads = [e for e in iter_entries(store) if e["action"] == "rules.loaded"]
    assert len(loads) == 1
    assert loads[0]["details"]["rules"] == len(first) > 0

    rule = next(p for p in sorted((content / "rules").rglob("*.yml")) if not p.name.endswith(".tests.yml"))
    rule.write_text(rule.read_text().replace("title: ", "title: Edited - ", 1))
    scheduler.rules()
    loads = [e for e in iter_entries(store) if e["action"] == "rules.loaded"]
    assert len(loads) == 2
    assert loads[0]["details"]["sha256"] != loads[1]["details"]["sha256"]
    assert loads[1]["details"]["errors"] == 0 and loads[1]["details"]["rules"] == len(first)
    assert verify(store, settings).ok


def test_configuration_and_policy_changes_are_audited(tmp_path: Path) -> None:
    content = tmp_path / "content"
    (content / "rules").mkdir(parents=True)
    policy = content / "policy.yml"
    policy.write_text((REPO_ROOT / "policy.yml").read_text())
    settings = load_settings(content_root=content, state_dir=tmp_path / "state", slack_bot_token="xoxb-secret-1")
    store = SQLiteStore(tmp_path / "state.sqlite3")
    scheduler = Scheduler(settings, store, MemoryLeases(), lambda _ids: None)
    scheduler.rules()
    scheduler.rules()
    policy.write_text(policy.read_text().replace("contain_per_hour: 30", "contain_per_hour: 60"))
    scheduler.rules()
    entries = [e for e in iter_entries(store) if e["action"].startswith("config.")]
    assert [e["action"] for e in entries] == ["config.loaded", "config.changed"]
    assert entries[0]["details"]["policy_sha256"] != entries[1]["details"]["policy_sha256"]
    assert entries[0]["details"]["settings_sha256"] == entries[1]["details"]["settings_sha256"]
    assert "xoxb-secret-1" not in str(list(iter_entries(store)))
