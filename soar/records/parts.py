"""What a run's instance records besides its status: the targets it acts on, the policy's decision, the action's
outcome.

Pure, like the rest of ``soar.records``: the engine converts to and from ``soar.policy``'s and
``soar.actions``' own types (``soar.playbooks.planner``, ``soar.playbooks.runner``). Each part reads every
shape soar has written: a field a document lacks is remembered (``absent``) and left out again by ``to_doc``,
one it stored as null is written as null, an unknown one is kept in ``extra`` — a round trip changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from soar.records._read import Reader, modelled, without


@dataclass(slots=True, frozen=True)
class TargetRef:
    """One thing an instance acts on (``key``: ``host:web-01``), with the inventory's view of it when it ran."""

    kind: str
    value: str
    key: str
    name: str | None = None
    address: str | None = None
    aliases: list[str] = field(default_factory=list)
    labels: dict[str, Any] = field(default_factory=dict)
    protected_accounts: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    absent: frozenset[str] = field(default=frozenset(), compare=False, repr=False)

    @classmethod
    def read(cls, r: Reader) -> TargetRef:
        kind, value = r.string("kind"), str(r.ident("value") or "")
        name = r.opt_string("name")
        return cls(
            kind=kind,
            value=value,
            key=r.string("key", f"{kind}:{name or value}"),
            name=name,
            address=r.opt_string("address"),
            aliases=r.strings("aliases"),
            labels=r.obj("labels", None),
            protected_accounts=r.strings("protected_accounts"),
            extra=r.unknown(modelled(cls)),
            absent=r.absent(modelled(cls)),
        )

    def to_doc(self) -> dict[str, Any]:
        out = {
            "kind": self.kind,
            "value": self.value,
            "name": self.name,
            "address": self.address,
            "aliases": self.aliases,
            "labels": self.labels,
            "protected_accounts": self.protected_accounts,
            "key": self.key,
        }
        return {**self.extra, **without(out, self.absent)}


@dataclass(slots=True, frozen=True)
class PolicyDecision:
    """What the policy decided for an instance: allow, ask for ``approvals`` by ``roles`` within ``timeout``, refuse."""

    outcome: str
    reasons: list[str] = field(default_factory=list)
    approvals: int = 0
    roles: list[str] = field(default_factory=list)
    timeout: int | float = 3600.0
    extra: dict[str, Any] = field(default_factory=dict)
    absent: frozenset[str] = field(default=frozenset(), compare=False, repr=False)

    @classmethod
    def read(cls, r: Reader) -> PolicyDecision:
        return cls(
            outcome=r.string("outcome"),
            reasons=r.strings("reasons"),
            approvals=r.integer("approvals", 0),
            roles=r.strings("roles"),
            timeout=r.numeric("timeout", 3600.0),
            extra=r.unknown(modelled(cls)),
            absent=r.absent(modelled(cls)),
        )

    def to_doc(self) -> dict[str, Any]:
        out = {
            "outcome": self.outcome,
            "reasons": self.reasons,
            "approvals": self.approvals,
            "roles": self.roles,
            "timeout": self.timeout,
        }
        return {**self.extra, **without(out, self.absent)}


@dataclass(slots=True)
class ActionOutcome:
    """The action's result as recorded (secrets cut out): what it did, its output, whether the effect was verified."""

    ok: bool
    error: str | None = None
    output: dict[str, Any] = field(default_factory=dict)
    verified: bool | None = None
    verification: dict[str, Any] = field(default_factory=dict)
    commands: list[dict[str, Any]] = field(default_factory=list)
    stdout: str | None = None
    stderr: str | None = None
    exit_status: int | None = None
    changed: bool | None = None
    evidence: list[Any] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    absent: frozenset[str] = field(default=frozenset(), compare=False, repr=False)

    @classmethod
    def read(cls, r: Reader) -> ActionOutcome:
        return cls(
            ok=r.flag("ok", False),
            error=r.opt_string("error"),
            output=r.obj("output", None),
            verified=r.opt_flag("verified"),
            verification=r.obj("verification", None),
            commands=[dict(r.child(f"commands[{i}]", c).doc) for i, c in enumerate(r.array("commands"))],
            stdout=r.opt_string("stdout"),
            stderr=r.opt_string("stderr"),
            exit_status=r.opt_integer("exit_status"),
            changed=r.opt_flag("changed"),
            evidence=r.array("evidence"),
            extra=r.unknown(modelled(cls)),
            absent=r.absent(modelled(cls)),
        )

    @classmethod
    def of(cls, doc: dict[str, Any]) -> ActionOutcome:
        """The outcome of an action's ``ActionResult.to_dict()`` (redacted)."""
        return cls.read(Reader("runs", "?", doc, "result"))

    def to_doc(self) -> dict[str, Any]:
        out = {
            "ok": self.ok,
            "output": self.output,
            "error": self.error,
            "verified": self.verified,
            "verification": self.verification,
            "commands": self.commands,
            "stdout": self.stdout,
            "stderr": self.stderr,
            "exit_status": self.exit_status,
            "changed": self.changed,
            "evidence": self.evidence,
        }
        return {**self.extra, **without(out, self.absent)}
