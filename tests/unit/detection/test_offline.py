"""Nothing in detection needs the network: ATT&CK data comes from the package (pySigma would download it)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from soar.detection._attack import attack_bundle_path, tactics, techniques, use_shipped_attack_data
from tests.conftest import env_without_soar
from tests.unit.detection.helpers import process_event, rule_yaml, write

NO_NETWORK = textwrap.dedent(
    """
    import socket, sys, json
    def _deny(*args, **kwargs):
        raise OSError(101, "Network is unreachable (blocked by the test)")
    socket.socket.connect = _deny
    socket.socket.connect_ex = _deny
    socket.create_connection = _deny
    socket.getaddrinfo = _deny
    from soar.cli import main
    try:
        main(sys.argv[1:])
    except SystemExit as exc:
        print(json.dumps({"exit": exc.code}), file=sys.stderr)
    """
)


def _run_offline(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **env_without_soar(),
        "HOME": str(home),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "SOAR_STATE_DIR": str(home / "s"),
    }
    return subprocess.run(
        [sys.executable, "-c", NO_NETWORK, *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )


def test_check_and_kibana_export_work_with_the_network_unreachable(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    write(rules / "ok.yml", rule_yaml({"sel": {"Image|endswith": "/nc"}, "condition": "sel"}, title="Netcat"))
    bad_tags = rule_yaml(
        {"sel": {"Image": "x"}, "condition": "sel"}, extra={"tags": ["attack.t1059.004", "attack.t0000"]}
    )
    write(rules / "badtag.yml", bad_tags)
    check = _run_offline(tmp_path, "rules", "check", str(rules), "--strict")
    assert json.loads(check.stderr.strip().splitlines()[-1]) == {"exit": 1}, check.stderr
    assert check.stdout.count("Invalid MITRE ATT&CK tagging") == 1
    assert "attack.t0000" in check.stdout
    (rules / "badtag.yml").unlink()
    export = _run_offline(tmp_path, "rules", "convert", str(rules), "--format", "kibana-ndjson")
    assert json.loads(export.stderr.strip().splitlines()[-1]) == {"exit": 0}, export.stderr
    threat = json.loads(export.stdout.splitlines()[0])["threat"]
    assert threat[0]["tactic"] == {
        "id": "TA0002",
        "name": "Execution",
        "reference": "https://attack.mitre.org/tactics/TA0002",
    }
    assert not (tmp_path / ".cache" / "pysigma").exists()  # pySigma's own cache (and download) was never used


def test_convert_and_fixture_tests_work_with_the_network_unreachable(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    write(rules / "nc.yml", rule_yaml({"sel": {"Image|endswith": "/nc"}, "condition": "sel"}, title="Netcat"))
    fixtures = {"should_match": [process_event("nc -l", "/usr/bin/nc")], "should_not_match": [process_event("ls")]}
    write(rules / "nc.tests.yml", json.dumps(fixtures))
    for target in ("elasticsearch", "embedded"):
        convert = _run_offline(tmp_path, "rules", "convert", str(rules), "--target", target, "--json")
        assert json.loads(convert.stderr.strip().splitlines()[-1]) == {"exit": 0}, convert.stderr
        (compiled,) = json.loads(convert.stdout)
        assert "process.executable" in (compiled["query"] or json.dumps(compiled["dsl"]))
    test = _run_offline(tmp_path, "rules", "test", str(rules), "--json")
    assert json.loads(test.stderr.strip().splitlines()[-1]) == {"exit": 0}, test.stderr
    assert [r["passed"] for r in json.loads(test.stdout)["results"]] == [True]


def test_shipped_attack_data() -> None:
    assert attack_bundle_path().is_file()
    assert use_shipped_attack_data() == "18.1"
    assert techniques()["T1110.003"] == "Password Spraying"
    assert tactics()["TA0006"] == "credential-access"
