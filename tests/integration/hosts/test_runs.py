"""Host containment as playbook runs record it on the lab: a failure, a failed verification, refusals, evidence."""

from __future__ import annotations

import hashlib
import subprocess
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from soar.config import Settings, get_settings
from soar.hosts.runner import HostRunner
from soar.notify.outbox import listing
from soar.playbooks import dispatch, engine, rollback
from soar.playbooks.records import RUNS
from soar.playbooks.runtime import Runtime
from tests.integration.hosts.lab import (
    LAB,
    LabUser,
    can_connect,
    host_lock,
    nft_ruleset,
    state_left,
    timers_in,
    wait_for,
)
from tests.playbook_kit import alert
from tests.workers import redis_url_for_db

pytestmark = pytest.mark.lab

HOSTS_DB = 9  # the Redis db of the hosts tests


def playbook(name: str, steps: str) -> str:
    """A playbook triggered by the test alerts' rule, with ``steps`` (a YAML list)."""
    return f"name: {name}\ntrigger: {{rules: [rule-contain], min_level: medium}}\nsteps:\n{textwrap.dedent(steps)}"


PLAYBOOK = playbook(
    "isolate-on-alert",
    """\
  - id: isolate
    uses: hosts.isolate_host
    with: {host: "{{ alert.host.name }}", deadman_seconds: 8}
""",
)


def lab_content(
    tmp_path: Path, lab_inventory_path: Path, playbook: str, edit: Callable[[dict[str, Any]], None] | None = None
) -> Path:
    """A content root with one playbook and a copy of the lab inventory (``edit`` changes the copy)."""
    root = tmp_path / "content"
    (root / "playbooks").mkdir(parents=True)
    (root / "playbooks" / "playbook.yml").write_text(playbook)
    data = yaml.safe_load(lab_inventory_path.read_text())
    data["defaults"]["key"] = str(LAB / "id_ed25519")
    if edit is not None:
        edit(data)
    (root / "inventory.yml").write_text(yaml.safe_dump(data))
    return root


def instance(run: dict[str, Any], step: str) -> dict[str, Any]:
    [inst] = run["steps"][step]["instances"]
    return dict(inst)


class LabRuns:
    """Playbook runs on the lab in this process, with settings from SOAR_* variables (the notifier's task
    reads them, so its thread and replies go to the same store); every runtime's connections closed after."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.tmp_path = tmp_path
        self.monkeypatch = monkeypatch
        self.runtimes: list[Runtime] = []
        self.closed: list[HostRunner] = []  # the runs' runners, closed when their run was let go
        close = HostRunner.close

        def closing(runner: HostRunner) -> None:
            self.closed.append(runner)
            close(runner)

        monkeypatch.setattr(HostRunner, "close", closing)

    def settings(self, root: Path, **env: str) -> Settings:
        values = {
            "SOAR_CONTENT_ROOT": str(root),
            "SOAR_STATE_DIR": str(self.tmp_path / "state"),
            "SOAR_SSH_KNOWN_HOSTS": str(LAB / "known_hosts"),
            "SOAR_SSH_CONNECT_TIMEOUT": "5",
            "SOAR_SSH_COMMAND_TIMEOUT": "20",
            "SOAR_CELERY_EAGER": "true",
            "SOAR_REDIS_URL": redis_url_for_db(HOSTS_DB),
            **env,
        }
        for key, value in values.items():
            self.monkeypatch.setenv(key, value)
        get_settings.cache_clear()
        settings = get_settings()
        assert settings.inventory_path == root / "inventory.yml"
        return settings

    def run(self, settings: Settings, doc: dict[str, Any]) -> tuple[dict[str, Any], Runtime]:
        """Start the content's playbook for ``doc`` and drive it to its end."""
        rt = dispatch.runtime_for(settings)
        self.runtimes.append(rt)
        rt.store.create(engine.ALERTS, doc["id"], doc)
        started = engine.handle_alert(rt, doc["id"])
        assert len(started) == 1
        dispatch.drive(rt, started[0])
        record = rt.store.get(RUNS, started[0])
        assert record is not None
        return record.doc, rt

    def connects(self) -> int:
        """SSH logins made by the runs' runners (0 when no action got as far as creating one)."""
        return sum(runner.pool.connects for runner in self.closed)

    def close(self) -> None:
        dispatch.forget_runtimes()
        self.monkeypatch.undo()
        get_settings.cache_clear()


