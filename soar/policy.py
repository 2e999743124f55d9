"""The safety policy: what automation may touch, when a person must approve, and how much at once.

One file in the content root (``policy.yml``). The decision is a pure function of
the policy and the facts of one step (its action's impact, its targets with their
inventory labels, the run's blast radius so far, the circuit breaker); the engine
gathers the facts, reserves rate-cap slots in the store and records every refusal.

    protected:            never contained automatically
      hosts: [bastion*, dc-*]            names, aliases or globs
      networks: [10.0.0.0/24]            CIDRs: hosts inside, and no block overlapping them
      labels: {role: [bastion, domain-controller]}
      accounts: [root, breakglass*]      globs
    approvals:            attribute-based: the first rules that match decide (the strictest wins)
      - {name: prod, impact: [contain, destructive], labels: {env: prod}, approvals: 1, roles: [approver, admin]}
    rate_caps: {contain_per_hour: 20, contain_per_rule_per_hour: 5}
    blast_radius: {max_targets_per_run: 5}
    circuit_breaker: {failures_in_a_row: 3, pause_minutes: 30}
    ip_blocks: {approve_wider_than: {ipv4: 24, ipv6: 64}}   wider blocks need an approval
    separation_of_duties: {runs: true, exceptions: true}   who asked may not approve (default on)
    containment_watch:    what a drifted containment gets (soar.containment)
      on_drift: repair                   repair: re-apply at once under the run's approvals; ask: an alert, no re-apply
      max_repairs: 3                     repairs of one containment before a drift escalates instead
      escalate_unreachable_after: 3      looks in a row the management path did not answer, then escalate

An address a containment step targets (an ``ip`` target: an address, CIDR or ``first-last``
range, from alert data) is judged by what it covers (``soar.breadth``): refused when it overlaps a
protected network, when it is not an address at all, or when it covers every address (``0.0.0.0/0``,
``::/0``: never, whatever the policy says); wider than ``ip_blocks.approve_wider_than`` it needs an
approval.
"""

from __future__ import annotations

import fnmatch
import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from soar import _yaml
from soar.breadth import Network, addresses, covers_everything, parse_spec
from soar.errors import ContentError, SourceLocation

Outcome = Literal["allow", "approve", "refuse"]
ImpactName = Literal["read", "notify", "contain", "destructive"]
GATED_IMPACTS: tuple[ImpactName, ...] = ("contain", "destructive")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Protected(_Strict):
    hosts: tuple[str, ...] = ()
    networks: tuple[str, ...] = ()
    labels: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    accounts: tuple[str, ...] = ("root",)

    @field_validator("networks")
    @classmethod
    def _cidrs(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        for v in values:
            try:
                ipaddress.ip_network(v, strict=False)
            except ValueError:
                raise ValueError(f"{v!r} is not a CIDR") from None
        return values


class ApprovalRule(_Strict):
    name: str
    impact: tuple[ImpactName, ...] = GATED_IMPACTS
    labels: dict[str, tuple[str, ...] | str] = Field(default_factory=dict)
    actions: tuple[str, ...] = ()  # globs of action names; empty = any
    approvals: int = Field(1, ge=1, le=10)
    roles: tuple[str, ...] = ("approver", "admin")
    timeout: float = Field(3600, gt=0)


class RateCaps(_Strict):
    contain_per_hour: int | None = Field(None, ge=0)
    contain_per_rule_per_hour: int | None = Field(None, ge=0)


class BlastRadius(_Strict):
    max_targets_per_run: int | None = Field(None, ge=1)


class CircuitBreaker(_Strict):
    failures_in_a_row: int = Field(3, ge=1)
    pause_minutes: float = Field(30, gt=0)


class WidePrefixes(_Strict):
    ipv4: int = Field(24, ge=1, le=32)
    ipv6: int = Field(64, ge=1, le=128)


class IpBlocks(_Strict):
    # a block covering more addresses than one network of this prefix needs an approval
    approve_wider_than: WidePrefixes = Field(default_factory=lambda: WidePrefixes.model_validate({}))


class SeparationOfDuties(_Strict):
    """The principal who started a run (or ingested its alert) may not approve its steps; an exception's
    proposer may not approve it. On by default: turning it off is a written, reviewable policy change."""

    runs: bool = True
    exceptions: bool = True


class ContainmentWatch(_Strict):
    on_drift: Literal["repair", "ask"] = "repair"
    max_repairs: int = Field(3, ge=0, le=100)
    escalate_unreachable_after: int = Field(3, ge=1, le=1000)


class Policy(_Strict):
    protected: Protected = Field(default_factory=Protected)
    approvals: tuple[ApprovalRule, ...] = ()
    rate_caps: RateCaps = Field(default_factory=lambda: RateCaps.model_validate({}))
    blast_radius: BlastRadius = Field(default_factory=lambda: BlastRadius.model_validate({}))
    circuit_breaker: CircuitBreaker = Field(default_factory=lambda: CircuitBreaker.model_validate({}))
    ip_blocks: IpBlocks = Field(default_factory=lambda: IpBlocks.model_validate({}))
    separation_of_duties: SeparationOfDuties = Field(default_factory=SeparationOfDuties)
    containment_watch: ContainmentWatch = Field(default_factory=lambda: ContainmentWatch.model_validate({}))
    path: str | None = None


@dataclass(frozen=True)
class Target:
    """One thing a step acts on, with what the inventory says about it (alert data is never trusted for labels)."""

    kind: str  # host | account | ip | process | channel
    value: str
    name: str | None = None  # the inventory name of a host
    address: str | None = None
    aliases: tuple[str, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    protected_accounts: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.name or self.value}"


@dataclass(frozen=True)
class StepFacts:
    action: str
    impact: str
    targets: Sequence[Target] = ()
    requested: Any = None  # the playbook's requires_approval (an Approval) or None
    run_targets: int = 0  # distinct contained targets in the run including this step's
    breaker_open: bool = False
    rate_capped: str | None = None  # why a rate cap is reached, if it is


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    reasons: tuple[str, ...] = ()
    approvals: int = 0
    roles: tuple[str, ...] = ()
    timeout: float = 3600.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "reasons": list(self.reasons),
            "approvals": self.approvals,
            "roles": list(self.roles),
            "timeout": self.timeout,
        }


