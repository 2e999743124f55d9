"""Support for the end-to-end test: the stack's processes, the lab content, the scenario replayed now.

Everything here talks to the real services: Elasticsearch, Redis, `soar worker`, `soar scheduler`,
`soar api` (uvicorn), the SSH lab (scripts/lab.sh) and the Slack stand-in (scripts/slack_standin.py).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode

import httpx
import yaml

from tests.integration.hosts.lab import LAB, REPO, sh_in
from tests.services import require
from tests.workers import kill_group

T = TypeVar("T")

SCENARIO = REPO / "soar" / "data" / "scenarios" / "intrusion.jsonl"
REVERSE_SHELL_RULE = "2c81765a-9722-47d8-839c-e2a61d09d841"  # rules/linux/process_creation/reverse_shell_bash_dev_tcp
SCENARIO_HOST = "web-01"  # the scenario's web server, mapped onto the lab host web1 by the test inventory
LAB_HOST = "web1"
LAB_ADDRESS = "10.77.0.11"
# the part of the story that matters: web-01 from the download piped to a shell to the reverse shell's connection
PHASE = ("2026-03-14T13:24:00Z", "2026-03-14T13:25:30Z")

APPROVER = {"name": "alice", "slack_user_id": "UALICE0E2E", "token": "alice-e2e-token-7c1d93ab55"}
TOKENS = f"""
principals:
  - name: {APPROVER["name"]}
    token: {APPROVER["token"]}
    roles: [approver]
    slack_user_id: {APPROVER["slack_user_id"]}
"""


def lab_status() -> None:
    """Raise unless the SSH lab is up (its inventory written, its namespaces alive)."""
    if not (LAB / "inventory.yml").is_file():
        raise RuntimeError(f"no {LAB / 'inventory.yml'} (scripts/lab.sh up)")
    status = subprocess.run([str(REPO / "scripts" / "lab.sh"), "status"], capture_output=True, text=True)
    if status.returncode != 0:
        raise RuntimeError(status.stdout.strip() or status.stderr.strip())


def write_inventory(root: Path) -> Path:
    """The lab's inventory, with the scenario's host names as aliases and production labels.

    web-01 is ``env: prod`` (the shipped policy asks one approver before isolating it) and
    ``criticality: medium`` (so releasing it needs no two-person approval).
    """
    inv = yaml.safe_load((LAB / "inventory.yml").read_text(encoding="utf-8"))
    inv["defaults"]["key"] = str(LAB / str(inv["defaults"]["key"]))
    for lab_name, alias, labels in (
        (LAB_HOST, SCENARIO_HOST, {"env": "prod", "criticality": "medium"}),
        ("db1", "db-01", {"env": "prod", "criticality": "medium"}),
    ):
        host = inv["hosts"][lab_name]
        host["aliases"] = [*host.get("aliases", []), alias]
        host["labels"] = {**host.get("labels", {}), **labels}
    path = root / "inventory.yml"
    path.write_text(yaml.safe_dump(inv, sort_keys=False), encoding="utf-8")
    return path


def write_content(root: Path) -> dict[str, Path]:
    """Inventory and API tokens; rules, playbooks, responders, integrations and policy are the shipped ones."""
    root.mkdir(parents=True, exist_ok=True)
    tokens = root / "tokens.yml"
    tokens.write_text(TOKENS, encoding="utf-8")
    return {"inventory": write_inventory(root), "tokens": tokens}


def scenario_phase(now: datetime, lead: float = 15.0) -> list[tuple[str, dict[str, Any]]]:
    """The scenario's events of the phase on web-01, shifted so the last one happened ``lead`` seconds ago.

    One offset for all keeps their order and spacing (the README's replay rule).
    """
    start, end = (_parse(t) for t in PHASE)
    picked: list[tuple[int, dict[str, Any], datetime]] = []
    for n, line in enumerate(SCENARIO.read_text(encoding="utf-8").splitlines()):
        event = json.loads(line)
        at = _parse(event["@timestamp"])
        if event["host"]["name"] == SCENARIO_HOST and start <= at <= end:
            picked.append((n, event, at))
    assert picked, f"no {SCENARIO_HOST} events in {PHASE} of {SCENARIO}"
    offset = now - timedelta(seconds=lead) - max(at for _, _, at in picked)
    out = []
    for n, event, at in picked:
        event["@timestamp"] = (at + offset).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        out.append((f"intrusion-{n}", event))
    return out


def expected_rules(event_ids: list[str]) -> set[str]:
    """The rule ids intrusion.expected.json says must fire on these events (plain rules: correlations need more)."""
    lines = {int(i.removeprefix("intrusion-")) for i in event_ids}
    expected = json.loads(SCENARIO.with_suffix(".expected.json").read_text(encoding="utf-8"))
    return {a["id"] for a in expected["alerts"] if a["kind"] == "rule" and lines & set(a["events"])}


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def parse_iso(value: str) -> datetime:
    return _parse(value)


# -- processes ----------------------------------------------------------------------------------------------


def base_env(env: Mapping[str, str]) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith("SOAR_")}, **env}


def soar_cli(env: Mapping[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """One `soar` command as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "soar", *args],
        capture_output=True,
        text=True,
        env=base_env(env),
        cwd=REPO,
        timeout=timeout,
    )


