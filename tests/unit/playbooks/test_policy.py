"""The safety policy: protected targets, attribute-based approvals, blast radius, breaker, rate caps."""

from __future__ import annotations

from pathlib import Path

import pytest

from soar.errors import ContentError
from soar.playbooks.model import Approval
from soar.policy import Policy, StepFacts, Target, decide, load_policy, protected_reason

REPO = Path(__file__).resolve().parents[3]

POLICY = Policy.model_validate(
    {
        "protected": {
            "hosts": ["bastion*", "dc-*"],
            "networks": ["10.0.0.0/24"],
            "labels": {"role": ["domain-controller"]},
            "accounts": ["root", "breakglass*"],
        },
        "approvals": [
            {"name": "prod", "labels": {"env": "prod"}, "approvals": 1},
            {"name": "crit", "labels": {"criticality": ["high", "critical"]}, "approvals": 2, "roles": ["admin"]},
        ],
        "blast_radius": {"max_targets_per_run": 2},
    }
)


def host(name: str, address: str = "10.1.1.1", **labels: str) -> Target:
    return Target("host", name, name=name, address=address, labels=labels)


@pytest.mark.parametrize(
    ("target", "why"),
    [
        (host("bastion-2"), "matches 'bastion*'"),
        (host("web1", "10.0.0.7"), "address in 10.0.0.0/24"),
        (host("ad1", role="domain-controller"), "label role=domain-controller"),
        (Target("account", "root"), "matches 'root'"),
        (Target("account", "breakglass-ops"), "matches 'breakglass*'"),
        (Target("ip", "10.0.0.9"), "in 10.0.0.0/24"),
        (Target("account", "svc", protected_accounts=("svc",)), "matches 'svc'"),
    ],
)
def test_protected_targets(target: Target, why: str) -> None:
    reason = protected_reason(POLICY, target)
    assert reason is not None and why in reason
    d = decide(POLICY, StepFacts("hosts.isolate_host", "contain", [target], run_targets=1))
    assert d.outcome == "refuse" and why in d.reasons[0]


def test_unprotected_and_notifications_pass() -> None:
    assert protected_reason(POLICY, host("web1")) is None
    assert (
        decide(POLICY, StepFacts("hosts.isolate_host", "contain", [host("web1", env="dev")], run_targets=1)).outcome
        == "allow"
    )
    # notification never needs approval, even on a protected or prod target
    assert decide(POLICY, StepFacts("slack.notify", "notify", [host("bastion-1", env="prod")])).outcome == "allow"


def test_attribute_rules_strictest_wins() -> None:
    prod = decide(POLICY, StepFacts("hosts.isolate_host", "contain", [host("web1", env="prod")], run_targets=1))
    assert (prod.outcome, prod.approvals) == ("approve", 1)
    both = decide(
        POLICY, StepFacts("hosts.isolate_host", "contain", [host("db", env="prod", criticality="high")], run_targets=1)
    )
    assert (both.outcome, both.approvals) == ("approve", 2) and "admin" in both.roles
    asked = decide(POLICY, StepFacts("x.y", "read", [], requested=Approval(approvals=3, roles=("lead",))))
    assert (asked.outcome, asked.approvals, asked.roles) == ("approve", 3, ("lead",))


def test_blast_radius_breaker_and_rate_cap() -> None:
    wide = decide(POLICY, StepFacts("hosts.isolate_host", "contain", [host("w3")], run_targets=3))
    assert wide.outcome == "refuse" and "blast radius" in wide.reasons[0]
    broken = decide(POLICY, StepFacts("hosts.isolate_host", "contain", [host("w1")], run_targets=1, breaker_open=True))
    assert broken.outcome == "approve" and "circuit breaker open" in broken.reasons[0]
    capped = decide(
        POLICY, StepFacts("hosts.isolate_host", "contain", [host("w1")], run_targets=1, rate_capped="rate cap: 5")
    )
    assert capped.outcome == "approve" and capped.reasons == ("rate cap: 5",)


