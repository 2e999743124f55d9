"""Containment that survives a reboot (issue #20 item 3), on real lab hosts.

A reboot of a lab host is simulated as what a reboot does to soar's containment: the kernel's rules are gone
(``nft flush ruleset``), the timers are gone (killed) and ``/run`` is empty (the responder state directory removed);
``/var/lib`` stays. Then the boot hook runs in the host's namespace, as soar-containment.service runs it at boot.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from soar.actions import ActionContext, ActionRegistry
from tests.integration.hosts.lab import can_connect, nft_ruleset, ns, sh_in, timers_in, wait_for

pytestmark = pytest.mark.lab

PEER = "10.77.0.4"
APP1 = "10.77.0.13"
DB1 = "10.77.0.12"
PERSIST_ROOT = Path("/var/lib/soar-containment")
BOOT_HOOK = PERSIST_ROOT / "boot.sh"


def netns_inode(name: str) -> str:
    return sh_in(name, "stat", "-L", "-c", "%i", "/proc/self/ns/net", check=True).stdout.strip()


def persisted(name: str) -> list[str]:
    folder = PERSIST_ROOT / f"net-{netns_inode(name)}"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def reboot(name: str) -> None:
    """What a reboot does to soar's containment on ``name``: rules, timers and /run gone; /var/lib kept."""
    pids = subprocess.run(["ip", "netns", "pids", ns(name)], capture_output=True, text=True).stdout.split()
    for pid in pids:
        with contextlib.suppress(OSError):  # gone meanwhile
            if b"soar-timer" in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(int(pid), signal.SIGKILL)
    sh_in(name, "nft", "flush", "ruleset", check=True)
    shutil.rmtree(Path("/run/soar") / f"net-{netns_inode(name)}", ignore_errors=True)


def boot(name: str) -> str:
    """Run the boot hook in the host's namespace, as the unit does at boot; its output."""
    if not BOOT_HOOK.is_file():
        return "no boot hook"
    done = sh_in(name, "sh", str(BOOT_HOOK), timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_an_isolation_comes_back_after_a_reboot_and_a_release_leaves_nothing(
    ctx: ActionContext, registry: ActionRegistry
) -> None:
    ruleset = nft_ruleset("app1")
    result = registry.get("hosts.isolate_host").call(
        ctx, {"host": "app1", "deadman_seconds": 30, "boot_deadman_seconds": 600}
    )
    try:
        assert result.ok, result.error
        assert result.output["persisted"] is True and result.output["boot_hook"]
        assert persisted("app1") == ["isolate.args", "isolate.sh"]
        assert BOOT_HOOK.is_file()

        reboot("app1")
        assert can_connect("peer", APP1, 22), "the simulated reboot left the isolation in place"
        out = boot("app1")
        assert "booted=yes" in out
        assert not can_connect("peer", APP1, 22, seconds=1), "the isolation did not come back at boot"
        assert can_connect("mgmt", APP1, 22), "the management path is closed after the boot"
        assert "soar_isolate" in nft_ruleset("app1")
        assert len(timers_in("app1")) == 1, "the boot did not re-arm the dead-man timer"
    finally:
        released = registry.get("hosts.release_host").call(ctx, {"host": "app1"})
    assert released.ok and released.verified, released.error
    assert persisted("app1") == []
    assert not PERSIST_ROOT.exists(), f"left behind: {list(PERSIST_ROOT.rglob('*'))}"
    reboot("app1")
    assert boot("app1") == "no boot hook"
    assert can_connect("peer", APP1, 22)
    assert nft_ruleset("app1") == ruleset or "soar_isolate" not in nft_ruleset("app1")


def test_an_isolation_nobody_confirms_after_the_boot_lifts_itself_and_its_persistence(
    ctx: ActionContext, registry: ActionRegistry
) -> None:
    """The boot re-arms the dead-man timer: an isolation cannot outlive a lost controller after a reboot."""
    result = registry.get("hosts.isolate_host").call(ctx, {"host": "app1", "boot_deadman_seconds": 10})
    try:
        assert result.ok, result.error
        reboot("app1")
        boot("app1")
        assert not can_connect("peer", APP1, 22, seconds=1)
        assert wait_for(lambda: can_connect("peer", APP1, 22, seconds=1), 25), "the boot dead-man did not restore"
        assert wait_for(lambda: persisted("app1") == [], 5)
        assert not PERSIST_ROOT.exists()
    finally:
        registry.get("hosts.release_host").call(ctx, {"host": "app1"})


def test_a_block_comes_back_after_a_reboot_an_expired_one_does_not(
    ctx: ActionContext, registry: ActionRegistry
) -> None:
    kept = registry.get("hosts.block_ip").call(ctx, {"host": "db1", "ip": PEER})
    lapsing = registry.get("hosts.block_ip").call(ctx, {"host": "db1", "ip": "10.77.0.9", "expire_seconds": 2})
    try:
        assert kept.ok and lapsing.ok, (kept.error, lapsing.error)
        assert kept.output["persisted"] is True
        assert len([n for n in persisted("db1") if n.startswith("block-")]) == 2
        time.sleep(3)  # the second block's expiry passes "while the host is down"
        reboot("db1")
        assert can_connect("peer", DB1, 22)
        assert "booted=yes" in boot("db1")
        assert not can_connect("peer", DB1, 22, seconds=1), "the block did not come back at boot"
        assert "10.77.0.9" not in nft_ruleset("db1"), "an expired block came back"
        assert persisted("db1") == ["block-10.77.0.4.args", "block_ip.sh"]
    finally:
        unblocked = registry.get("hosts.unblock_ip").call(ctx, {"host": "db1", "ip": PEER})
        registry.get("hosts.unblock_ip").call(ctx, {"host": "db1", "ip": "10.77.0.9"})
    assert unblocked.ok and unblocked.verified
    assert persisted("db1") == [] and not PERSIST_ROOT.exists()
    assert can_connect("peer", DB1, 22)


def test_without_persist_nothing_is_kept(ctx: ActionContext, registry: ActionRegistry) -> None:
    result = registry.get("hosts.block_ip").call(ctx, {"host": "db1", "ip": PEER, "persist": False})
    try:
        assert result.ok and result.output["persisted"] is False
        assert persisted("db1") == [] and not PERSIST_ROOT.exists()
    finally:
        registry.get("hosts.unblock_ip").call(ctx, {"host": "db1", "ip": PEER})
