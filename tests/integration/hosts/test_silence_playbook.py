"""The shipped playbook for a host gone silent (soar's silence rules): it checks the host's logging over SSH on
the lab and says what it found in the alert's thread; a host that does not answer is said to, not guessed at."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from soar.hosts.procedures import logging_findings
from soar.notify.outbox import listing
from tests.integration.hosts.lab import sh_in
from tests.integration.hosts.test_runs import LabRuns, instance, lab_content
from tests.playbook_kit import alert

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[3]
PLAYBOOK = (REPO / "playbooks" / "host-went-silent.yml").read_text(encoding="utf-8")
AUTH_SILENT = "2fc3d085-2fc3-4660-a034-022c59fac76e"


@pytest.fixture
def runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LabRuns]:
    lab = LabRuns(tmp_path, monkeypatch)
    yield lab
    lab.close()


def silence_alert(host: str) -> dict[str, object]:
    return alert(
        f"silent-{host}",
        rule_id=AUTH_SILENT,
        host=host,
        group={"key": {"host.name": host}, "type": "silence", "window_start": "2026-12-06T19:00:00.000Z"},
    )


def _df(*flags: str) -> tuple[str, str]:
    out = subprocess.run(["df", "-P", *flags, "/var/log"], capture_output=True, text=True, check=True).stdout
    fields = out.splitlines()[1].split()
    return fields[3], fields[4].rstrip("%")


def test_the_silent_host_is_checked_over_ssh_and_the_finding_told_in_the_thread(
    tmp_path: Path, lab_inventory_path: Path, runs: LabRuns
) -> None:
    settings = runs.settings(lab_content(tmp_path, lab_inventory_path, PLAYBOOK))
    run, rt = runs.run(settings, silence_alert("db1"))
    assert run["status"] == "succeeded", run.get("error")
    output = instance(run, "check")["result"]["output"]
    # the same facts as seen from inside the host (its namespace shares this machine's processes and disks)
    for service, process in (("auditd", "auditd"), ("rsyslog", "rsyslogd")):
        running = sh_in("db1", "pgrep", "-x", process).returncode == 0
        assert (output[service] in ("active", "running")) == running, (service, output[service])
    used = int(output["log_disk_used_pct"])
    assert abs(used - int(_df()[1])) <= 1 and output["log_mount"]
    assert output["findings"] == logging_findings({k: v for k, v in output.items() if isinstance(v, str)})
    replies = [m.text for m in listing(rt.store) if "went silent" in m.text]
    assert len(replies) == 1 and "db1 went silent" in replies[0] and output["summary"] in replies[0], replies


def test_a_host_that_does_not_answer_is_reported_as_unchecked(
    tmp_path: Path, lab_inventory_path: Path, runs: LabRuns
) -> None:
    def unreachable(data: dict[str, object]) -> None:
        hosts = data["hosts"]
        assert isinstance(hosts, dict)
        hosts["gone1"] = {"address": "10.77.0.99", "labels": {"env": "lab"}}  # nothing listens there

    settings = runs.settings(lab_content(tmp_path, lab_inventory_path, PLAYBOOK, unreachable))
    run, rt = runs.run(settings, silence_alert("gone1"))
    assert run["steps"]["check"]["status"] == "failed" and run["steps"]["notify"]["status"] == "succeeded"
    replies = [m.text for m in listing(rt.store) if "went silent" in m.text]
    assert len(replies) == 1 and "could not be checked over SSH (step failed)" in replies[0], replies
