"""The containment watch on real lab hosts (issue #20): drift detected by the next pass, repaired or escalated.

Each test applies a containment through a playbook run, undoes it behind soar's back the way an intruder
with root (or a reboot) would, then drives one watch pass directly (``watch_pass`` with the clock at the
containment's ``next_check``): no waiting on the wall clock, no timed assertion.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from soar.cli.runs_cmd import watch_lines
from soar.config import Settings
from soar.containment.ledger import for_run
from soar.containment.watch import claim, close_connections, watch_pass
from soar.dispatch import Task, configure, dispatcher_for
from soar.notify.incidents import thread_for_run
from soar.notify.outbox import listing
from soar.playbooks import dispatch, rollback
from soar.playbooks.runtime import Runtime
from soar.records.containment import KIND, Containment
from soar.review.data import watched
from soar.review.report import build_report, report_html
from tests.integration.hosts.lab import LabUser, can_connect, nft_ruleset, sh_in, wait_for
from tests.integration.hosts.test_persistence import boot, reboot
from tests.integration.hosts.test_runs import HOSTS_DB, LabRuns, lab_content, playbook, shadow
from tests.playbook_kit import alert
from tests.workers import running_worker

pytestmark = pytest.mark.lab

APP1 = "10.77.0.13"

ISOLATE = playbook(
    "isolate-watched",
    """\
  - id: isolate
    uses: hosts.isolate_host
    with: {host: "{{ alert.host.name }}", deadman_seconds: 60}
""",
)
RELOCK = """\
name: relock-on-drift
trigger:
  rules: [soar.containment_drifted]
  min_level: high
  where: {containment.decision: ask, containment.action: hosts.lock_account}
steps:
  - id: relock
    uses: hosts.lock_account
    with: {host: "{{ alert.host.name }}", user: "{{ alert.user.name }}"}
"""

LOCK = playbook(
    "lock-watched",
    """\
  - id: lock
    uses: hosts.lock_account
    with: {host: "{{ alert.host.name }}", user: "{{ alert.user.name }}"}
""",
)


def one_containment(rt: Runtime, run_id: str) -> Containment:
    [rec] = for_run(rt.store, run_id)
    return rec


def watch(settings: Settings, rt: Runtime, rec: Containment) -> Containment:
    """One watch pass with the clock at the containment's next check; the containment as the pass left it."""
    sent = watch_pass(settings, rt.store, dispatcher_for(settings, rt.store), now=rec.next_check + 0.001)
    assert rec.id in sent
    got = rt.store.get(KIND, rec.id)
    assert got is not None
    return Containment.from_doc(got.doc, rec.id)


def audits(rt: Runtime, containment_id: str) -> list[str]:
    return [r.doc["action"] for r in rt.store.find("audit", {"target": containment_id}, limit=100)]


def alerts_of(rt: Runtime, rule_id: str) -> list[dict[str, Any]]:
    return [r.doc for r in rt.store.find("alerts", {"rule.id": rule_id}, limit=100)]


def dispatch_alert(settings: Settings, rt: Runtime, alert_id: str) -> None:
    """Hand an alert to the playbook engine as the watch hands its own (through the dispatch port)."""
    dispatcher_for(settings, rt.store).send(Task.HANDLE_ALERT, [alert_id], queue=settings.response_queue)


def release(settings: Settings, rt: Runtime, run_id: str) -> dict[str, Any]:
    rollback.request_rollback(rt, run_id, actor="alice", reason="test over")
    dispatch.drive(rt, run_id)
    got = rt.store.get("runs", run_id)
    assert got is not None
    if got.doc["status"] != "rolled_back":  # say why, for the assertion that follows
        for step in got.doc["steps"].values():
            for inst in step.get("instances") or []:
                if inst.get("status") == "failed":
                    print("release failed:", inst.get("error"), (inst.get("result") or {}).get("verification"))
    return got.doc


@pytest.fixture
def runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LabRuns]:
    lab = LabRuns(tmp_path, monkeypatch)
    yield lab
    close_connections()
    lab.close()


CUT = "{ type filter hook input priority -10; policy drop; }"


