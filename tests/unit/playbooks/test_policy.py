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
