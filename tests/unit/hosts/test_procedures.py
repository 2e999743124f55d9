"""Actions without a network: the registry sees them, dry-run plans are exact, refusals never connect."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from soar.actions import ActionContext, load_registry
from soar.config import Settings, load_settings
from soar.hosts.procedures import store_evidence
from soar.hosts.runner import RESOURCE_KEY

INVENTORY = """\
defaults: {user: soar, sudo: true, bastion: jump, management: [192.0.2.2], log_endpoints: ["192.0.2.9:9200"],
           protected_accounts: [backup], probe: canary}
hosts:
  jump: {address: 192.0.2.10, aliases: [192.0.2.2]}
  canary: {address: 192.0.2.50}
  web1: {address: 192.0.2.11, labels: {env: prod, role: web, criticality: high, owner: web}}
  web2: {address: 192.0.2.12, aliases: [web]}
  web3: {address: 192.0.2.13, aliases: [web]}
"""


@pytest.fixture
def offline(tmp_path: Path) -> Settings:
    """Documentation addresses (TEST-NET-1) and no known_hosts: any connection attempt would fail."""
    (tmp_path / "inventory.yml").write_text(INVENTORY)
    return load_settings(content_root=tmp_path, state_dir=tmp_path / "state", inventory_file=tmp_path / "inventory.yml")


def test_the_registry_declares_every_host_action(settings: Settings) -> None:
    registry = load_registry(settings)
    specs = {s.name: s for s in registry.specs() if s.name.startswith("hosts.")}
    assert set(specs) == {
        "hosts.isolate_host", "hosts.release_host", "hosts.block_ip", "hosts.unblock_ip", "hosts.lock_account",
        "hosts.unlock_account", "hosts.kill_sessions", "hosts.kill_process", "hosts.collect_triage",
        "hosts.check_isolation", "hosts.check_block", "hosts.check_lock", "hosts.check_logging",
    }  # fmt: skip
    assert specs["hosts.isolate_host"].revert == "hosts.release_host"
    # the containment watch proves each containment again with its declared check
    assert specs["hosts.isolate_host"].verify == "hosts.check_isolation"
    assert specs["hosts.block_ip"].verify == "hosts.check_block"
    assert specs["hosts.lock_account"].verify == "hosts.check_lock"
    assert {specs[f"hosts.check_{n}"].impact for n in ("isolation", "block", "lock")} == {"read"}
    assert specs["hosts.block_ip"].revert == "hosts.unblock_ip"
    assert specs["hosts.lock_account"].revert == "hosts.unlock_account"
    assert specs["hosts.lock_account"].targets == {"host": "host", "user": "account"}
    assert specs["hosts.collect_triage"].impact == "read" and specs["hosts.check_logging"].impact == "read"
    assert all(s.idempotent for s in specs.values())


@pytest.mark.parametrize(
    ("name", "params", "first"),
    [
        ("hosts.isolate_host", {"host": "web1", "deadman_seconds": 30}, ("apply", "--mgmt", "192.0.2.2", "--mgmt",
                                                                          "192.0.2.10", "--log", "192.0.2.9:9200")),
        ("hosts.release_host", {"host": "192.0.2.11"}, ("revert",)),
        ("hosts.block_ip", {"host": "web1", "ip": "203.0.113.7", "expire_seconds": 600},
         ("apply", "203.0.113.7", "--expire", "600")),
        ("hosts.unblock_ip", {"host": "web1", "ip": "203.0.113.0/24"}, ("revert", "203.0.113.0/24")),
        ("hosts.lock_account", {"host": "web1", "user": "mallory", "disable_keys": True},
         ("apply", "mallory", "--disable-keys", "--protect", "backup", "--protect", "soar")),
        ("hosts.unlock_account", {"host": "web1", "user": "mallory"}, ("revert", "mallory")),
        ("hosts.kill_sessions", {"host": "web1", "user": "mallory"},
         ("apply", "mallory", "--protect", "backup", "--protect", "soar")),
        ("hosts.kill_process", {"host": "web1", "pid": 4242, "executable": "/tmp/x"}, ("apply", "4242", "/tmp/x")),
        ("hosts.collect_triage", {"host": "web1", "hash_files": ["/etc/passwd"]}, ("collect", "--hash", "/etc/passwd")),
    ],
)  # fmt: skip
def test_dry_run_lists_the_exact_commands_and_connects_nowhere(
    offline: Settings, name: str, params: dict[str, object], first: tuple[str, ...]
) -> None:
    ctx = ActionContext(settings=offline, dry_run=True)
    result = load_registry(offline).get(name).call(ctx, params)
    assert result.ok, result.error
    assert result.commands[0].host == "web1"
    assert result.commands[0].argv[:6] == ("sudo", "-n", "--", "sh", "-s", "--")
    assert result.commands[0].argv[6 : 6 + len(first)] == first
    assert ctx.resources[RESOURCE_KEY].pool.connects == 0


@pytest.mark.parametrize(
    ("name", "params", "reason"),
    [
        ("hosts.isolate_host", {"host": "web"}, "'web' matches 2 hosts (web2, web3); refusing"),
        ("hosts.isolate_host", {"host": "web9"}, "'web9' matches no host"),
        ("hosts.isolate_host", {"host": "web1", "deadman_seconds": 0}, "parameter deadman_seconds"),
        ("hosts.isolate_host", {"host": "jump"}, "is the bastion of canary, web1, web2, web3; isolating it would cut"),
        ("hosts.block_ip", {"host": "web1", "ip": "192.0.2.0/24"}, "covers the management/log-shipping address"),
        ("hosts.block_ip", {"host": "web1", "ip": "1.2.3.4 && reboot"}, "parameter ip"),
        ("hosts.lock_account", {"host": "web1", "user": "root"}, "root is never locked"),
        ("hosts.lock_account", {"host": "web1", "user": "backup"}, "backup is a protected account"),
        ("hosts.lock_account", {"host": "web1", "user": "soar"}, "the account soar logs in with"),
        ("hosts.kill_sessions", {"host": "web1", "user": "-a"}, "parameter user"),
        ("hosts.kill_process", {"host": "web1", "pid": 1, "executable": "/sbin/init"}, "parameter pid"),
        ("hosts.collect_triage", {"host": "web1", "hash_files": ["/etc/../shadow"]}, "parameter hash_files[0]"),
    ],
)
def test_refusals_carry_the_reason_and_never_connect(
    offline: Settings, name: str, params: dict[str, object], reason: str
) -> None:
    ctx = ActionContext(settings=offline)
    result = load_registry(offline).get(name).call(ctx, params)
    assert not result.ok
    assert reason in result.output["refused"]
    assert result.error is not None and result.error.startswith("refused: ")
    assert ctx.resources[RESOURCE_KEY].pool.connects == 0


def test_a_broken_inventory_is_a_failure_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "inventory.yml").write_text("hosts:\n  a: {address: nope}\n")
    settings = load_settings(content_root=tmp_path, inventory_file=tmp_path / "inventory.yml")
    result = load_registry(settings).get("hosts.isolate_host").call(ActionContext(settings=settings), {"host": "a"})
    assert not result.ok and f"{tmp_path / 'inventory.yml'}:2" in (result.error or "")


def test_evidence_is_written_once_with_its_hash(tmp_path: Path) -> None:
    first = store_evidence(tmp_path, "run-1", "web1", "triage", b"=== processes\n")
    assert Path(first["path"]).read_bytes() == b"=== processes\n"
    assert first["sha256"] == hashlib.sha256(b"=== processes\n").hexdigest()
    assert first["size"] == 14 and first["host"] == "web1"
    assert Path(first["path"]).parent == tmp_path / "evidence" / "run-1"