@pytest.fixture
def lab_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LabRuns]:
    runs = LabRuns(tmp_path, monkeypatch)
    yield runs
    runs.close()


def test_ssh_dropped_mid_apply_fails_the_run_and_the_host_restores_itself(
    tmp_path: Path, lab_inventory_path: Path, lab_runs: LabRuns
) -> None:
    # An inventory mistake: app1's real management path (the bastion, 10.77.0.2) is missing, so the rules
    # cut soar's own connection in the middle of `apply`.
    def without_the_bastion(data: dict[str, Any]) -> None:
        data["defaults"]["management"] = ["10.77.0.3"]
        data["hosts"]["bastion"]["aliases"] = []

    root = lab_content(tmp_path, lab_inventory_path, PLAYBOOK, without_the_bastion)
    settings = lab_runs.settings(root, SOAR_SSH_COMMAND_TIMEOUT="4")
    before = nft_ruleset("app1")
    run, _ = lab_runs.run(settings, alert(host="app1"))
    assert run["status"] == "failed", run.get("error")
    step = instance(run, "isolate")
    assert step["status"] == "failed"
    assert "dead-man timer restores the host within 8 s" in step["error"]
    assert step["result"]["verified"] is False
    assert step["result"]["commands"][0]["note"] == "isolate apply"
    assert run["contained_targets"] == []  # a failed containment is not counted as one
    # nobody releases it: the host's own timer does
    assert wait_for(lambda: nft_ruleset("app1") == before, 15), nft_ruleset("app1")
    assert can_connect("peer", "10.77.0.13", 22)
    assert wait_for(lambda: timers_in("app1") == [], 5)
    assert not state_left("app1")


def shadow(user: str) -> str:
    return subprocess.run(["getent", "shadow", user], capture_output=True, text=True, check=True).stdout


FAILS_VERIFICATION = playbook(
    "lock-and-isolate",
    """\
  - id: lock
    uses: hosts.lock_account
    with: {host: "{{ alert.host.name }}", user: "{{ alert.user.name }}"}
  - id: isolate
    uses: hosts.isolate_host
    with: {host: "{{ alert.host.name }}", deadman_seconds: 120}
    on_failure: rollback
""",
)


def test_a_failed_verification_rolls_the_run_back_and_tells_the_on_call(
    tmp_path: Path, lab_inventory_path: Path, lab_user: LabUser, lab_runs: LabRuns
) -> None:
    # An inventory mistake: the attacker-side peer is listed as a management address, so the isolation
    # keeps it open. The rules are in place; only the peer's probe shows the host is not cut off.
    def peer_as_management(data: dict[str, Any]) -> None:
        data["defaults"]["management"].append("10.77.0.4")

    settings = lab_runs.settings(lab_content(tmp_path, lab_inventory_path, FAILS_VERIFICATION, peer_as_management))
    ruleset, account = nft_ruleset("app1"), shadow(lab_user.name)
    run, rt = lab_runs.run(settings, alert("verify-fails", host="app1", user=lab_user.name))

    assert instance(run, "lock")["result"]["verified"] is True
    isolate = instance(run, "isolate")
    assert isolate["status"] == "failed"
    assert isolate["result"]["verified"] is False
    assert isolate["result"]["verification"]["peer_probe"] == {
        "from": "peer", "to": "10.77.0.13:22", "reachable": "yes", "expected": "no"
    }  # fmt: skip
    assert run["status"] == "rolled_back", run.get("error")
    assert "step isolate failed: isolate: failed: host app1: isolation not verified" in run["rollback"]["reason"]
    # the unproven isolation is undone with the rest, newest first, each revert verified itself
    assert [(e["id"], e["uses"]) for e in run["rollback"]["steps"]] == [
        ("revert_isolate", "hosts.release_host"),
        ("revert_lock", "hosts.unlock_account"),
    ]
    for step in ("revert_isolate", "revert_lock"):
        assert instance(run, step)["status"] == "succeeded" and instance(run, step)["result"]["verified"] is True
    # at once, not when the 120 s dead-man timer would have fired
    assert nft_ruleset("app1") == ruleset and timers_in("app1") == [] and not state_left("app1")
    assert shadow(lab_user.name) == account

    # the on-call hears of it in the incident's thread: the failed verification, the reason, the rollback
    replies = [m.text + " " + str(m.blocks) for m in listing(rt.store) if m.kind == "reply"]
    assert any(":warning: *verification* step `isolate` — NOT verified" in r for r in replies), replies
    assert any("verification* step `lock` — verified" in r for r in replies), replies
    assert any("isolation not verified" in r for r in replies), replies
    assert any("rollback" in r for r in replies), replies