@pytest.fixture
def app1_cut() -> Iterator[Callable[[bool], None]]:
    """Cut app1 off every path (the management one too) in a table of the test's own, and always restore it."""

    def cut(on: bool) -> None:
        if on:
            sh_in("app1", "nft", "add", "table", "inet", "labcut", check=True)
            sh_in("app1", "nft", "add", "chain", "inet", "labcut", "in", CUT, check=True)
        else:
            sh_in("app1", "nft", "delete", "table", "inet", "labcut")

    yield cut
    cut(False)


def test_a_flushed_isolation_is_detected_and_repaired_and_a_released_one_is_no_longer_watched(
    tmp_path: Path, lab_inventory_path: Path, runs: LabRuns
) -> None:
    settings = runs.settings(lab_content(tmp_path, lab_inventory_path, ISOLATE))
    run, rt = runs.run(settings, alert("watch-flush", host="app1"))
    assert run["status"] == "succeeded", run.get("error")
    rec = one_containment(rt, run["id"])
    assert (rec.state, rec.action, rec.host, rec.step) == ("in_force", "hosts.isolate_host", "app1", "isolate")
    assert rec.boot_id  # recorded from the responder's verify at apply time

    rec = watch(settings, rt, rec)
    assert (rec.checks, rec.last_outcome, rec.drifts, rec.repairs) == (1, "held", 0, 0)

    sh_in("app1", "nft", "flush", "ruleset", check=True)  # the intruder with root
    assert can_connect("peer", APP1, 22)
    rec = watch(settings, rt, rec)
    assert (rec.checks, rec.drifts, rec.repairs, rec.last_outcome) == (2, 1, 1, "repaired")
    drift = rec.history[-2]
    assert drift.outcome == "drifted" and drift.decision == "repair"
    assert drift.found == ["isolation rules missing (table or chains gone)", f"probe host peer connects to {APP1}:22"]
    assert "soar_isolate" in nft_ruleset("app1")
    assert not can_connect("peer", APP1, 22)  # isolated again
    assert {"containment.drifted", "containment.repaired"} <= set(audits(rt, rec.id))
    [drift_alert] = alerts_of(rt, "soar.containment_drifted")
    assert drift_alert["host"] == {"name": "app1"} and drift_alert["containment"]["run_id"] == run["id"]
    replies = [m for m in listing(rt.store) if m.kind == "reply" and "containment drifted" in str(m.blocks)]
    assert replies and all(m.important for m in replies)
    thread = thread_for_run(rt.store, run["id"])
    assert thread is not None  # the card's line for the step: what the watch found last
    assert thread.runs[run["id"]].steps["isolate"].summary == (
        "watch: repaired: re-applied hosts.isolate_host, verified (repair 1)"
    )

    run = release(settings, rt, run["id"])
    assert run["status"] == "rolled_back", run.get("error")
    rec = one_containment(rt, run["id"])
    assert rec.state == "released" and rec.released_by and run["id"] in rec.released_by
    assert watch_pass(settings, rt.store, dispatcher_for(settings, rt.store), now=rec.next_check + 3600) == []
    assert can_connect("peer", APP1, 22)
    thread = thread_for_run(rt.store, run["id"])
    assert thread is not None and thread.runs[run["id"]].steps["isolate"].summary.startswith("watch: released: by run ")

    # what people see: `soar runs show` and the report's "containment held" row
    shown = "\n".join(watch_lines(watched(rt.store, run["id"])))
    assert "- isolate (hosts.isolate_host app1): released" in shown
    assert "2 checks (last " in shown and "1 drifts, 1 repairs" in shown
    assert "drifted -> repair: isolation rules missing (table or chains gone)" in shown
    report = build_report(rt.store, settings, run["id"])
    [held] = [s for s in report["segments"] if s["to"] == "released"]
    assert (held["checks"], held["drifts"], held["repairs"], held["in_force"]) == (2, 1, 1, 0)
    assert held["detail"] == "2 checks, 1 drifts, 1 repairs" and held["seconds"] is not None
    assert "containment held (2 checks, 1 drifts, 1 repairs)" in report_html(report)
    assert {"containment.drifted", "containment.repaired", "containment.released"} <= {
        e["action"] for e in report["audit"]
    }


