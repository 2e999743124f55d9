"""``soar playbooks validate|plan|run`` and ``soar runs list|show|approve|deny`` as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.conftest import REPO_ROOT, env_without_soar
from tests.playbook_kit import CLI_TOKENS, Content, alert, content_env
from tests.playbook_kit.testkit import calls

PLAYBOOK = """\
name: contain
trigger: {rules: [rule-contain]}
steps:
  - id: contain
    uses: testkit.contain
    with: {host: "{{ alert.host.name }}"}
  - id: note
    uses: testkit.note
    with: {text: "contained {{ alert.host.name }}"}
"""


def soar(
    content: Content, *args: str, who: str | None = "rita", token: str | None = None
) -> subprocess.CompletedProcess[str]:
    """The command as principal ``who`` (its token in SOAR_TOKEN), or with ``token``; None for neither."""
    env = {**env_without_soar(), **content_env(content)}
    if token or who is not None:
        env["SOAR_TOKEN"] = token or CLI_TOKENS[str(who)]
    return subprocess.run(
        [sys.executable, "-m", "soar", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _alert_file(tmp_path: Path, **kw: Any) -> Path:
    path = tmp_path / "alert.json"
    path.write_text(json.dumps(alert(**kw)), encoding="utf-8")
    return path


def test_validate_reports_every_error_with_file_and_line(content: Content) -> None:
    content.playbook("contain", PLAYBOOK)
    ok = soar(content, "playbooks", "validate")
    assert ok.returncode == 0 and "1 playbook(s) valid, 0 error(s)" in ok.stdout
    bad = content.playbook(
        "bad", PLAYBOOK.replace("name: contain", "name: bad").replace("testkit.note", "testkit.nope")
    )
    broken = content.playbook(
        "broken",
        "name: broken\ntrigger: {rules: [r]}\nsteps:\n  - id: a\n    uses: core.log\n    retry: {count: many}\n",
    )
    out = soar(content, "playbooks", "validate")
    assert out.returncode == 1
    lines = [line for line in out.stderr.splitlines() if line]
    assert f"error: {bad}:8: step note: unknown action 'testkit.nope'" in lines[0]
    assert lines[1].startswith(f"error: {broken}:6: steps.0.retry.count: Input should be a valid integer")
    assert "Traceback" not in out.stderr
    # a broken playbook asked for by name says what is wrong with it, in one line
    run = soar(content, "playbooks", "plan", "broken", "--alert", str(_alert_file(content.root)))
    assert run.returncode == 1 and run.stderr.startswith(f"error: {broken}:6:") and "Traceback" not in run.stderr


def test_plan_refuses_bad_alert_input_in_one_line(content: Content, tmp_path: Path) -> None:
    content.playbook("contain", PLAYBOOK)
    broken = tmp_path / "broken.json"
    broken.write_text('{"id": "x",\n  "rule": }', encoding="utf-8")
    out = soar(content, "playbooks", "plan", "contain", "--alert", str(broken))
    assert out.returncode == 1 and out.stderr.startswith(f"error: {broken}:2:") and "not valid JSON" in out.stderr
    missing = tmp_path / "missing.json"
    missing.write_text(json.dumps({"id": "x", "@timestamp": "2026-01-01T00:00:00Z"}), encoding="utf-8")
    out = soar(content, "playbooks", "plan", "contain", "--alert", str(missing))
    assert out.returncode == 1 and "field rule: Field required" in out.stderr and "Traceback" not in out.stderr
    out = soar(content, "playbooks", "plan", "nope", "--alert", str(_alert_file(tmp_path)))
    assert out.returncode == 1 and "unknown playbook 'nope' (known: contain)" in out.stderr


def test_run_then_list_show_approve(content: Content, tmp_path: Path) -> None:
    content.playbook("contain", PLAYBOOK)
    out = soar(content, "playbooks", "run", "contain", "--alert", str(_alert_file(tmp_path, host="web1")), "--json")
    assert out.returncode == 0, out.stderr
    run = json.loads(out.stdout)
    assert run["status"] == "waiting_approval" and calls(content.state) == []
    assert "_params" not in out.stdout and "lease" not in run  # the engine's own copy stays inside
    listed = json.loads(soar(content, "runs", "list", "--json").stdout)
    assert [r["id"] for r in listed] == [run["id"]] and listed[0]["status"] == "waiting_approval"
    shown = soar(content, "runs", "show", run["id"])
    assert f"approve: soar runs approve {run['id']} --step contain" in shown.stdout
    denied = soar(content, "runs", "approve", run["id"], "--step", "contain", who="eve")
    assert denied.returncode == 3 and "eve (viewer) lacks approvals:decide" in denied.stderr
    # out of scope (web1 is env=prod; dana is dev-only) reads like an unknown run
    scoped = soar(content, "runs", "approve", run["id"], "--step", "contain", who="dana")
    assert scoped.returncode == 1 and scoped.stderr.strip() == f"error: unknown run id {run['id']!r}"
    ok = soar(content, "runs", "approve", run["id"], "--step", "contain", who="bob")
    assert ok.returncode == 0 and "approved" in ok.stdout, ok.stderr
    final = json.loads(soar(content, "runs", "show", run["id"], "--json").stdout)
    assert final["status"] == "succeeded"
    inst = final["steps"]["contain"]["instances"][0]
    assert inst["approval"]["approvers"][0]["approver"] == "bob" and inst["approval"]["approvers"][0]["via"] == "cli"
    assert "_params" not in inst
    assert [c["action"] for c in calls(content.state)] == ["testkit.contain", "testkit.note"]
    again = soar(content, "playbooks", "run", "contain", "--alert", str(tmp_path / "alert.json"))
    assert "already exists" in again.stdout and len(calls(content.state)) == 2
    # the alert it was given is in its incident (once, though given twice), the run in the incident's timeline
    incidents = json.loads(soar(content, "incidents", "list", "--json").stdout)
    assert [(i["key"]["value"], i["alert_count"]) for i in incidents] == [("web1", 1)]
    timeline = json.loads(soar(content, "incidents", "show", incidents[0]["id"], "--json").stdout)["timeline"]
    assert [e["ref"] for e in timeline if e["kind"] == "run"][:1] == [run["id"]]
    missing = soar(content, "runs", "show", "run-nope")
    assert missing.returncode == 1 and missing.stderr.strip() == "error: unknown run id 'run-nope'"
    # a unique prefix of an id is as good as the id (runs list and show print short ones)
    short = soar(content, "runs", "show", run["id"][:10], "--json")
    assert short.returncode == 0 and json.loads(short.stdout)["id"] == run["id"]
    hidden = soar(content, "runs", "show", run["id"][:10], who="dana")  # dev-only: web1's run is not hers
    assert hidden.returncode == 1 and "unknown run id" in hidden.stderr


def test_deny_through_the_cli(content: Content, tmp_path: Path) -> None:
    content.playbook("contain", PLAYBOOK)
    run = json.loads(
        soar(
            content, "playbooks", "run", "contain", "--alert", str(_alert_file(tmp_path, host="web1")), "--json"
        ).stdout
    )
    out = soar(content, "runs", "deny", run["id"], "--step", "contain", who="bob")
    assert out.returncode == 0 and "denied" in out.stdout
    final = json.loads(soar(content, "runs", "show", run["id"], "--json").stdout)
    assert final["status"] == "failed" and final["steps"]["contain"]["instances"][0]["status"] == "denied"
    assert calls(content.state) == []


def test_inputs_override_declared_values_only(content: Content, tmp_path: Path) -> None:
    content.playbook(
        "inputs",
        """\