def _overlapping(nets: Sequence[Network], networks: Sequence[str]) -> str | None:
    """The first protected network any of ``nets`` overlaps (IPv4-mapped IPv6 read as IPv4)."""
    for text in networks:
        for protected in parse_spec(text):
            if any(n.version == protected.version and n.overlaps(protected) for n in nets):
                return text
    return None


def _in_networks(value: str | None, networks: Sequence[str]) -> str | None:
    if not value:
        return None
    try:
        nets = parse_spec(value)
    except ValueError:
        return None
    return _overlapping(nets, networks)


def _ip_reason(policy: Policy, value: str) -> str | None:
    """Why an address, CIDR or range must never be blocked automatically, or None."""
    try:
        nets = parse_spec(value)
    except ValueError as exc:
        return f"ip {exc}; refused"
    wide = next((n for n in nets if covers_everything(n)), None)
    if wide is not None:
        what = f"every address ({wide})" if wide.prefixlen == 0 else f"every IPv4 address ({wide} holds ::ffff:0:0/96)"
        return f"address {value} covers {what}: never blocked, whatever the policy says"
    net = _overlapping(nets, policy.protected.networks)
    if net is None:
        return None
    if len(nets) == 1 and nets[0].num_addresses == 1:
        return f"address {value} is protected (in {net})"
    return f"address {value} is protected (overlaps {net})"


def wide_block_reason(policy: Policy, value: str) -> str | None:
    """Why blocking an address spec needs an approval (wider than ``ip_blocks.approve_wider_than``), or None."""
    try:
        nets = parse_spec(value)
    except ValueError:
        return None  # refused by protected_reason
    limits = policy.ip_blocks.approve_wider_than
    for version, bits, prefix in ((4, 32, limits.ipv4), (6, 128, limits.ipv6)):
        count = addresses(nets, version)
        if count > 2 ** (bits - prefix):
            return f"address {value} is wider than a /{prefix} ({count} addresses): blocks that wide need approval"
    return None