ACT_ON_ALERT = playbook(
    "contain-from-alert",
    """\
  - id: lock
    uses: hosts.lock_account
    with: {host: "{{ alert.host.name }}", user: "{{ alert.user.name }}"}
    retry: {count: 2, backoff: 0.1}
    on_failure: continue
  - id: block
    uses: hosts.block_ip
    with: {host: "{{ alert.host.name }}", ip: "{{ alert.source.ip }}"}
    retry: {count: 2, backoff: 0.1}
    on_failure: continue
  - id: kill
    uses: hosts.kill_process
    with: {host: "{{ alert.host.name }}", pid: "{{ alert.process.pid }}", executable: /usr/bin/sleep}
    on_failure: continue
""",
)


@pytest.mark.parametrize(
    ("fields", "reasons"),
    [
        (
            {"host": "db1", "user": "$(reboot)", "ip": "10.77.0.4; reboot", "pid": 1},
            {
                "lock": "refused: parameter user: '$(reboot)' is not a valid user name",
                # the policy judges addresses from alert data first (overlap, width) and refuses what is none
                "block": "ip '10.77.0.4; reboot' is not an IP address, CIDR or range; refused",
                "kill": "refused: parameter pid: 1 is not a process id that may be killed",
            },
        ),
        (
            {"host": "db1", "user": "root", "ip": "10.77.0.0/24", "pid": "12;reboot"},
            {
                "lock": "refused by policy: account root is protected",  # the policy refuses first
                "block": "refused: parameter ip: 10.77.0.0/24 covers the management/log-shipping address",
                "kill": "parameter pid: Input should be a valid integer",
            },
        ),
        (
            {"host": "db9.lab.internal", "user": "alice", "ip": "10.77.0.4", "pid": 4242},
            dict.fromkeys(("lock", "block", "kill"), "refused: parameter host: 'db9.lab.internal' matches no host"),
        ),
        (
            {"host": "shared.lab.internal", "user": "alice", "ip": "10.77.0.4", "pid": 4242},
            dict.fromkeys(("lock", "block", "kill"), "matches 2 hosts (app1, db1); refusing"),
        ),
    ],
)
def test_bad_alert_values_are_refused_before_any_connection_with_the_reason_on_the_run(
    tmp_path: Path, lab_inventory_path: Path, lab_runs: LabRuns, fields: dict[str, Any], reasons: dict[str, str]
) -> None:
    def one_alias_for_two_hosts(data: dict[str, Any]) -> None:
        for name in ("app1", "db1"):
            data["hosts"][name]["aliases"].append("shared.lab.internal")

    settings = lab_runs.settings(lab_content(tmp_path, lab_inventory_path, ACT_ON_ALERT, one_alias_for_two_hosts))
    rulesets = {h: nft_ruleset(h) for h in ("app1", "db1")}
    doc = alert(host=fields["host"], user=fields["user"], ip=fields["ip"], process={"pid": fields["pid"]})
    run, _ = lab_runs.run(settings, doc)
    assert run["status"] == "failed"
    for step, reason in reasons.items():
        rec = run["steps"][step]
        assert rec["status"] == "failed"
        error = rec["instances"][0]["error"] if rec["instances"] else rec["error"]
        assert reason in error, (step, error)
        for inst in rec["instances"]:
            assert len(inst["attempts"]) <= 1  # a refusal is final: never retried
            if inst["attempts"]:  # refused by the action (not by the policy before it)
                assert inst["result"]["output"]["refused"] in error and inst["result"]["commands"] == []
    assert lab_runs.connects() == 0, "something connected to a host"
    assert {h: nft_ruleset(h) for h in ("app1", "db1")} == rulesets


