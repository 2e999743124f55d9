"""isolate_host / release_host on real lab hosts: the attacker peer is cut off, the management path is not."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from soar.actions import ActionContext, ActionRegistry
from soar.hosts.inventory import Inventory
from soar.hosts.transport import Credentials, SSHOptions
from tests.integration.hosts.conftest import close_context, lab_settings
from tests.integration.hosts.lab import (
    can_connect,
    login,
    nft_ruleset,
    sh_in,
    silent_listener,
    state_left,
    timers_in,
    wait_for,
)

pytestmark = pytest.mark.lab

APP1 = "10.77.0.13"
MGMT_LOG = ("10.77.0.3", 9200)
PEER_LISTENER = ("10.77.0.4", 8080)


def assert_open(options: SSHOptions, inventory: Inventory) -> None:
    assert can_connect("peer", APP1, 22)
    assert can_connect("app1", *PEER_LISTENER)
    assert "soar_isolate" not in nft_ruleset("app1")


def test_isolate_cuts_the_attacker_keeps_management_and_release_restores(
    ctx: ActionContext, registry: ActionRegistry, inventory: Inventory, options: SSHOptions
) -> None:
    assert_open(options, inventory)
    ruleset = nft_ruleset("app1")
    local = silent_listener("app1", "127.0.0.1", 2398)
    result = registry.get("hosts.isolate_host").call(ctx, {"host": "app1.lab.internal", "deadman_seconds": 30})
    try:
        assert result.ok, result.error
        assert result.verified is True
        assert result.changed is True
        assert result.verification["peer_probe"]["reachable"] == "no"
        assert result.verification["management_path"] == "ok"
        assert result.verification["deadman"] == "disarmed"
        # real effects, observed from outside the action
        assert not can_connect("peer", APP1, 22), "the attacker peer still reaches app1"
        assert not can_connect("app1", *PEER_LISTENER), f"app1 still reaches the attacker peer:\n{nft_ruleset('app1')}"
        assert can_connect("mgmt", APP1, 22), "the management peer lost SSH to app1"
        assert can_connect("app1", *MGMT_LOG), "log shipping to the management peer was cut"
        assert can_connect("app1", "127.0.0.1", 2398), "loopback was cut"
        fresh = login(inventory, "app1", Credentials("soar-ctl", inventory.get("app1").key), options)
        assert fresh.run(["true"]).ok
        fresh.close()
        assert timers_in("app1") == [], "the dead-man timer survived the confirmation"

        # apply twice: the same state
        before = nft_ruleset("app1")
        again = registry.get("hosts.isolate_host").call(ctx, {"host": "10.77.0.13", "deadman_seconds": 30})
        assert again.ok and again.verified and again.changed is False
        assert nft_ruleset("app1") == before
    finally:
        released = registry.get("hosts.release_host").call(ctx, {"host": "app1"})
        local.kill()
        local.wait(timeout=5)
    assert released.ok, released.error
    assert released.verified is True and released.changed is True
    assert released.verification["peer_probe"]["reachable"] == "yes"
    assert_open(options, inventory)
    assert nft_ruleset("app1") == ruleset, "release left the ruleset different from before isolation"
    assert timers_in("app1") == []
    assert not state_left("app1"), "responder state was left behind"


def test_release_of_a_host_that_is_not_isolated_changes_nothing(ctx: ActionContext, registry: ActionRegistry) -> None:
    before = nft_ruleset("db1")
    result = registry.get("hosts.release_host").call(ctx, {"host": "db1"})
    assert result.ok and result.verified and result.changed is False
    assert nft_ruleset("db1") == before


def test_dry_run_plans_the_exact_commands_and_touches_nothing(
    lab_settings_: object, registry: ActionRegistry, ctx: ActionContext
) -> None:
    ctx.dry_run = True
    result = registry.get("hosts.isolate_host").call(ctx, {"host": "app1", "deadman_seconds": 10})
    assert result.ok
    steps = [(c.host, c.note, c.stdin_script) for c in result.commands]
    assert steps == [
        ("app1", "isolate apply", "responders/isolate.sh"),
        ("app1", "isolate verify", "responders/isolate.sh"),
        ("peer", "probe check", "responders/probe.sh"),
        ("app1", "isolate confirm", "responders/isolate.sh"),
    ]
    assert result.commands[2].argv == ("sh", "-s", "--", "check", "10.77.0.13", "22", "1")  # a probe needs no sudo
    apply = result.commands[0].argv
    assert apply[:6] == ("sudo", "-n", "--", "sh", "-s", "--")
    assert apply[7:9] == ("--mgmt", "10.77.0.2")  # the bastion as app1 sees it
    assert "--deadman" in apply and apply[apply.index("--deadman") + 1] == "10"
    assert "soar_isolate" not in nft_ruleset("app1")
    runner = ctx.resources["soar.hosts.runner"]
    assert runner.pool.connects == 0


def test_ssh_dropped_mid_apply_the_deadman_timer_restores_the_host(
    tmp_path: Path, lab_inventory_path: Path, registry: ActionRegistry
) -> None:
    # An inventory mistake: app1's real management path (the bastion's back address 10.77.0.2) is missing,
    # so applying the rules cuts our own connection in the middle of `apply`.
    data = yaml.safe_load(lab_inventory_path.read_text())
    data["defaults"]["management"] = ["10.77.0.3"]
    data["hosts"]["bastion"]["aliases"] = []
    data["defaults"]["key"] = str(lab_inventory_path.parent / "id_ed25519")
    broken = tmp_path / "inventory.yml"
    broken.write_text(yaml.safe_dump(data))
    settings = lab_settings(tmp_path, broken, ssh_command_timeout=4.0)
    ctx = ActionContext(settings=settings, run_id="deadman")
    deadman = 8
    try:
        started = time.monotonic()
        result = registry.get("hosts.isolate_host").call(ctx, {"host": "app1", "deadman_seconds": deadman})
        assert not result.ok
        assert result.verified is False
        assert "dead-man timer restores the host" in (result.error or "")
        assert result.commands and result.commands[0].argv[6] == "apply"
        # the rules did go in (the attacker is cut) ...
        if time.monotonic() - started < deadman - 1:
            assert "soar_isolate" in nft_ruleset("app1")
        # ... and the host restores itself without the controller
        assert wait_for(lambda: "soar_isolate" not in nft_ruleset("app1"), deadman + 5)
        assert can_connect("peer", APP1, 22)
        assert wait_for(lambda: timers_in("app1") == [], 5), "the dead-man timer did not finish"
        assert not state_left("app1")
    finally:
        close_context(ctx)
        sh_in("app1", "nft", "delete", "table", "inet", "soar_isolate")


def test_release_after_a_duration(ctx: ActionContext, registry: ActionRegistry) -> None:
    result = registry.get("hosts.isolate_host").call(ctx, {"host": "db1", "deadman_seconds": 30, "release_after": 8})
    try:
        assert result.ok and result.verified
        assert not can_connect("peer", "10.77.0.12", 22)
        assert wait_for(lambda: can_connect("peer", "10.77.0.12", 22, seconds=1), 12)
        assert "soar_isolate" not in nft_ruleset("db1")
        # the release timer took everything with it: no timer, no state left on the host
        assert wait_for(lambda: timers_in("db1") == [] and not state_left("db1"), 5)
    finally:
        registry.get("hosts.release_host").call(ctx, {"host": "db1"})


def test_iptables_backend_and_release_leaves_nothing_it_created(ctx: ActionContext, registry: ActionRegistry) -> None:
    ruleset = nft_ruleset("db1")  # iptables here is iptables-nft: what it creates shows in the nft ruleset
    assert "table ip filter" not in ruleset, "a filter table is left on db1 from elsewhere; this test needs none"
    result = registry.get("hosts.isolate_host").call(ctx, {"host": "db1", "deadman_seconds": 30, "backend": "iptables"})
    try:
        assert result.ok, result.error
        assert result.verified
        assert "SOAR-ISO-IN" in sh_in("db1", "iptables", "-S", check=True).stdout
        # apply twice: the same rules in both families
        rules = [sh_in("db1", tool, "-S", check=True).stdout for tool in ("iptables", "ip6tables")]
        again = registry.get("hosts.isolate_host").call(ctx, {"host": "db1", "deadman_seconds": 30})
        assert again.ok and again.verified and again.changed is False, again.error
        assert [sh_in("db1", tool, "-S", check=True).stdout for tool in ("iptables", "ip6tables")] == rules
        assert timers_in("db1") == []
        during = nft_ruleset("db1")
        assert "table ip filter" in during and "table ip6 filter" in during  # IPv6 is cut off too
        assert not can_connect("peer", "10.77.0.12", 22)
        assert can_connect("mgmt", "10.77.0.12", 22)
    finally:
        released = registry.get("hosts.release_host").call(ctx, {"host": "db1"})
    assert released.ok and released.verified
    assert "SOAR" not in sh_in("db1", "iptables", "-S", check=True).stdout
    # not even the empty filter table and hooked chains that iptables-nft created for the first rule
    assert nft_ruleset("db1") == ruleset
    assert can_connect("peer", "10.77.0.12", 22)
    assert not state_left("db1")