def protected_reason(policy: Policy, target: Target) -> str | None:
    """Why a target must never be acted on automatically, or None."""
    p = policy.protected
    if target.kind == "host":
        for name in (target.value, target.name, *target.aliases):
            for glob in p.hosts:
                if name and fnmatch.fnmatchcase(name.lower(), glob.lower()):
                    return f"host {target.name or target.value} is protected (matches {glob!r})"
        for value in (target.address, target.value):
            net = _in_networks(value, p.networks)
            if net:
                return f"host {target.name or target.value} is protected (address in {net})"
        for label, allowed in p.labels.items():
            if target.labels.get(label) in allowed:
                return f"host {target.name or target.value} is protected (label {label}={target.labels[label]})"
    elif target.kind == "account":
        for glob in (*p.accounts, *target.protected_accounts):
            if fnmatch.fnmatchcase(target.value, glob):
                return f"account {target.value} is protected (matches {glob!r})"
    elif target.kind == "ip":
        return _ip_reason(policy, target.value)
    return None


def _labels_match(rule: ApprovalRule, targets: Sequence[Target]) -> bool:
    if not rule.labels:
        return True
    for t in targets:
        if all(t.labels.get(k) in ((v,) if isinstance(v, str) else v) for k, v in rule.labels.items()):
            return True
    return False


def decide(policy: Policy, facts: StepFacts) -> Decision:
    """Allow, ask for approval, or refuse one step; every reason is kept for the run record."""
    gated = facts.impact in GATED_IMPACTS
    if gated:
        refusals = [r for t in facts.targets if (r := protected_reason(policy, t))]
        cap = policy.blast_radius.max_targets_per_run
        if cap is not None and facts.run_targets > cap:
            refusals.append(f"blast radius: {facts.run_targets} targets in this run exceeds the cap of {cap}")
        if refusals:
            return Decision("refuse", tuple(refusals))
    reasons: list[str] = []
    approvals, roles, timeout = 0, set[str](), 3600.0
    requested = facts.requested
    if requested is not None:
        reasons.append("the playbook requires approval for this step")
        approvals, roles, timeout = requested.approvals, set(requested.roles), requested.timeout
    for rule in policy.approvals:
        if facts.impact not in rule.impact:
            continue
        if rule.actions and not any(fnmatch.fnmatchcase(facts.action, g) for g in rule.actions):
            continue
        if not _labels_match(rule, facts.targets):
            continue
        reasons.append(f"policy rule {rule.name!r}")
        approvals = max(approvals, rule.approvals)
        roles |= set(rule.roles)
        timeout = min(timeout, rule.timeout)
    if gated:
        for t in facts.targets:
            if t.kind == "ip" and (wide := wide_block_reason(policy, t.value)):
                reasons.append(wide)
                approvals = max(approvals, 1)
    if gated and facts.breaker_open:
        reasons.append(f"circuit breaker open for {facts.action}")
        approvals = max(approvals, 1)
    if gated and facts.rate_capped:
        reasons.append(facts.rate_capped)
        approvals = max(approvals, 1)
    if approvals:
        return Decision("approve", tuple(reasons), approvals, tuple(sorted(roles or {"approver", "admin"})), timeout)
    return Decision("allow", ("allowed by policy",))


def load_policy(path: Path) -> Policy:
    """Read the policy file; a missing file is the default policy (root is still protected)."""
    if not path.exists():
        return Policy(path=None)
    try:
        text = _yaml.read_text(path)  # over 1 MiB: refused before reading
        root, data = _yaml.load_with_node(text)  # an alias is refused at its line, before it expands
        data = data or {}
    except (OSError, UnicodeDecodeError) as exc:
        raise ContentError(f"cannot read the policy: {exc}", SourceLocation(path)) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise ContentError(
            f"not valid YAML: {getattr(exc, 'problem', None) or exc}", SourceLocation(path, line)
        ) from None
    if not isinstance(data, dict):
        raise ContentError("the policy must be a YAML mapping", SourceLocation(path, 1))
    try:
        return Policy.model_validate({**data, "path": str(path)})
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(p for p in err["loc"] if isinstance(p, str | int))
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"].removeprefix("Value error, ")
        where = ".".join(str(p) for p in loc) or "policy"
        raise ContentError(f"{where}: {msg}", SourceLocation(path, _line_of(root, loc))) from None


def _line_of(node: yaml.Node | None, loc: tuple[str | int, ...]) -> int | None:
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            nxt = next(((k, v) for k, v in node.value if k.value == part), None)
            if nxt is None:
                return line
            line, node = nxt[0].start_mark.line + 1, nxt[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line
