"""Analysts' verdicts flow back into `soar rules coverage` as per-rule precision."""

from __future__ import annotations

import json
from pathlib import Path

from soar.store.sqlite import SQLiteStore
from tests.unit.test_cli import run_soar

RULE = "0d005181-4c1d-47a4-a4e3-081ee1b2aeee"  # rules/linux/auditd/audit_rules_changed.yml


def test_coverage_shows_precision_from_verdicts(tmp_path: Path) -> None:
    state = tmp_path / "state"
    store = SQLiteStore(state / "state.sqlite3")
    for n, verdict in enumerate(["true_positive", "true_positive", "true_positive", "false_positive"]):
        store.put("verdicts", f"alert-{n}", {"alert_id": f"alert-{n}", "rule_id": RULE, "verdict": verdict})
    store.close()
    env = {"SOAR_STATE_DIR": str(state)}
    out = run_soar("rules", "coverage", "rules/linux/auditd", "--json", env=env)
    assert out.returncode == 0, out.stderr
    rows = {r["id"]: r for r in json.loads(out.stdout)["rules"]}
    assert rows[RULE]["precision"] == {"rule_id": RULE, "title": None, "tp": 3, "fp": 1, "precision": 0.75}
    assert all(r["precision"] is None for rid, r in rows.items() if rid != RULE)
    text = run_soar("rules", "coverage", "rules/linux/auditd", env=env)
    assert "0.75 (3/1)" in text.stdout