EVIDENCE = playbook(
    "triage-and-end-sessions",
    """\
  - id: triage
    uses: hosts.collect_triage
    with: {host: "{{ alert.host.name }}", hash_files: [/etc/hostname]}
  - id: sessions
    uses: hosts.kill_sessions
    with: {host: "{{ alert.host.name }}", user: "{{ alert.user.name }}"}
""",
)


def test_triage_evidence_is_attached_to_the_run_and_the_run_reuses_one_connection(
    tmp_path: Path, lab_inventory_path: Path, lab_runs: LabRuns, lab_user: LabUser
) -> None:
    settings = lab_runs.settings(lab_content(tmp_path, lab_inventory_path, EVIDENCE))
    run, _ = lab_runs.run(settings, alert("evidence", host="db1.lab.internal", user=lab_user.name))
    assert run["status"] == "succeeded", run.get("error")
    [evidence] = instance(run, "triage")["result"]["evidence"]
    data = Path(evidence["path"]).read_bytes()
    assert hashlib.sha256(data).hexdigest() == evidence["sha256"] and evidence["size"] == len(data)
    assert Path(evidence["path"]).parent == settings.state_dir / "evidence" / run["id"]
    assert hashlib.sha256(Path("/etc/hostname").read_bytes()).hexdigest() + "  /etc/hostname" in data.decode()
    assert instance(run, "sessions")["result"]["verified"] is True
    assert lab_runs.connects() == 2  # the bastion and db1, once each for both steps of the run


ISOLATE_EACH = playbook(
    "isolate-each",
    """\
  - id: isolate
    uses: hosts.isolate_host
    for_each: "{{ alert.related.hosts }}"
    with: {host: "{{ item }}", deadman_seconds: 120}
    max_parallel: 3
""",
)


def test_a_for_each_isolates_its_hosts_at_once_and_the_rollback_releases_them(
    tmp_path: Path, lab_inventory_path: Path, lab_runs: LabRuns
) -> None:
    hosts = {"web1": "10.77.0.11", "db1": "10.77.0.12", "app1": "10.77.0.13"}
    with host_lock("web1"):  # app1 and db1 are held by the module's fixture
        before = {h: nft_ruleset(h) for h in hosts}
        settings = lab_runs.settings(lab_content(tmp_path, lab_inventory_path, ISOLATE_EACH))
        run, rt = lab_runs.run(settings, alert("isolate-each", host="web1", related={"hosts": list(hosts)}))
        try:
            assert run["status"] == "succeeded", run.get("error")
            insts = run["steps"]["isolate"]["instances"]
            assert [i["item"] for i in insts] == list(hosts)
            assert all(i["status"] == "succeeded" and i["result"]["verified"] is True for i in insts)
            for host, address in hosts.items():
                assert not can_connect("peer", address, 22), f"the peer still reaches {host}"
            assert run["contained_targets"] == ["host:app1", "host:db1", "host:web1"]
            # the three attempts overlapped: each began before any of them had finished
            attempts = [i["attempts"][0] for i in insts]
            assert max(a["started_at"] for a in attempts) < min(a["finished_at"] for a in attempts), attempts
        finally:
            rollback.request_rollback(rt, run["id"], actor="test", reason="release the lab")
            dispatch.drive(rt, run["id"])
        record = rt.store.get(RUNS, run["id"])
        assert record is not None
        done = record.doc
        assert done["status"] == "rolled_back", done.get("error")
        reverts = [done["steps"][e["id"]]["instances"][0] for e in done["rollback"]["steps"]]
        assert [r["params"]["host"] for r in reverts] == ["app1", "db1", "web1"]  # newest first
        assert all(r["status"] == "succeeded" and r["result"]["verified"] is True for r in reverts)
        for host, address in hosts.items():
            assert nft_ruleset(host) == before[host] and timers_in(host) == [] and not state_left(host)
            assert can_connect("peer", address, 22)