name: inputs
trigger: {rules: [rule-contain]}
inputs: {greeting: hello, times: 1}
steps:
  - id: say
    uses: testkit.note
    with: {text: "{{ inputs.greeting }} x{{ inputs.times }} {{ alert.host.name }}"}
""",
    )
    alert_file = _alert_file(tmp_path)
    out = soar(content, "playbooks", "plan", "inputs", "--alert", str(alert_file), "--input", "times=3", "--json")
    assert json.loads(out.stdout)["steps"][0]["instances"][0]["params"]["text"] == "hello x3 dev1"
    bad = soar(content, "playbooks", "run", "inputs", "--alert", str(alert_file), "--input", "nope=1")
    assert bad.returncode == 1
    assert bad.stderr.strip() == "error: input 'nope' is not declared by playbook inputs (declared: greeting, times)"
    assert not (content.state / "state.sqlite3").exists() or calls(content.state) == []
    ran = soar(content, "playbooks", "run", "inputs", "--alert", str(alert_file), "--input", "greeting=hi", "--json")
    assert json.loads(ran.stdout)["inputs"] == {"greeting": "hi", "times": 1}
    assert [c["text"] for c in calls(content.state)] == ["hi x1 dev1"]


def test_rollback_a_finished_run(content: Content, tmp_path: Path) -> None:
    content.playbook("contain", PLAYBOOK)
    run = json.loads(
        soar(content, "playbooks", "run", "contain", "--alert", str(_alert_file(tmp_path)), "--json").stdout
    )
    assert run["status"] == "succeeded" and (content.state / "testkit" / "contained-dev1").exists()
    out = soar(content, "runs", "rollback", run["id"], "--reason", "false positive", who="bob")
    assert out.returncode == 0, out.stderr
    assert f"{run['id']}: rolling back (revert_contain)" in out.stdout and f"{run['id']}: rolled_back" in out.stdout
    assert not (content.state / "testkit" / "contained-dev1").exists()
    assert [c["action"] for c in calls(content.state)] == ["testkit.contain", "testkit.note", "testkit.release"]
    final = json.loads(soar(content, "runs", "show", run["id"], "--json").stdout)
    assert final["rollback"]["reason"] == "requested by bob: false positive"
    again = soar(content, "runs", "rollback", run["id"], who="bob")
    assert again.returncode == 1 and "only a finished run that was not rolled back" in again.stderr
    assert len(calls(content.state)) == 3


def test_the_command_line_acts_only_as_an_authenticated_principal(content: Content, tmp_path: Path) -> None:
    """No name or role from a flag: --as/--role are gone; no token and no mapped login is refused; a requester
    cannot approve their own run; rollback needs an approver in scope."""
    content.playbook("contain", PLAYBOOK)
    run = json.loads(
        soar(
            content,
            "playbooks",
            "run",
            "contain",
            "--alert",
            str(_alert_file(tmp_path, host="web1")),
            "--json",
            who="bob",
        ).stdout
    )
    assert run["requested_by"] == "bob" and run["status"] == "waiting_approval"
    forged = soar(content, "runs", "approve", run["id"], "--step", "contain", "--as", "admin", "--role", "admin")
    assert forged.returncode == 2 and "No such option" in forged.stderr
    anonymous = soar(content, "runs", "approve", run["id"], "--step", "contain", who=None)
    assert (
        anonymous.returncode == 1
        and "is not mapped to a principal" in anonymous.stderr
        and "SOAR_TOKEN" in anonymous.stderr
    )
    unknown = soar(content, "runs", "approve", run["id"], "--step", "contain", token="not-a-token-of-anyone-123")
    assert unknown.returncode == 1 and "SOAR_TOKEN is not a token of any principal" in unknown.stderr
    own = soar(content, "runs", "approve", run["id"], "--step", "contain", who="bob")
    assert own.returncode == 3 and "bob asked for this run" in own.stderr and "Traceback" not in own.stderr
    pending = json.loads(soar(content, "runs", "show", run["id"], "--json").stdout)
    assert pending["status"] == "waiting_approval"
    assert calls(content.state) == []
    rollback = soar(content, "runs", "rollback", run["id"], who="rita")
    assert rollback.returncode == 3 and "rita (responder) lacks runs:rollback" in rollback.stderr
