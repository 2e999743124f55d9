"""Audit entries that found the state store out of reach are spooled, not lost, and appended once it answers."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

from elastic_transport import ConnectionError as ESConnectionError

from soar.audit import iter_entries, verify
from soar.audit.spool import pending, replay, spool_path
from soar.config import load_settings
from soar.playbooks.records import audit
from soar.store.sqlite import SQLiteStore


class Unreachable(SQLiteStore):
    """A store whose writes meet a refused connection (the Elasticsearch store during an outage)."""

    def create(self, kind: str, id: str, doc: Any) -> bool:
        raise ESConnectionError("connection refused")


def test_an_entry_that_finds_the_store_down_is_spooled_then_appended_in_order_once(tmp_path: Path) -> None:
    settings = load_settings(state_dir=tmp_path / "state", slack_bot_token="xoxb-secret-token-1234")
    down = Unreachable(tmp_path / "store.db")
    audit(down, settings, "playbook.run_started", "run-1", {"playbook": "contain", "token": "xoxb-secret-token-1234"})
    audit(down, settings, "playbook.step_finished", "run-1", {"step": "isolate", "ok": True})
    assert pending(settings) == 2
    path = spool_path(settings)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "xoxb-secret-token-1234" not in path.read_text(encoding="utf-8")  # redacted before it touches the disk

    up = SQLiteStore(tmp_path / "store.db")
    assert replay(up, settings) == 2
    assert pending(settings) == 0 and replay(up, settings) == 0  # nothing twice
    entries = list(iter_entries(up))
    assert [e["action"] for e in entries] == ["playbook.run_started", "playbook.step_finished"]  # the spool's order
    assert all(e["details"]["spooled"] is True and e["details"]["occurred_at"] <= e["at"] for e in entries)
    assert "xoxb-secret-token-1234" not in str(entries)
    assert verify(up, settings).ok


def test_a_replay_that_meets_the_store_down_again_keeps_what_it_could_not_write(tmp_path: Path) -> None:
    settings = load_settings(state_dir=tmp_path / "state")
    down = Unreachable(tmp_path / "store.db")
    for n in range(3):
        audit(down, settings, "playbook.step_finished", f"run-{n}", {"n": n})
    assert replay(down, settings) == 0 and pending(settings) == 3
    up = SQLiteStore(tmp_path / "store.db")
    assert replay(up, settings) == 3
    assert [e["target"] for e in iter_entries(up)] == ["run-0", "run-1", "run-2"]
