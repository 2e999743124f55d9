"""Issue 13, item 6: real telemetry end to end, from the lab.

An attack performed in the SSH lab, from the attacker peer (10.77.0.4) and on web1 itself:

  password spraying over SSH (six names that do not exist, wrong passwords, in parallel) ·
  a login as a real account and a sudo it is not allowed (user NOT in sudoers) · ``usermod -aG sudo``

→ web1's own auth log lines (real sshd, sudo, useradd, usermod writing to syslog) → rsyslog shapes them as
Elastic's system.auth documents (integrations/rsyslog/soar-system-auth.conf; scripts/lab_telemetry.sh runs it)
→ the data stream soar-lab-auth-default → soar's detector → alerts of the shipped auth rules with web1 as host.name.
Then the same telemetry through the real `soar scheduler` and `soar worker`: the brute-force alert runs the
shipped ssh-brute-force playbook, which blocks the peer on web1 (verified, and seen from the peer) and says so in
the alert's Slack thread; the block is lifted after. Every account the attack made is removed.
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from elasticsearch import Elasticsearch

from soar.actions import ActionContext, load_registry
from soar.config import Settings, load_settings
from soar.hosts.inventory import load_inventory
from soar.hosts.runner import RESOURCE_KEY, HostRunner
from soar.hosts.transport import Session, SSHOptions, connect, host_credentials
from soar.scheduler.cycle import Detector
from soar.scheduler.loading import load_scheduled_rules
from soar.scheduler.runtime import reset
from soar.store import open_store
from soar.store.sqlite import SQLiteStore
from tests.conftest import REPO_ROOT
from tests.integration.e2e_support import background, eventually, lab_status, lab_tables, peer_reaches
from tests.integration.hosts.lab import LAB, host_lock, ns
from tests.integration.notify.standin import Workspace, health
from tests.services import require
from tests.workers import flush_db, redis_url_for_db, running_worker

pytestmark = [pytest.mark.integration, pytest.mark.lab]

STREAM = "soar-lab-auth-default"  # scripts/lab_telemetry.sh
TARGET, TARGET_IP = "web1", "10.77.0.11"
ATTACKER, ATTACKER_IP = "peer", "10.77.0.4"
DB = 15  # this module's Redis db (tests/workers.py: one per area)

SPRAYING = "b446bf3a-e5d3-4ccf-a478-b706fd47d0fb"  # rules/linux/auth/ssh_password_spraying.yml
BRUTE_FORCE = "981dc82e-6b2f-4d0c-b0de-77535ef0828b"  # rules/linux/auth/ssh_brute_force.yml
NOT_IN_SUDOERS = "52c1cb08-93b4-4f8a-8107-62aa0dcffc8d"  # rules/linux/auth/sudo_user_not_in_sudoers.yml
PRIVILEGED_GROUP = "2f37d53a-fe4e-4ca1-8ea0-506e9976c22d"  # rules/linux/auth/privileged_group_member_added.yml

# Run by the attacker peer's Python (paramiko), inside its network namespace: the spraying, in parallel, then a
# login as the real account and a sudo it may not do. Host keys pinned from the lab's known_hosts.
PEER_ATTACK = r"""
import json, sys, threading
import paramiko

host, known_hosts, user, password = sys.argv[1:5]
sprayed = sys.argv[5:]
out = {"sprayed": {}, "sudo": None}

def client():
    c = paramiko.SSHClient()
    c.load_host_keys(known_hosts)
    c.set_missing_host_key_policy(paramiko.RejectPolicy())
    return c

def spray(name):
    c = client()
    try:
        c.connect(host, username=name, password="Spr4y-" + name, look_for_keys=False, allow_agent=False,
                  timeout=10, banner_timeout=10, auth_timeout=20)
        out["sprayed"][name] = "logged in"
    except paramiko.AuthenticationException:
        out["sprayed"][name] = "denied"
    finally:
        c.close()

