"""The review commands as a person runs them: real subprocesses over a store with a real finished run.

Bad input gives one line on stderr and a non-zero exit, writes nothing, and shows no traceback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from soar.audit.chain import KIND, seq_id
from soar.review.feedback import EXCEPTIONS, VERDICTS, precision_from_store
from soar.store.sqlite import SQLiteStore
from tests.integration.api.conftest import Api, contained_incident
from tests.integration.api.lab_content import TOKENS


def soar(cwd: Path, *args: str, who: str = "viewer") -> subprocess.CompletedProcess[str]:
    """The command as principal ``who`` authenticates (its token in SOAR_TOKEN), with the api fixture's settings."""
    env = {**os.environ, "SOAR_TOKEN": TOKENS[who]}
    return subprocess.run(
        [sys.executable, "-m", "soar", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def one_line_error(result: subprocess.CompletedProcess[str], fragment: str) -> None:
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], result.stderr


def test_review_commands(api: Api, tmp_path: Path) -> None:
    alert_id, run_id = contained_incident(api)
    store = SQLiteStore(api.settings.state_dir / "state.sqlite3")

    # -- soar runs report
    out = tmp_path / "report.html"
    rep = soar(tmp_path, "runs", "report", run_id, "--json", "--html", str(out))
    assert rep.returncode == 0, rep.stderr
    data = json.loads(rep.stdout)
    assert data["run_id"] == run_id and data["milestones"]["contained"] is not None
    assert 'id="timeline"' in out.read_text() and "&lt;script&gt;" in out.read_text()
    text = soar(tmp_path, "runs", "report", run_id)
    assert text.returncode == 0 and "time to contain" in text.stdout and "Containment verified" in text.stdout
    missing = tmp_path / "missing.html"
    one_line_error(soar(tmp_path, "runs", "report", "run-nope", "--html", str(missing)), "unknown run id 'run-nope'")
    assert not missing.exists()

    # -- soar verdict: malformed input writes nothing; a false positive proposes an exception
    one_line_error(soar(tmp_path, "verdict", alert_id, "maybe", who="responder"), "verdict: Input should be")
    one_line_error(soar(tmp_path, "verdict", "no-such-alert", "tp", who="responder"), "unknown alert id")
    one_line_error(soar(tmp_path, "verdict", alert_id, "tp"), "vera (viewer) lacks verdicts:write")
    # out of scope reads as unknown: web1 is a prod host and sam is scoped to staging
    one_line_error(soar(tmp_path, "verdict", alert_id, "tp", who="staging_approver"), "unknown alert id")
    assert store.count(VERDICTS) == 0
    fp = soar(
        tmp_path,
        "verdict",
        alert_id,
        "fp",
        "--except-field",
        "source.ip",
        "--except-value",
        "203.0.113.0/24",
        who="responder",
    )
    assert fp.returncode == 0, fp.stderr
    assert store.get(VERDICTS, alert_id).doc["analyst"] == "rory"  # type: ignore[union-attr]
    proposed = json.loads(soar(tmp_path, "exceptions", "list", "--json").stdout)
    assert [(e["status"], e["field"], e["values"]) for e in proposed] == [("proposed", "source.ip", ["203.0.113.0/24"])]
    assert precision_from_store(store)["lab-rule-1"] == {
        "rule_id": "lab-rule-1",
        "title": "Lab rule <b>bold</b>",
        "tp": 0,
        "fp": 1,
        "precision": 0.0,
    }
    assert json.loads(soar(tmp_path, "exceptions", "list", "--json", who="staging_approver").stdout) == []
    one_line_error(soar(tmp_path, "exceptions", "approve", proposed[0]["id"], who="approver"), "needs role admin")
    assert soar(tmp_path, "exceptions", "approve", proposed[0]["id"], who="admin").returncode == 0
    approved = store.get(EXCEPTIONS, proposed[0]["id"]).doc  # type: ignore[union-attr]
    assert approved["status"] == "approved" and approved["approved_by"] == "root"

    # -- soar metrics
    chart = tmp_path / "curve.svg"
    m = soar(tmp_path, "metrics", "--since", "30d", "--chart", str(chart))
    assert m.returncode == 0, m.stderr
    assert "MTTC  alert → verified containment" in m.stdout and "false-positive rate  100.0% of 1 verdicts" in m.stdout
    assert chart.read_text().count('class="bar"') == 1
    one_line_error(soar(tmp_path, "metrics", "--since", "last tuesday"), "--since: expected")
    one_line_error(soar(tmp_path, "metrics", "--since", "1d", "--until", "10d"), "is after the end")

    # -- soar audit export and verify
    bundle = tmp_path / "evidence.json"
    one_line_error(soar(tmp_path, "audit", "export", "--from", "1d", "--to", "2d", "--out", str(bundle)), "is after")
    assert not bundle.exists()
    exported = soar(tmp_path, "audit", "export", "--from", "1d", "--out", str(bundle))
    assert exported.returncode == 0, exported.stderr
    assert json.loads(bundle.read_text())["verification"]["ok"] is True and bundle.with_suffix(".html").exists()
    ok = soar(tmp_path, "audit", "verify")
    assert ok.returncode == 0 and "audit log intact (HMAC-keyed)" in ok.stdout
    rec = store.get(KIND, seq_id(3))
    assert rec is not None
    store.put(KIND, seq_id(3), {**rec.doc, "actor": "mallory"})
    bad = soar(tmp_path, "audit", "verify")
    assert bad.returncode == 3
    assert "TAMPERED: entry 3 modified" in bad.stdout
    store.close()