def test_an_unlocked_account_is_detected_and_by_policy_left_to_a_person(
    tmp_path: Path, lab_inventory_path: Path, lab_user: LabUser, runs: LabRuns
) -> None:
    root = lab_content(tmp_path, lab_inventory_path, LOCK)
    (root / "policy.yml").write_text("containment_watch: {on_drift: ask}\n")
    settings = runs.settings(root)
    run, rt = runs.run(settings, alert("watch-unlock", host="app1", user=lab_user.name))
    assert run["status"] == "succeeded", run.get("error")
    rec = one_containment(rt, run["id"])
    assert (rec.action, rec.params["user"]) == ("hosts.lock_account", lab_user.name)

    subprocess.run(["usermod", "-U", lab_user.name], check=True)  # the intruder with root
    rec = watch(settings, rt, rec)
    assert (rec.checks, rec.drifts, rec.repairs, rec.last_outcome) == (1, 1, 0, "drifted")
    assert rec.history[-1].decision == "ask"
    assert "account unlocked (password usable)" in rec.history[-1].found
    assert not shadow(lab_user.name).split(":")[1].startswith("!")  # nothing re-applied: a person decides
    [raised] = alerts_of(rt, "soar.containment_drifted")
    assert raised["user"] == {"name": lab_user.name} and raised["containment"]["step"] == "lock"

    rec = watch(settings, rt, rec)  # still drifted: recorded, not told again
    assert (rec.checks, rec.drifts, rec.history[-1].decision) == (2, 2, "none")
    assert len(alerts_of(rt, "soar.containment_drifted")) == 1

    # the person's answer: a playbook triggered by the drift alert locks it again; its verified step is the repair
    (root / "playbooks" / "relock.yml").write_text(RELOCK)
    dispatch.forget_runtimes()  # the new playbook is read
    import soar.tasks.playbooks  # noqa: F401  (this process runs playbooks for new alerts, as the API's does)

    rt = dispatch.runtime_for(settings)
    runs.runtimes.append(rt)
    raised["id"] = f"{raised['id']}-again"  # the same drift raised anew: the playbook starts for it
    rt.store.create("alerts", raised["id"], raised)
    dispatch_alert(settings, rt, raised["id"])
    assert shadow(lab_user.name).split(":")[1].startswith("!")  # locked again
    rec = one_containment(rt, run["id"])
    assert (rec.repairs, rec.last_outcome) == (1, "repaired")
    assert "re-applied by run" in rec.history[-1].found[0]

    run = release(settings, rt, run["id"])
    assert run["status"] == "rolled_back", run.get("error")
    assert one_containment(rt, run["id"]).state == "released"


def test_a_reboot_that_brought_the_isolation_back_with_its_dead_man_timer_is_repaired(
    tmp_path: Path, lab_inventory_path: Path, runs: LabRuns
) -> None:
    settings = runs.settings(lab_content(tmp_path, lab_inventory_path, ISOLATE))
    run, rt = runs.run(settings, alert("watch-reboot", host="app1"))
    assert run["status"] == "succeeded", run.get("error")
    rec = one_containment(rt, run["id"])

    reboot("app1")
    boot("app1")  # the isolation is back, with a fresh dead-man timer nobody has confirmed
    rec = watch(settings, rt, rec)
    drift, repair = rec.history[-2:]
    assert drift.outcome == "drifted" and any("dead-man timer armed" in line for line in drift.found), drift
    assert repair.outcome == "repaired" and rec.repairs == 1
    assert not can_connect("peer", APP1, 22)
    rec = watch(settings, rt, rec)  # confirmed again: the timer is disarmed
    assert rec.last_outcome == "held" and rec.drifts == 1

    run = release(settings, rt, run["id"])
    assert run["status"] == "rolled_back", run.get("error")
    assert can_connect("peer", APP1, 22)