threads = [threading.Thread(target=spray, args=(n,)) for n in sprayed]
for t in threads:
    t.start()
for t in threads:
    t.join()

c = client()
c.connect(host, username=user, password=password, look_for_keys=False, allow_agent=False, timeout=10)
stdin, stdout, stderr = c.exec_command("sudo -S -p '' id")
stdin.write(password + "\n")
stdin.flush()
stdin.channel.shutdown_write()
out["sudo"] = {"status": stdout.channel.recv_exit_status(), "stderr": stderr.read().decode()}
c.close()
print(json.dumps(out))
"""


@dataclass
class Attack:
    """What was done, by whom, from when: the names to find the lines by."""

    started: str
    user: str
    sprayed: list[str]
    timings: dict[str, float] = field(default_factory=dict)
    docs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return [self.user, *self.sprayed]


def telemetry_status() -> None:
    """Raise unless the lab's rsyslog is shipping (scripts/lab_telemetry.sh status)."""
    status = subprocess.run(
        [str(REPO_ROOT / "scripts" / "lab_telemetry.sh"), "status"], capture_output=True, text=True, check=False
    )
    if status.returncode != 0:
        raise RuntimeError(status.stdout.strip() or status.stderr.strip())


@contextmanager
def on_target() -> Iterator[Session]:
    """An SSH session as the lab's controller account on web1, through the bastion (the operator's path)."""
    inventory = load_inventory(LAB / "inventory.yml")
    options = SSHOptions(known_hosts=LAB / "known_hosts", connect_timeout=5.0, command_timeout=30.0)
    bastion, target = inventory.get("bastion"), inventory.get(TARGET)
    via = connect(bastion, host_credentials(bastion), options)
    try:
        session = connect(target, host_credentials(target), options, via)
        try:
            yield session
        finally:
            session.close()
    finally:
        via.close()


def run_ok(session: Session, argv: list[str], stdin: bytes | None = None) -> None:
    result = session.run(argv, stdin=stdin)
    assert result.ok, f"{argv}: {result.exit_status} {result.stderr}"


def remove_user(name: str) -> None:
    """userdel on web1 (logged like the rest), else here: the account must not outlive the test either way."""
    try:
        with on_target() as session:
            session.run(["sudo", "pkill", "-KILL", "-u", name])
            session.run(["sudo", "userdel", "-r", name])
    finally:
        subprocess.run(["pkill", "-KILL", "-u", name], capture_output=True, check=False)
        subprocess.run(["userdel", "-r", name], capture_output=True, check=False)