@contextmanager
def background(argv: list[str], env: Mapping[str, str], log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A long-running `soar` process in its own session; stopped (TERM, then KILL) on exit."""
    log = log_path.open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "soar", *argv],
        env=base_env(env),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        cwd=REPO,
    )
    try:
        yield proc
    finally:
        stop(proc)
        log.close()


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)
        except (subprocess.TimeoutExpired, ProcessLookupError):
            kill_group(proc)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve_api(env: Mapping[str, str], log_path: Path) -> Iterator[str]:
    """`soar api` (uvicorn) on a free loopback port; its base URL once /health answers."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with background(["api", "--host", "127.0.0.1", "--port", str(port)], env, log_path) as proc:

        def _ready() -> None:
            deadline = time.monotonic() + 45
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    raise RuntimeError(f"soar api exited with {proc.returncode}: {log_path.read_text()[-2000:]}")
                try:
                    if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                time.sleep(0.2)
            raise RuntimeError("soar api did not answer /health in time")

        require("soar api", _ready)
        yield url


# -- Slack ----------------------------------------------------------------------------------------------------


def button(message: Mapping[str, Any], action_id: str) -> dict[str, Any]:
    """The message's button with this action id, as Slack would send it back when clicked."""
    for block in message.get("blocks") or []:
        for element in block.get("elements") or [] if block.get("type") == "actions" else []:
            if element.get("action_id") == action_id:
                return dict(element)
    raise AssertionError(f"no {action_id!r} button in the message")


def signed_click(
    url: str, secret: str, *, clicked: Mapping[str, Any], user: str, channel: str, message_ts: str
) -> httpx.Response:
    """A click on a button of a message, POSTed as Slack posts it: signed v0 HMAC-SHA256 over timestamp and body."""
    payload = {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower()},
        "channel": {"id": channel},
        "container": {"type": "message", "message_ts": message_ts, "channel_id": channel},
        "message": {"ts": message_ts},
        "actions": [
            {
                "type": "button",
                "action_id": clicked["action_id"],
                "block_id": clicked.get("block_id", ""),
                "value": clicked["value"],
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }
    body = urlencode({"payload": json.dumps(payload)}).encode()
    stamp = str(int(time.time()))
    digest = hmac.new(secret.encode(), f"v0:{stamp}:".encode() + body, hashlib.sha256).hexdigest()
    headers = {
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": f"v0={digest}",
        "Content-Type": "application/x-www-form-urlencoded",
    }
    return httpx.post(f"{url}/slack/interactivity", content=body, headers=headers, timeout=10)


def block_ids(message: Mapping[str, Any]) -> list[str]:
    return [str(b.get("block_id", "")) for b in message.get("blocks") or []]


# -- the lab, seen from the attacker's side --------------------------------------------------------------------


def peer_reaches(address: str, port: int = 22, seconds: int = 3) -> bool:
    """Can the lab's attacker peer open a TCP connection to address:port (connection refused/dropped = False)?"""
    script = 'exec 3<>"/dev/tcp/$0/$1"'
    return sh_in("peer", "timeout", str(seconds), "bash", "-c", script, address, str(port)).returncode == 0


def lab_tables(host: str = LAB_HOST) -> str:
    """The nftables tables on a lab host (a diagnostic: another test's isolation of the shared lab shows here)."""
    listed = sh_in(host, "nft", "list", "tables")
    return " ".join(listed.stdout.split()) or "no tables"


def mgmt_reaches(address: str, port: int = 22, seconds: int = 3) -> bool:
    script = 'exec 3<>"/dev/tcp/$0/$1"'
    return sh_in("mgmt", "timeout", str(seconds), "bash", "-c", script, address, str(port)).returncode == 0


# -- waiting ----------------------------------------------------------------------------------------------------


def eventually(what: str, check: Callable[[], T | None], timeout: float, step: float = 0.25) -> T:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(step)
