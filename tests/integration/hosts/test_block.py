"""block_ip / unblock_ip: the blocked peer really cannot connect; expiry really expires."""

from __future__ import annotations

import time

import pytest

from soar.actions import ActionContext, ActionRegistry
from tests.integration.hosts.lab import can_connect, nft_ruleset

pytestmark = pytest.mark.lab

PEER = "10.77.0.4"
APP1 = "10.77.0.13"


def test_block_and_unblock_the_attacker_peer(ctx: ActionContext, registry: ActionRegistry) -> None:
    assert can_connect("peer", APP1, 22)
    result = registry.get("hosts.block_ip").call(ctx, {"host": "app1", "ip": PEER})
    try:
        assert result.ok, result.error
        assert result.verified is True and result.changed is True
        assert result.verification["peer_probe"]["reachable"] == "no"
        assert not can_connect("peer", APP1, 22)
        assert can_connect("mgmt", APP1, 22)
        again = registry.get("hosts.block_ip").call(ctx, {"host": "app1", "ip": PEER})
        assert again.ok and again.changed is False
    finally:
        unblocked = registry.get("hosts.unblock_ip").call(ctx, {"host": "app1", "ip": PEER})
    assert unblocked.ok and unblocked.verified and unblocked.changed is True
    assert can_connect("peer", APP1, 22)
    assert "soar_block" not in nft_ruleset("app1"), "an empty block table was left behind"
    twice = registry.get("hosts.unblock_ip").call(ctx, {"host": "app1", "ip": PEER})
    assert twice.ok and twice.changed is False


def test_a_block_with_expiry_lifts_itself(ctx: ActionContext, registry: ActionRegistry) -> None:
    result = registry.get("hosts.block_ip").call(ctx, {"host": "db1", "ip": "10.77.0.4/30", "expire_seconds": 4})
    try:
        assert result.ok and result.verified
        assert not can_connect("peer", "10.77.0.12", 22, seconds=1)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not can_connect("peer", "10.77.0.12", 22, seconds=1):
            time.sleep(0.5)
        assert can_connect("peer", "10.77.0.12", 22)
    finally:
        registry.get("hosts.unblock_ip").call(ctx, {"host": "db1", "ip": "10.77.0.4/30"})
    assert "soar_block" not in nft_ruleset("db1")


@pytest.mark.parametrize("ip", ["10.77.0.2", "10.77.0.0/24", "10.77.0.3"])
def test_blocking_the_management_path_is_refused(ctx: ActionContext, registry: ActionRegistry, ip: str) -> None:
    result = registry.get("hosts.block_ip").call(ctx, {"host": "app1", "ip": ip})
    assert not result.ok
    assert "management" in result.output["refused"]
    assert ctx.resources["soar.hosts.runner"].pool.connects == 0


@pytest.mark.parametrize("ip", ["10.77.0.4; reboot", "10.77.0.4/33", "$(id)", "10.77.0.256", "-1"])
def test_invalid_addresses_are_refused(ctx: ActionContext, registry: ActionRegistry, ip: str) -> None:
    result = registry.get("hosts.block_ip").call(ctx, {"host": "app1", "ip": ip})
    assert not result.ok and "parameter ip" in result.output["refused"]
    assert ctx.resources["soar.hosts.runner"].pool.connects == 0