def test_policy_file_errors_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "policy.yml"
    path.write_text("protected:\n  networks: [10.0.0.0/8, not-a-net]\n", encoding="utf-8")
    with pytest.raises(ContentError, match=r"policy.yml:2: protected.networks: 'not-a-net' is not a CIDR"):
        load_policy(path)
    path.write_text("rate_caps:\n  contain_per_hour: 5\n  per_day: 3\n", encoding="utf-8")
    with pytest.raises(ContentError, match=r"policy.yml:3: rate_caps.per_day: unknown key"):
        load_policy(path)
    assert load_policy(tmp_path / "missing.yml").protected.accounts == ("root",)


def test_shipped_policy_loads() -> None:
    policy = load_policy(REPO / "policy.yml")
    assert "root" in policy.protected.accounts and policy.rate_caps.contain_per_hour


# -- addresses from alert data are judged by what they cover (issue #15) ------------------------------------------

WIDE = Policy.model_validate({"protected": {"networks": ["10.0.0.0/8"]}})


def block(value: str, policy: Policy = WIDE) -> tuple[str, str]:
    d = decide(
        policy, StepFacts("hosts.block_ip", "contain", [host("web1", "192.0.2.10"), Target("ip", value)], run_targets=1)
    )
    return d.outcome, " | ".join(d.reasons)


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("10.0.0.0/8", "is protected (overlaps 10.0.0.0/8)"),  # the network itself, not one address in it
        ("0.0.0.0/1", "is protected (overlaps 10.0.0.0/8)"),
        ("8.0.0.0/6", "is protected (overlaps 10.0.0.0/8)"),
        ("10.200.0.0/16", "is protected (overlaps 10.0.0.0/8)"),
        ("10.0.0.1-10.0.0.9", "is protected (overlaps 10.0.0.0/8)"),
        ("9.255.255.250-10.0.0.0", "is protected (overlaps 10.0.0.0/8)"),
        ("::ffff:10.0.0.7", "is protected (in 10.0.0.0/8)"),  # IPv4-mapped IPv6 is the IPv4 address
        ("::ffff:10.0.0.0/104", "is protected (overlaps 10.0.0.0/8)"),
        ("0.0.0.0/0", "covers every address (0.0.0.0/0): never blocked"),
        ("::/0", "covers every address (::/0): never blocked"),
        ("::ffff:0:0/96", "covers every address (0.0.0.0/0): never blocked"),
        ("::/80", "covers every IPv4 address"),
        # IPv6 forms that carry an IPv4 address reach it: 6to4 (2002:0a00:0007::/48 is 10.0.0.7) and NAT64
        ("2002:0a00:0007::1", "is protected (overlaps 10.0.0.0/8)"),
        ("2002:0a00::/24", "is protected (overlaps 10.0.0.0/8)"),
        ("64:ff9b::10.0.0.7", "is protected (overlaps 10.0.0.0/8)"),
        ("64:ff9b::/96", "covers every address (0.0.0.0/0): never blocked"),
        ("2002::/16", "covers every address (0.0.0.0/0): never blocked"),
        ("2000::/3", "covers every address (0.0.0.0/0): never blocked"),  # holds the whole 6to4 prefix
        ("0.0.0.0-255.255.255.255", "covers every address (0.0.0.0/0)"),
        ("not-an-ip", "ip 'not-an-ip' is not an IP address, CIDR or range"),
        ("10.0.0.300", "ip '10.0.0.300' is not an IP address, CIDR or range"),
        ("1.2.3.4/33", "ip '1.2.3.4/33' is not an IP address, CIDR or range"),
        ("10.0.0.9-10.0.0.1", "ip '10.0.0.9-10.0.0.1' is not an IP address, CIDR or range"),
        ("10.0.0.1-::1", "ip '10.0.0.1-::1' is not an IP address, CIDR or range"),
        ("", "ip '' is not an IP address, CIDR or range"),
    ],
)
def test_attacker_addresses_are_refused(value: str, why: str) -> None:
    outcome, reasons = block(value)
    assert outcome == "refuse" and why in reasons, reasons