@pytest.fixture(scope="module")
def attack() -> Iterator[Attack]:
    """The attack, once for the module, with web1 held against other areas' tests of the shared lab."""
    require("SSH lab", lab_status)
    require("lab telemetry (scripts/services.sh up telemetry)", telemetry_status)
    tag = secrets.token_hex(3)
    user = f"soarlt{tag}"
    password = secrets.token_urlsafe(15)
    done = Attack(
        started=datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        user=user,
        sprayed=[f"soarlt{tag}s{i}" for i in range(6)],
    )
    with host_lock(TARGET):
        eventually(
            "web1 free of another test's isolation, reachable from the peer",
            lambda: "soar_isolate" not in lab_tables() and peer_reaches(TARGET_IP),
            120,
            1,
        )
        try:
            t0 = time.monotonic()
            # an operator (or an intruder with an admin's key) makes an account on web1
            with on_target() as session:
                run_ok(session, ["sudo", "useradd", "--create-home", "--shell", "/bin/sh", user])
                run_ok(session, ["sudo", "chpasswd"], stdin=f"{user}:{password}\n".encode())
            done.timings["account created over SSH"] = time.monotonic() - t0
            # the attacker peer sprays, then uses the account and tries sudo
            t1 = time.monotonic()
            argv = ["ip", "netns", "exec", ns(ATTACKER), sys.executable, "-c", PEER_ATTACK, TARGET_IP]
            peer = subprocess.run(
                [*argv, str(LAB / "known_hosts"), user, password, *done.sprayed],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert peer.returncode == 0, peer.stderr[-2000:]
            result = json.loads(peer.stdout)
            assert set(result["sprayed"].values()) == {"denied"}, result
            assert result["sudo"]["status"] != 0 and "not in the sudoers file" in result["sudo"]["stderr"], result
            done.timings["spraying (6 names, parallel) + login + sudo from the peer"] = time.monotonic() - t1
            # the account is made an administrator (locked first: it never logs in again)
            t2 = time.monotonic()
            with on_target() as session:
                run_ok(session, ["sudo", "usermod", "-L", user])
                run_ok(session, ["sudo", "usermod", "-aG", "sudo", user])
            done.timings["usermod -aG sudo over SSH"] = time.monotonic() - t2
            yield done
        finally:
            remove_user(user)
            print_timings(done)
    assert subprocess.run(["id", user], capture_output=True, check=False).returncode != 0, f"{user} left behind"


def search(es: Elasticsearch, attack: Attack) -> list[dict[str, Any]]:
    """The attack's documents on web1 in the lab's data stream, in time order."""
    es.indices.refresh(index=STREAM)
    query = {
        "bool": {
            "filter": [{"range": {"@timestamp": {"gte": attack.started}}}, {"term": {"host.name": TARGET}}],
            "should": [{"terms": {"user.name": attack.names}}, {"terms": {"user.target.name": attack.names}}],
            "minimum_should_match": 1,
        }
    }
    hits = es.search(index=STREAM, query=query, size=1000, sort=[{"@timestamp": "asc"}])["hits"]["hits"]
    return [{**h["_source"], "_id": h["_id"]} for h in hits]


def flat(doc: dict[str, Any], path: str) -> Any:
    value: Any = doc
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def pick(docs: list[dict[str, Any]], **where: Any) -> list[dict[str, Any]]:
    """Documents whose dotted fields (``__`` for ``.``) have these values."""
    return [d for d in docs if all(flat(d, k.replace("__", ".")) == v for k, v in where.items())]


def complete(docs: list[dict[str, Any]], attack: Attack) -> bool:
    """Every line the attack must have written is there."""
    for name in attack.sprayed:
        if not pick(docs, user__name=name, system__auth__ssh__event="Invalid"):
            return False
        if not pick(docs, user__name=name, system__auth__ssh__event="Failed"):
            return False
    return all(
        pick(docs, user__name=attack.user, **where)
        for where in (
            {"event__action": "user-created"},
            {"system__auth__ssh__event": "Accepted"},
            {"process__name": "sudo", "system__auth__sudo__error": "user NOT in sudoers"},
            {"event__action": "group-member-added", "group__name": "sudo"},
        )
    )


@pytest.fixture(scope="module")
def shipped(es: Elasticsearch, attack: Attack) -> Attack:
    """The attack's lines, once all are searchable in Elasticsearch (bounded wait)."""
    t0 = time.monotonic()

    def arrived() -> list[dict[str, Any]] | None:
        docs = search(es, attack)
        return docs if complete(docs, attack) else None

    attack.docs = eventually(f"the attack's auth lines from {TARGET} in {STREAM}", arrived, 30, 0.5)
    attack.timings["last line of the attack -> searchable in Elasticsearch"] = time.monotonic() - t0
    return attack


def test_the_lab_hosts_own_lines_arrive_as_system_auth_documents(shipped: Attack) -> None:
    docs = shipped.docs
    for doc in docs:  # every line: the data set, the lab host's own name, the program, the message
        assert doc["event"]["dataset"] == "system.auth" and doc["event"]["module"] == "system", doc
        assert doc["host"] == {"name": TARGET, "hostname": TARGET}, doc
        assert doc["process"]["name"] and doc["message"] and doc["@timestamp"] >= shipped.started, doc
    for name in shipped.sprayed:
        (invalid,) = pick(docs, user__name=name, system__auth__ssh__event="Invalid")
        assert invalid["source"] == {"ip": ATTACKER_IP} and invalid["process"]["name"] == "sshd"
        assert invalid["event"]["action"] == "ssh_login" and invalid["event"]["outcome"] == "failure"
        assert invalid["event"]["category"] == ["authentication"] and invalid["event"]["type"] == ["info"]
        assert invalid["message"].startswith(f"Invalid user {name} from {ATTACKER_IP} port ")
        (failed,) = pick(docs, user__name=name, system__auth__ssh__event="Failed")
        assert failed["system"]["auth"]["ssh"]["method"] == "password" and failed["source"]["ip"] == ATTACKER_IP
        assert isinstance(failed["source"]["port"], int) and isinstance(failed["process"]["pid"], int)
        assert failed["related"] == {"user": [name], "ip": [ATTACKER_IP], "hosts": [TARGET]}
    user = shipped.user
    (accepted,) = pick(docs, user__name=user, system__auth__ssh__event="Accepted")
    assert accepted["event"]["outcome"] == "success" and accepted["event"]["category"] == ["authentication", "session"]
    (sudo,) = pick(docs, user__name=user, process__name="sudo", system__auth__sudo__error="user NOT in sudoers")
    assert sudo["system"]["auth"]["sudo"]["user"] == "root" and sudo["user"]["effective"]["name"] == "root"
    assert sudo["system"]["auth"]["sudo"]["command"].endswith("/id"), sudo
    (created,) = pick(docs, user__name=user, event__action="user-created")
    assert created["process"]["name"] == "useradd" and created["event"]["type"] == ["user", "creation"]
    assert created["system"]["auth"]["useradd"] == {"home": f"/home/{user}", "shell": "/bin/sh"}
    added = pick(docs, user__name=user, event__action="group-member-added", group__name="sudo")
    assert {d["message"] for d in added} >= {f"add '{user}' to group 'sudo'"}, added
    for doc in added:
        assert doc["process"]["name"] == "usermod" and doc["user"]["target"]["name"] == user
        assert doc["event"]["category"] == ["iam"] and doc["event"]["type"] == ["user", "change"]
        assert doc["event"]["outcome"] == "success"


@pytest.fixture
def auth_rules(tmp_path: Path) -> Path:
    """A content root with the shipped auth rule pack only (the lab's stream also carries other tests' lines)."""
    rules = tmp_path / "content" / "rules"
    shutil.copytree(REPO_ROOT / "rules" / "linux" / "auth", rules)
    return tmp_path / "content"


def test_the_detector_alerts_on_the_lab_attack_with_the_lab_host(
    es: Elasticsearch, shipped: Attack, auth_rules: Path
) -> None:
    reset()
    settings = load_settings(
        content_root=auth_rules,
        state_dir=auth_rules / "state",
        events_index=STREAM,
        celery_eager=True,
        detection_interval=1.0,
        detection_lookback=300.0,
        detection_ingest_delay=0.0,
    )
    rules, errors = load_scheduled_rules(settings)
    assert not errors, [str(e) for e in errors]
    store = SQLiteStore(auth_rules / "state" / "state.sqlite3")
    try:
        t0 = time.monotonic()
        report = Detector(settings, store, es, lambda _id: None).run(rules, time.time())
        shipped.timings["one detection cycle over the stream"] = time.monotonic() - t0
        assert all(run.error is None for run in report.runs.values()), {
            rid: run.error for rid, run in report.runs.items() if run.error
        }
        alerts = [r.doc for r in store.find("alerts", limit=10_000)]
    finally:
        store.close()
        reset()
    mine = {d["_id"] for d in shipped.docs}

    def of(rule_id: str, **where: Any) -> list[dict[str, Any]]:
        return [a for a in pick([a for a in alerts if a["rule"]["id"] == rule_id], **where) if mine & set(ids(a))]

    assert of(SPRAYING, source__ip=ATTACKER_IP), summary(alerts)
    # grouped by the host the line names (host.hostname: what the integration's pipeline sets)
    assert of(BRUTE_FORCE, source__ip=ATTACKER_IP, host__hostname=TARGET), summary(alerts)
    (sudo,) = of(NOT_IN_SUDOERS, host__name=TARGET, user__name=shipped.user)
    assert sudo["rule"]["title"] == "sudo attempted by a user who is not in sudoers"
    added = of(PRIVILEGED_GROUP, host__name=TARGET, user__name=shipped.user)
    assert added, summary(alerts)
    assert all("'sudo'" in json.dumps(a["events"]) for a in added)


def ids(alert: dict[str, Any]) -> list[str]:
    """The ids of the events an alert names (plain alerts: event_ids; correlations: their refs)."""
    return [str(i).rsplit("/", 1)[-1].rsplit(":", 1)[-1] for i in alert.get("event_ids") or []]


def summary(alerts: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(a["rule"]["title"], a.get("host"), flat(a, "source.ip"), flat(a, "user.name")) for a in alerts]


def print_timings(attack: Attack) -> None:
    """Measured, for the record (`pytest -s`); never asserted against a fixed number."""
    for what, seconds in attack.timings.items():
        print(f"lab telemetry {what:<60} {seconds:6.2f} s")


# -- the whole loop: scheduler, worker, playbook, verified block, Slack ------------------------------------------


@pytest.fixture
def stack(tmp_path: Path, es: Elasticsearch, redis: object, shipped: Attack) -> Iterator[dict[str, Any]]:
    """The shipped brute-force rule and ssh-brute-force playbook over the lab's stream; state removed after."""
    require("Slack stand-in", health)
    content = tmp_path / "content"
    (content / "rules").mkdir(parents=True)
    (content / "playbooks").mkdir()
    shutil.copy(REPO_ROOT / "rules" / "linux" / "auth" / "ssh_brute_force.yml", content / "rules")
    playbook = yaml.safe_load((REPO_ROOT / "playbooks" / "ssh-brute-force.yml").read_text(encoding="utf-8"))
    playbook["inputs"]["block_seconds"] = 300  # a crashed test must not leave the peer blocked for a day
    (content / "playbooks" / "ssh-brute-force.yml").write_text(yaml.safe_dump(playbook), encoding="utf-8")
    shutil.copy(REPO_ROOT / "policy.yml", content / "policy.yml")
    inventory = yaml.safe_load((LAB / "inventory.yml").read_text(encoding="utf-8"))
    inventory["defaults"]["key"] = str(LAB / str(inventory["defaults"]["key"]))
    # the lab's web1 is criticality high (two approvers for any containment): here, a host that blocks at once
    inventory["hosts"][TARGET]["labels"]["criticality"] = "medium"
    (content / "inventory.yml").write_text(yaml.safe_dump(inventory, sort_keys=False), encoding="utf-8")
    workspace = Workspace(["soc-alerts"])
    prefix = f"soar-test-{uuid.uuid4().hex[:12]}"
    values: dict[str, Any] = {
        "content_root": content,
        "state_dir": tmp_path / "state",
        "store": "elasticsearch",
        "index_prefix": prefix,
        "events_index": STREAM,
        "redis_url": redis_url_for_db(DB),
        "inventory_file": content / "inventory.yml",
        "ssh_known_hosts": LAB / "known_hosts",
        "ssh_connect_timeout": 5.0,
        "ssh_command_timeout": 30.0,
        "slack_api_url": workspace.api_url,
        "slack_bot_token": workspace.token,
        "slack_channel_interval": 0.0,
        "detection_interval": 5.0,
        "detection_lookback": 300.0,
        "detection_ingest_delay": 0.0,
    }
    settings = load_settings(**values)
    env = {f"SOAR_{name.upper()}": str(value) for name, value in values.items()}
    flush_db(DB)
    state: dict[str, Any] = {"env": env, "settings": settings, "workspace": workspace, "logs": tmp_path}
    try:
        yield state
    finally:
        unblock(settings)
        es.options(ignore_status=404).indices.delete(index=f"{prefix}-*")
        es.options(ignore_status=404).indices.delete_index_template(name=f"{prefix}-state")
        flush_db(DB)


def unblock(settings: Settings) -> None:
    """The real action lifts the block (idempotent: nothing blocked, nothing done)."""
    ctx = ActionContext(settings=settings, run_id="lab-telemetry-cleanup")
    try:
        load_registry(settings).get("hosts.unblock_ip").call(ctx, {"host": TARGET, "ip": ATTACKER_IP})
    finally:
        runner = ctx.resources.pop(RESOURCE_KEY, None)
        if isinstance(runner, HostRunner):
            runner.close()


def test_the_lab_brute_force_is_blocked_on_the_host_and_told_in_slack(
    stack: dict[str, Any], shipped: Attack, es: Elasticsearch
) -> None:
    env: dict[str, str] = stack["env"]
    logs: Path = stack["logs"]
    workspace: Workspace = stack["workspace"]
    store = open_store(stack["settings"])
    t0 = time.monotonic()
    try:
        with (
            running_worker(DB, env, concurrency=2, log_path=logs / "worker.log"),
            background(["scheduler", "--tick", "1"], env, logs / "scheduler.log"),
        ):
            alert = eventually(
                "the brute-force alert from the lab's own lines",
                lambda: next(
                    (
                        a.doc
                        for a in store.find("alerts", {"rule.id": BRUTE_FORCE})
                        if flat(a.doc, "source.ip") == ATTACKER_IP
                    ),
                    None,
                ),
                60,
                0.5,
            )
            shipped.timings["scheduler + worker up -> brute-force alert"] = time.monotonic() - t0
            assert alert["host"] == {"hostname": TARGET}, alert["host"]

            def finished() -> dict[str, Any] | None:
                runs = [r.doc for r in store.find("runs", {"alert_id": alert["id"]})]
                return next((r for r in runs if r["status"] in ("succeeded", "failed", "rolled_back")), None)

            run = eventually("the ssh-brute-force run to finish", finished, 90, 0.5)
            shipped.timings["alert -> block verified on web1 (run finished)"] = (
                time.monotonic() - t0 - shipped.timings["scheduler + worker up -> brute-force alert"]
            )
    except AssertionError as exc:
        raise AssertionError(f"{exc}; scheduler: {(logs / 'scheduler.log').read_text()[-1500:]}") from None
    finally:
        store.close()
    assert run["playbook"]["name"] == "ssh-brute-force" and run["status"] == "succeeded", run.get("error")
    (block,) = run["steps"]["block"]["instances"]
    assert run["steps"]["block"]["status"] == "succeeded" and block["result"]["verified"] is True, block
    # the real effect, seen from the attacker's side
    assert not peer_reaches(TARGET_IP), f"the peer is blocked on web1; {lab_tables()}"
    told = f"SSH brute force on {TARGET} from {ATTACKER_IP}: block succeeded"
    card = eventually(
        "the alert's card in Slack",
        lambda: next((m for m in workspace.top_level() if alert["id"] in json.dumps(m.get("blocks"))), None),
        30,
    )
    eventually(
        "the playbook's message in the alert's thread",
        lambda: any(told in m.get("text", "") for m in workspace.replies(card["ts"])),
        30,
    )
    unblock(stack["settings"])
    assert peer_reaches(TARGET_IP), f"after the unblock the peer reaches web1 again; {lab_tables()}"
