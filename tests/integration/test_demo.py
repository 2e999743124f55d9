"""`soar demo` on the embedded default: the whole loop, no servers, the production code path."""

from __future__ import annotations

import json
import re
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

from soar.demo import CYCLE_SECONDS, SCENARIO
from tests.unit.test_cli import env_without_soar, run_soar

EXPECTED = json.loads((SCENARIO.parent / "intrusion.expected.json").read_text())


def test_demo_runs_the_whole_loop(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    out = run_soar("demo", "--workdir", str(workdir), "--quiet")
    assert out.returncode == 0, out.stderr[-2000:]
    text = out.stdout
    assert "Traceback" not in out.stderr
    assert stat.S_IMODE(workdir.stat().st_mode) == 0o700  # its store and reports are records: owner-only

    # detection: every rule the scenario's author expected fired, through the same Detector as production
    alerts_block = text.split("Alerts by rule", 1)[1].split("Playbook runs", 1)[0]
    for alert in EXPECTED["alerts"]:
        assert alert["title"] in alerts_block, f"{alert['title']} did not fire in the demo"

    # incidents: the alerts grouped by host (else user), each incident's report written beside the runs'
    row = r"^\s+(\d+) alerts\s+\S+\s+(host\.name|user\.name|source\.ip|id)=(\S+)\s+([0-9a-f]{16})$"
    incidents = re.findall(row, text, re.M)
    assert incidents and sum(int(n) for n, *_ in incidents) == sum(
        int(n) for n in re.findall(r"^\s+(\d+)  \S", alerts_block, re.M)
    )  # every alert in exactly one incident
    assert any(key == "web-01" for _, field, key, _ in incidents if field == "host.name")
    assert len(list((workdir / "reports").glob("incident-*.html"))) == len(incidents)

    # response: the reverse shell on web-01 needed approval in prod, was approved, isolation planned per host
    # a dry run planned: it never reads "succeeded"
    assert re.search(r"reverse-shell\s+web-01\s+planned \(dry run\)", text)
    assert re.search(r"hosts\.isolate_host\s+web-01\s+planned \(dry run\)\s+policy: approve", text)
    runs_block = text.split("Playbook runs", 1)[1].split("Approvals given", 1)[0]
    assert "succeeded" not in runs_block
    assert "web-01: sudo -n -- sh -s -- apply --mgmt" in text
    assert "isolate: oncall-alice approved (approved)" in text
    # the policy refuses containment of the protected bastion, and says so
    assert "host bastion-01 is protected" in text

    # nothing was touched: every attempt of every run was a dry run
    db = sqlite3.connect(workdir / "state" / "state.sqlite3")
    runs = [json.loads(doc) for (doc,) in db.execute("SELECT doc FROM docs WHERE kind = 'runs'")]
    attempts = [
        a
        for run in runs
        for step in run["steps"].values()
        for inst in step.get("instances", [])
        for a in inst.get("attempts", [])
    ]
    assert runs and attempts and all(a.get("dry_run") for a in attempts)
    assert all(not run.get("contained_targets") for run in runs)

    # review: MTTD measured from the alerts (simulated clock: at most a cycle plus the ingest delay), report written
    mttd = re.search(r"MTTD \(first event → alert, median\): (\d+) s", text)
    assert mttd and 0 < int(mttd.group(1)) <= 2 * CYCLE_SECONDS
    report = Path(re.search(r"Post-incident report: (\S+)", text).group(1))  # type: ignore[union-attr]
    html = report.read_text()
    assert "Containment" in html or "contain" in html.lower()
    assert "<script" not in html.lower() or "&lt;script" in html.lower()
    digest = re.search(r"(\d+) alert cards, (\d+) thread replies", text)
    assert digest and int(digest.group(1)) > 0 and int(digest.group(2)) > 0

    # a second run replaces the demo's own folder, and never a folder it did not make; a workdir
    # relative to the current directory (not to the content root) works the same
    again = subprocess.run(
        [sys.executable, "-m", "soar", "demo", "--workdir", "demo", "--quiet"],
        capture_output=True,
        text=True,
        env=env_without_soar(),
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert again.returncode == 0, again.stderr[-2000:]
    assert re.search(r"hosts\.isolate_host\s+web-01\s+planned \(dry run\)", again.stdout), again.stdout[-3000:]
    assert not re.search(r"^\s+hosts\.\S+\s+\S+\s+failed", again.stdout, re.M), again.stdout[-3000:]
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("x")
    refused = run_soar("demo", "--workdir", str(foreign), "--quiet")
    assert refused.returncode == 1
    assert "was not made by 'soar demo'" in refused.stderr
    assert (foreign / "keep.txt").exists()


def test_demo_on_the_lab_contains_for_real_and_releases(tmp_path: Path) -> None:
    """`soar demo --lab`: the same loop, host actions executed on the lab hosts, verified, then released."""
    from tests.integration.hosts.conftest import _lab_up
    from tests.integration.hosts.lab import host_lock, nft_ruleset
    from tests.services import require

    require("SSH lab", _lab_up)
    with host_lock("web1"):
        out = run_soar("demo", "--lab", "--workdir", str(tmp_path / "lab-demo"), "--quiet")
        assert out.returncode == 0, out.stderr[-2000:]
        text = out.stdout
        assert "LAB: host actions executed" in text
        assert re.search(r"hosts\.isolate_host\s+web-01\s+succeeded\s+policy: approve", text)
        assert "web1: sudo -n -- sh -s -- apply" in text  # the alias resolved to the lab host
        contained = text.split("Containment executed and verified:", 1)[1].split("\n\n", 1)[0]
        assert "hosts.isolate_host web-01" in contained
        mttc = re.search(r"MTTC \(alert → verified containment, median\): (\d+) s", text)
        assert mttc and int(mttc.group(1)) > 0  # measured from the runs, includes the on-call's approval
        # the demo released what it contained: nothing of soar's isolation is left on web1
        assert "soar_isolate" not in nft_ruleset("web1")
        db = sqlite3.connect(tmp_path / "lab-demo" / "state" / "state.sqlite3")
        runs = [json.loads(doc) for (doc,) in db.execute("SELECT doc FROM docs WHERE kind = 'runs'")]
        isolating = [r for r in runs if r.get("contained_targets")]
        assert isolating and all(r["status"] == "rolled_back" for r in isolating)