def test_every_address_is_refused_whatever_the_policy_says() -> None:
    lax = Policy.model_validate({"ip_blocks": {"approve_wider_than": {"ipv4": 1, "ipv6": 1}}})
    for value in ("0.0.0.0/0", "::/0", "::ffff:0:0/96"):
        assert block(value, lax)[0] == "refuse"
    # with nothing protected, a /1 is not everything: a person decides
    outcome, reasons = block("0.0.0.0/1", Policy())
    assert outcome == "approve" and "wider than a /24" in reasons


@pytest.mark.parametrize(
    ("value", "outcome"),
    [
        ("203.0.113.7", "allow"),
        (" 203.0.113.7 ", "allow"),
        ("203.0.113.0/24", "allow"),
        ("203.0.113.1-203.0.113.254", "allow"),
        ("2001:db8::7", "allow"),
        ("2001:db8:0:1::/64", "allow"),
        ("::ffff:203.0.113.7", "allow"),
        ("2002:cb00:7107::1", "allow"),  # 6to4 of 203.0.113.7: one address either way
        ("64:ff9b::203.0.113.7", "allow"),
        ("64:ff9b::cb00:7100/120", "allow"),  # NAT64 of 203.0.113.0/24
        ("64:ff9b::cb00:7000/119", "approve"),  # NAT64 of a /23: wider than a /24
        ("11.0.0.1", "allow"),  # next to the protected network, not in it
        ("203.0.112.0/23", "approve"),
        ("203.0.112.0-203.0.113.0", "approve"),  # 257 addresses: more than a /24
        ("198.51.0.0/16", "approve"),
        ("2001:db8::/48", "approve"),
    ],
)
def test_narrow_blocks_pass_and_wide_ones_need_approval(value: str, outcome: str) -> None:
    got, reasons = block(value)
    assert got == outcome, reasons
    if outcome == "approve":
        d = decide(WIDE, StepFacts("hosts.block_ip", "contain", [Target("ip", value)], run_targets=1))
        assert d.approvals == 1 and d.roles == ("admin", "approver") and "blocks that wide need approval" in reasons


def test_wide_block_prefix_is_configurable() -> None:
    narrow = Policy.model_validate({"ip_blocks": {"approve_wider_than": {"ipv4": 32, "ipv6": 128}}})
    assert block("203.0.113.7", narrow)[0] == "allow"
    assert block("203.0.113.6/31", narrow)[0] == "approve"
    assert block("2001:db8::6/127", narrow)[0] == "approve"
    wide = Policy.model_validate({"ip_blocks": {"approve_wider_than": {"ipv4": 16}}})
    assert block("198.51.0.0/16", wide)[0] == "allow" and block("198.50.0.0/15", wide)[0] == "approve"
    # reads and notifications naming an address are never gated
    d = decide(WIDE, StepFacts("x.lookup", "read", [Target("ip", "10.0.0.0/8")]))
    assert d.outcome == "allow"


def test_protected_network_overlaps_a_host_value() -> None:
    # a host parameter holding a network (unresolved by the inventory) is judged by overlap too
    assert protected_reason(WIDE, Target("host", "10.0.0.0/8")) is not None
    assert protected_reason(WIDE, Target("host", "web9")) is None


def test_wide_block_setting_errors_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "policy.yml"
    path.write_text("ip_blocks:\n  approve_wider_than:\n    ipv4: 24\n    ipv6: 129\n", encoding="utf-8")
    with pytest.raises(ContentError, match=r"policy.yml:4: ip_blocks.approve_wider_than.ipv6: .*128"):
        load_policy(path)
    path.write_text("ip_blocks:\n  approve_wider_than: {ipv4: 0}\n", encoding="utf-8")
    with pytest.raises(ContentError, match=r"policy.yml:2: ip_blocks.approve_wider_than.ipv4: .*1"):
        load_policy(path)
    path.write_text("ip_blocks:\n  wider_than: 24\n", encoding="utf-8")
    with pytest.raises(ContentError, match=r"policy.yml:2: ip_blocks.wider_than: unknown key"):
        load_policy(path)
    assert load_policy(REPO / "policy.yml").ip_blocks.approve_wider_than.ipv4 == 24
