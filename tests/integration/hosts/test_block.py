"""block_ip / unblock_ip: the blocked peer really cannot connect; expiry really expires."""

from __future__ import annotations

import pytest

from soar.actions import ActionContext, ActionRegistry
from tests.integration.hosts.lab import can_connect, nft_ruleset, sh_in, state_left, timers_in, wait_for

pytestmark = pytest.mark.lab

PEER = "10.77.0.4"
APP1 = "10.77.0.13"
DB1 = "10.77.0.12"


def wait_until_reachable(src: str, addr: str, seconds: float) -> bool:
    return wait_for(lambda: can_connect(src, addr, 22, seconds=1), seconds)


def test_block_and_unblock_the_attacker_peer(ctx: ActionContext, registry: ActionRegistry) -> None:
    assert can_connect("peer", APP1, 22)
    ruleset = nft_ruleset("app1")
    result = registry.get("hosts.block_ip").call(ctx, {"host": "app1", "ip": PEER})
    try:
        assert result.ok, result.error
        assert result.verified is True and result.changed is True
        assert result.verification["peer_probe"]["reachable"] == "no"
        assert not can_connect("peer", APP1, 22)
        assert can_connect("mgmt", APP1, 22)
        blocked = nft_ruleset("app1")
        again = registry.get("hosts.block_ip").call(ctx, {"host": "app1", "ip": PEER})
        assert again.ok and again.changed is False
        assert nft_ruleset("app1") == blocked  # apply twice: the same state
    finally:
        unblocked = registry.get("hosts.unblock_ip").call(ctx, {"host": "app1", "ip": PEER})
    assert unblocked.ok and unblocked.verified and unblocked.changed is True
    assert can_connect("peer", APP1, 22)
    assert nft_ruleset("app1") == ruleset, "unblock left the ruleset different from before the block"
    twice = registry.get("hosts.unblock_ip").call(ctx, {"host": "app1", "ip": PEER})
    assert twice.ok and twice.changed is False


def test_a_block_with_expiry_lifts_itself(ctx: ActionContext, registry: ActionRegistry) -> None:
    result = registry.get("hosts.block_ip").call(ctx, {"host": "db1", "ip": "10.77.0.4/30", "expire_seconds": 4})
    try:
        assert result.ok and result.verified
        assert not can_connect("peer", DB1, 22, seconds=1)
        assert wait_until_reachable("peer", DB1, 10)
    finally:
        registry.get("hosts.unblock_ip").call(ctx, {"host": "db1", "ip": "10.77.0.4/30"})
    assert "soar_block" not in nft_ruleset("db1")


def test_iptables_block_with_expiry_lifts_itself_and_leaves_nothing(
    ctx: ActionContext, registry: ActionRegistry
) -> None:
    """iptables has no element timeouts: the expiry is a timer on the host running the address's revert."""
    ruleset = nft_ruleset("db1")  # iptables-nft: its tables and chains show in the nft ruleset
    assert "table ip filter" not in ruleset, "a filter table is left on db1 from elsewhere; this test needs none"
    args = {"host": "db1", "ip": PEER, "expire_seconds": 4, "backend": "iptables"}
    result = registry.get("hosts.block_ip").call(ctx, args)
    try:
        assert result.ok, result.error
        assert result.verified is True and result.output["backend"] == "iptables"
        assert result.verification["peer_probe"]["reachable"] == "no"
        rules = sh_in("db1", "iptables", "-S", check=True).stdout
        assert f"-A SOAR-BLOCK-IN -s {PEER}/32 -j DROP" in rules
        assert "soar_block" not in nft_ruleset("db1")  # the iptables path, not nft's set
        assert len(timers_in("db1")) == 1, "no expiry timer on the host"
        assert not can_connect("peer", DB1, 22, seconds=1)
        assert can_connect("mgmt", DB1, 22)
        # the block lifts itself on the host, with no controller involved, and takes everything with it
        assert wait_until_reachable("peer", DB1, 12)
        assert wait_for(lambda: nft_ruleset("db1") == ruleset, 5), nft_ruleset("db1")
        assert timers_in("db1") == []
        assert not state_left("db1")
        after = registry.get("hosts.unblock_ip").call(ctx, {"host": "db1", "ip": PEER})
        assert after.ok and after.changed is False
    finally:
        registry.get("hosts.unblock_ip").call(ctx, {"host": "db1", "ip": PEER})
    assert nft_ruleset("db1") == ruleset


def test_iptables_unblock_before_expiry_stops_the_timer(ctx: ActionContext, registry: ActionRegistry) -> None:
    ruleset = nft_ruleset("db1")
    args = {"host": "db1", "ip": PEER, "expire_seconds": 600, "backend": "iptables"}
    try:
        assert registry.get("hosts.block_ip").call(ctx, args).verified is True
        rules = sh_in("db1", "iptables", "-S", check=True).stdout
        again = registry.get("hosts.block_ip").call(ctx, args)
        assert again.ok and again.changed is False
        assert sh_in("db1", "iptables", "-S", check=True).stdout == rules  # apply twice: the same rules
        assert len(timers_in("db1")) == 1, "a second apply must replace the expiry timer, not add one"
    finally:
        unblocked = registry.get("hosts.unblock_ip").call(ctx, {"host": "db1", "ip": PEER})
    assert unblocked.ok and unblocked.verified and unblocked.changed is True
    assert timers_in("db1") == []
    assert nft_ruleset("db1") == ruleset
    assert not state_left("db1")


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


def test_a_range_is_blocked_and_unblocked_as_its_networks(ctx: ActionContext, registry: ActionRegistry) -> None:
    """A ``first-last`` range (policy judges it by overlap) is blocked as approved: as the CIDRs it is made of."""
    ruleset = nft_ruleset("app1")
    result = registry.get("hosts.block_ip").call(ctx, {"host": "app1", "ip": "10.77.0.4-10.77.0.6"})
    try:
        assert result.ok, result.error
        assert result.output["networks"] == ["10.77.0.4/31", "10.77.0.6"]
        assert result.verified is True and result.changed is True
        assert set(result.verification) == {"10.77.0.4/31", "10.77.0.6"}
        assert result.verification["10.77.0.4/31"]["peer_probe"]["reachable"] == "no"
        assert not can_connect("peer", APP1, 22, seconds=1)
        assert can_connect("mgmt", APP1, 22)
    finally:
        unblocked = registry.get("hosts.unblock_ip").call(ctx, {"host": "app1", "ip": "10.77.0.4-10.77.0.6"})
    assert unblocked.ok and unblocked.verified and unblocked.changed is True
    assert can_connect("peer", APP1, 22)
    assert nft_ruleset("app1") == ruleset


def test_a_range_over_the_management_path_is_refused(ctx: ActionContext, registry: ActionRegistry) -> None:
    result = registry.get("hosts.block_ip").call(ctx, {"host": "app1", "ip": "10.77.0.1-10.77.0.4"})
    assert not result.ok and "management" in result.output["refused"]
    assert ctx.resources["soar.hosts.runner"].pool.connects == 0
