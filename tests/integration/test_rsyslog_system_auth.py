"""The rsyslog shaping (integrations/rsyslog/soar-system-auth.conf) against Elastic's own system.auth documents.

Each reference document in tests/data/shippers/system_auth/ is a pipeline-test output of Elastic's system
integration; its raw line is taken from the document (``event.original``) or from the pipeline test's input
file the provenance names (the same path without ``-expected.json``). The line goes through a real rsyslogd
running the shipped configuration, and every field the reference document has must come out with the same
value, except the differences listed in VERSION_DIFFERENCES (an older pipeline version than the current one)
and DELIBERATE (where the shaping is exact and the pipeline's grok is loose), each with its reason.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO_ROOT
from tests.services import require

pytestmark = [pytest.mark.integration]

SHAPING = REPO_ROOT / "integrations" / "rsyslog" / "soar-system-auth.conf"
REFERENCES = REPO_ROOT / "tests" / "data" / "shippers" / "system_auth"
HOST = "lab-host"

# Raw lines of reference documents that kept no event.original: (program, pid, message) as in the input file
# of their pipeline test (provenance path without -expected.json), at the provenance's commit.
INPUT_LINES: dict[str, tuple[str, int | None, str]] = {
    "sshd_accepted_password.json": ("sshd", 7483, "Accepted password for vagrant from 192.168.33.1 port 58803 ssh2"),
    "sshd_accepted_publickey.json": (
        "sshd",
        3402,
        "Accepted publickey for vagrant from 10.0.2.2 port 63673 ssh2: "
        "RSA 39:33:99:e9:a0:dc:f2:33:a3:e5:72:3b:7c:3a:56:84",
    ),
    "sshd_invalid_user.json": ("sshd", 3430, "Invalid user test from 10.0.2.2"),
    "sshd_failed_password_root_geo.json": ("sshd", 5774, "Failed password for root from 89.160.20.156 port 29160 ssh2"),
    "sshd_failed_password_root_rhel7.json": (
        "sshd",
        2738,
        "Failed password for root from 89.160.20.156 port 1786 ssh2",
    ),
    "sudo_command_ls.json": ("sudo", None, "vagrant : TTY=pts/0 ; PWD=/home/vagrant ; USER=root ; COMMAND=/bin/ls"),
    "sudo_command_cat_var_log_secure.json": (
        "sudo",
        None,
        "vagrant : TTY=pts/1 ; PWD=/home/vagrant ; USER=root ; COMMAND=/bin/cat /var/log/secure",
    ),
    "sudo_user_not_in_sudoers.json": (
        "sudo",
        None,
        "     tsg : user NOT in sudoers ; TTY=pts/1 ; PWD=/home/vagrant ; USER=root ; COMMAND=/bin/ls",
    ),
    "sudo_3_incorrect_password_attempts.json": (
        "sudo",
        None,
        "     tsg : 3 incorrect password attempts ; TTY=pts/1 ; PWD=/home/vagrant ; USER=root ; COMMAND=/bin/ls",
    ),
    "groupadd_new_group.json": ("groupadd", 6991, "new group: name=apache, GID=48"),
    "useradd_new_user.json": (
        "useradd",
        6995,
        "new user: name=apache, UID=48, GID=48, home=/usr/share/httpd, shell=/sbin/nologin",
    ),
}

# Fields the comparison leaves out: the shipper's own (ingest time, the agent's input, the original line's
# timestamp and time zone), enrichment this shaping does not do (GeoIP), and the host (HostName= here).
IGNORED: tuple[str, ...] = ("@timestamp", "ecs.", "event.ingested", "event.timezone", "event.original", "input.")
IGNORED += ("host.", "source.geo.", "source.as.", "related.hosts", "log.", "agent.")

# Reference documents from an older version of the auth pipeline than the one this shaping follows
# (elastic/integrations packages/system/data_stream/auth/elasticsearch/ingest_pipeline, current): path -> why.
VERSION_DIFFERENCES: dict[str, str] = {
    "event.type": "the current pipeline's SSH script sets event.type [info]; older ones kept authentication_success/"
    "authentication_failure beside it",
    "message": "older pipeline versions removed the message of a line they parsed; the current one keeps it",
}
# Where the shaping is exact and the pipeline's grok keeps padding: file -> {path: why}.
DELIBERATE: dict[str, dict[str, str]] = {
    "sudo_user_not_in_sudoers.json": {"user.name": "sudo pads the user name; the shaping trims it"},
    "sudo_3_incorrect_password_attempts.json": {"user.name": "sudo pads the user name; the shaping trims it"},
}
# Lines the pipeline version of the reference did not parse and the current one does: file -> paths it adds.
NEWER_FIELDS = ("event.category", "event.type", "event.outcome", "event.action", "user.", "related.user")


def leaves(doc: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield from leaves(value, f"{prefix}{key}.")
    else:
        yield prefix[:-1], doc


def reference_line(name: str, document: dict[str, Any]) -> tuple[str, int | None, str]:
    original = document.get("event", {}).get("original")
    if original:
        # "<timestamp> <host> <program>[<pid>]: <message>" (the test files' ISO 8601 or BSD form)
        head, message = original.split(": ", 1)
        tag = head.split()[-1]
        program, _, pid = tag.partition("[")
        return program, int(pid.rstrip("]")) if pid else None, message
    if name in INPUT_LINES:
        return INPUT_LINES[name]
    process = document["process"]
    return process["name"], process.get("pid"), document["message"]


@pytest.fixture(scope="module")
def shaped(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Every reference line through a real rsyslogd with the shipped shaping: file name -> document."""
    rsyslogd = require("rsyslogd (scripts/lab_telemetry.sh installs it)", lambda: _which("rsyslogd"))
    work = tmp_path_factory.mktemp("rsyslog")
    sock, out = work / "log", work / "out.jsonl"
    conf = work / "rsyslog.conf"
    conf.write_text(
        f"""
global(workDirectory="{work}")
module(load="imuxsock" sysSock.use="off")
include(file="{SHAPING}")
template(name="line" type="string" string="%$!ecs%\\n")
ruleset(name="t") {{
  call soar_system_auth_ecs
  action(type="omfile" file="{out}" template="line")
}}
input(type="imuxsock" socket="{sock}" hostName="{HOST}" ruleset="t" ratelimit.interval="0")
""",
        encoding="utf-8",
    )
    names = sorted(p.name for p in REFERENCES.glob("*.json"))
    proc = subprocess.Popen([rsyslogd, "-n", "-f", str(conf), "-i", str(work / "pid")], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sock.exists(), "rsyslogd did not open its socket"
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            for name in names:
                program, pid, message = reference_line(name, json.loads((REFERENCES / name).read_text())["document"])
                tag = f"{program}[{pid}]" if pid else program
                s.sendto(f"<38>{time.strftime('%b %e %H:%M:%S')} {tag}: {message}".encode(), str(sock))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if out.exists() and len(out.read_text().splitlines()) >= len(names):
                break
            time.sleep(0.05)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    docs = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(docs) == len(names), err.decode(errors="replace")
    return dict(zip(names, docs, strict=True))


def _which(name: str) -> str:
    found = shutil.which(name) or (f"/usr/sbin/{name}" if Path(f"/usr/sbin/{name}").exists() else None)
    if not found:
        raise RuntimeError(f"no {name}")
    return found


def test_every_line_has_the_base_fields(shaped: dict[str, dict[str, Any]]) -> None:
    for name, doc in shaped.items():
        assert doc["event"]["dataset"] == "system.auth" and doc["event"]["module"] == "system", name
        assert doc["event"]["kind"] == "event" and doc["host"] == {"hostname": HOST, "name": HOST}, name
        assert doc["message"] and doc["process"]["name"] and doc["@timestamp"], name
        assert doc["related"]["hosts"] == [HOST], name


@pytest.mark.parametrize("name", sorted(p.name for p in REFERENCES.glob("*.json")))
def test_the_shaping_gives_the_reference_documents_fields(shaped: dict[str, dict[str, Any]], name: str) -> None:
    reference = json.loads((REFERENCES / name).read_text())
    expected = dict(leaves(reference["document"]))
    got = dict(leaves(shaped[name]))
    deliberate = DELIBERATE.get(name, {})
    differences = []
    for path, value in expected.items():
        if path.startswith(IGNORED) or path in deliberate:
            continue
        if got.get(path) != value and not (path in VERSION_DIFFERENCES and _older(reference)):
            differences.append(f"{path}: reference {value!r}, shaped {got.get(path)!r}")
    assert not differences, f"{name} ({reference['provenance']['path']}):\n" + "\n".join(differences)
    for path in got.keys() - expected.keys():
        if path.startswith(IGNORED) or path in ("message", "event.module", "event.dataset"):
            continue
        # what the shaping adds beyond the reference is what the current pipeline adds (or an older one lacked)
        assert path.startswith(NEWER_FIELDS) or path in deliberate or path == "process.pid", f"{name}: extra {path}"
    for path, why in deliberate.items():
        assert got.get(path) == str(expected[path]).strip(), f"{name}: {path} ({why})"


def _older(reference: dict[str, Any]) -> bool:
    """A reference from an auth pipeline before the current one (ECS 8.0.0 or none: before ecs.version 8.11.0)."""
    return bool(reference["document"].get("ecs", {}).get("version") != "8.11.0")


def test_the_production_example_is_a_valid_rsyslog_configuration(tmp_path: Path) -> None:
    """docs/production.md's shipping file, its include and CA pointed at real files, passes rsyslogd -N1."""
    rsyslogd = require("rsyslogd (scripts/lab_telemetry.sh installs it)", lambda: _which("rsyslogd"))
    example = (SHAPING.parent / "soar-ship-auth.conf.example").read_text(encoding="utf-8")
    assert 'include(file="/etc/rsyslog.d/soar/soar-system-auth.conf")' in example
    ca = tmp_path / "ca.pem"
    ca.write_text("not checked by -N1\n", encoding="utf-8")
    shipping = tmp_path / "60-soar-ship-auth.conf"
    shipping.write_text(
        example.replace("/etc/rsyslog.d/soar/soar-system-auth.conf", str(SHAPING)).replace(
            "/etc/soar/es-ca.pem", str(ca)
        ),
        encoding="utf-8",
    )
    main = tmp_path / "rsyslog.conf"
    main.write_text(
        f'global(workDirectory="{tmp_path}")\nmodule(load="imuxsock" sysSock.use="off")\ninclude(file="{shipping}")\n',
        encoding="utf-8",
    )
    checked = subprocess.run([rsyslogd, "-N1", "-f", str(main)], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "error" not in (checked.stdout + checked.stderr).lower(), checked.stdout + checked.stderr