def test_a_host_silent_on_the_management_path_is_unreachable_not_drifted_and_escalated_after_n(
    tmp_path: Path, lab_inventory_path: Path, runs: LabRuns, app1_cut: Callable[[bool], None]
) -> None:
    root = lab_content(tmp_path, lab_inventory_path, ISOLATE)
    (root / "policy.yml").write_text("containment_watch: {escalate_unreachable_after: 2}\n")
    settings = runs.settings(root, SOAR_SSH_CONNECT_TIMEOUT="2")
    run, rt = runs.run(settings, alert("watch-silent", host="app1"))
    assert run["status"] == "succeeded", run.get("error")
    rec = one_containment(rt, run["id"])

    app1_cut(True)
    rec = watch(settings, rt, rec)
    assert (rec.last_outcome, rec.unreachable_in_a_row, rec.drifts, rec.escalated) == ("unreachable", 1, 0, False)
    assert alerts_of(rt, "soar.containment_escalated") == []
    rec = watch(settings, rt, rec)
    assert (rec.last_outcome, rec.unreachable_in_a_row, rec.drifts, rec.repairs) == ("unreachable", 2, 0, 0)
    assert rec.escalated
    [raised] = alerts_of(rt, "soar.containment_escalated")
    assert "2 looks in a row without an answer" in raised["containment"]["found"][0]
    assert audits(rt, rec.id).count("containment.unreachable") == 2

    app1_cut(False)
    rec = watch(settings, rt, rec)
    assert (rec.last_outcome, rec.unreachable_in_a_row, rec.drifts) == ("held", 0, 0)

    run = release(settings, rt, run["id"])
    assert run["status"] == "rolled_back", run.get("error")


BLOCK = playbook(
    "block-watched",
    """\
  - id: block
    uses: hosts.block_ip
    with: {host: "{{ alert.host.name }}", ip: "{{ alert.source.ip }}"}
""",
)


def test_a_deleted_block_is_repaired_and_unblocking_it_ends_its_watch(
    tmp_path: Path, lab_inventory_path: Path, runs: LabRuns
) -> None:
    settings = runs.settings(lab_content(tmp_path, lab_inventory_path, BLOCK))
    run, rt = runs.run(settings, alert("watch-block", host="app1", ip="10.77.0.4"))
    assert run["status"] == "succeeded", run.get("error")
    rec = one_containment(rt, run["id"])
    assert (rec.action, rec.params["ip"]) == ("hosts.block_ip", "10.77.0.4")

    sh_in("app1", "nft", "delete", "table", "inet", "soar_block", check=True)
    assert can_connect("peer", APP1, 22)
    rec = watch(settings, rt, rec)
    drift = rec.history[-2]
    assert drift.found == ["block of 10.77.0.4 missing", f"probe host peer connects to {APP1}:22"], drift
    assert (rec.drifts, rec.repairs, rec.last_outcome) == (1, 1, "repaired")
    assert not can_connect("peer", APP1, 22)

    run = release(settings, rt, run["id"])
    assert run["status"] == "rolled_back", run.get("error")
    assert one_containment(rt, run["id"]).state == "released"
    assert can_connect("peer", APP1, 22)


def test_a_real_worker_looks_and_a_lost_watchers_lease_runs_out(
    tmp_path: Path, lab_inventory_path: Path, runs: LabRuns
) -> None:
    root = lab_content(tmp_path, lab_inventory_path, ISOLATE)
    settings = runs.settings(root)
    run, rt = runs.run(settings, alert("watch-worker", host="app1"))
    assert run["status"] == "succeeded", run.get("error")
    rec = one_containment(rt, run["id"])
    # a watcher claimed it and was killed mid-look: its lease holds the containment until it runs out
    assert claim(rt.store, rec.id, "lost-worker", 30, rec.next_check)

    env = {k: v for k, v in os.environ.items() if k.startswith("SOAR_")} | {"SOAR_CELERY_EAGER": "false"}
    sending = settings.model_copy(update={"celery_eager": False})
    configure(sending)  # this process sends to the worker's broker now
    try:
        with running_worker(HOSTS_DB, env, concurrency=1, log_path=tmp_path / "worker.log"):
            dispatcher = dispatcher_for(sending)
            assert watch_pass(sending, rt.store, dispatcher, now=rec.next_check + 1) == []
            assert watch_pass(sending, rt.store, dispatcher, now=rec.next_check + 31) == [rec.id]

            def looked() -> Containment:
                got = rt.store.get(KIND, rec.id)
                assert got is not None
                return Containment.from_doc(got.doc, rec.id)

            assert wait_for(lambda: looked().checks == 1, 60), (tmp_path / "worker.log").read_text()[-3000:]
            after = looked()
            assert (after.last_outcome, after.lease) == ("held", None)  # the worker's look, its lease given back
    finally:
        configure(settings)

    run = release(settings, rt, run["id"])
    assert run["status"] == "rolled_back", run.get("error")
