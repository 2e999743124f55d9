"""The ``approvals`` document: a step waiting for N distinct approvers with an allowed role.

Pure. ``step`` is the instance key the request is for (``isolate[web-1]``), ``step_id`` the
playbook step it belongs to (``isolate``): a person may name either. Records from before both
were written carry one of them; ``from_doc`` derives the other, so no reader guesses.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

from soar.records._read import VERSION_FIELD, Reader, check_version, modelled, put, with_nulls, without

KIND = "approvals"
SCHEMA_VERSION = 1

ApprovalStatus = Literal["pending", "approved", "denied", "expired"]
APPROVAL_STATUSES: tuple[ApprovalStatus, ...] = ApprovalStatus.__args__  # type: ignore[attr-defined]
Via = Literal["cli", "api", "slack"]


@dataclass(slots=True, frozen=True)
class Vote:
    """One person's approve or deny, with the role they decided in and the channel they used."""

    approver: str
    role: str = ""
    via: str = ""
    at: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    slack_user: str | None = None
    absent: frozenset[str] = field(default=frozenset(), compare=False, repr=False)  # left out again by to_doc

    @classmethod
    def read(cls, r: Reader) -> Vote:
        return cls(
            approver=r.string("approver"),
            role=r.string("role", ""),
            via=r.string("via", ""),
            at=r.opt_string("at"),
            attributes=r.obj("attributes", None),
            slack_user=r.opt_string("slack_user"),
            absent=r.absent(_VOTE_OPTIONAL),
        )

    def to_doc(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "approver": self.approver,
            "role": self.role,
            "via": self.via,
            "at": self.at,
            "attributes": self.attributes,
        }
        put(out, "slack_user", self.slack_user)
        return without(out, self.absent)

    def brief(self) -> Vote:
        """The vote as a denied step names it (``denied_by``): who, in which role, via what, when; no attributes."""
        empty = {name for name in ("role", "via", "at") if not getattr(self, name)}
        return replace(self, attributes={}, absent=frozenset({"attributes", *empty}))

    @property
    def who(self) -> str:
        """The voter for messages and records: the principal, and the Slack user when the vote came from Slack."""
        return f"{self.approver} (Slack {self.slack_user})" if self.slack_user else self.approver


_VOTE_OPTIONAL = frozenset({"role", "via", "at", "attributes"})  # absent in some records (older ones, a run's)


@dataclass(slots=True)
class Approval:
    """An approval request and the votes cast on it."""

    id: str
    run_id: str
    step: str
    step_id: str
    status: ApprovalStatus
    expires_at: float
    required: int = 1
    roles: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    approvers: list[Vote] = field(default_factory=list)
    denials: list[Vote] = field(default_factory=list)
    requested_at: str | None = None
    expires_at_iso: str | None = None
    decided_at: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    playbook: str | None = None
    dry_run: bool = False
    run_seq: int | None = None
    schema_version: int = SCHEMA_VERSION
    extra: dict[str, Any] = field(default_factory=dict)
    nulls: frozenset[str] = field(default=frozenset(), compare=False, repr=False)

    @classmethod
    def from_doc(cls, doc: Any, id: str | None = None) -> Approval:
        aid = str((doc.get("id") if isinstance(doc, dict) else None) or id or "?")
        version = check_version(KIND, aid, doc if isinstance(doc, dict) else {}, SCHEMA_VERSION)
        r = Reader(KIND, aid, doc)
        step = r.opt_string("step") or r.opt_string("step_id")
        if not step:
            raise r.fail("step", "missing (neither step nor step_id)")
        approvers = [Vote.read(r.child(f"approvers[{i}]", v)) for i, v in enumerate(r.array("approvers"))]
        denials = [Vote.read(r.child(f"denials[{i}]", v)) for i, v in enumerate(r.array("denials"))]
        for i, d in enumerate(r.array("decisions")):  # an early shape: one list, each vote saying which it was
            vote = r.child(f"decisions[{i}]", d)
            (denials if vote.doc.get("decision") == "deny" else approvers).append(Vote.read(vote))
        return cls(
            id=r.string("id", aid),
            run_id=r.string("run_id"),
            step=step,
            step_id=r.opt_string("step_id") or step.split("[")[0],
            status=r.choice("status", APPROVAL_STATUSES),
            expires_at=r.number("expires_at"),
            required=r.integer("required", 1),
            roles=r.strings("roles"),
            reasons=r.strings("reasons"),
            approvers=approvers,
            denials=denials,
            requested_at=r.opt_string("requested_at") or r.opt_string("created_at"),
            expires_at_iso=r.opt_string("expires_at_iso"),
            decided_at=r.opt_string("decided_at"),
            params=r.obj("params", None),
            playbook=r.opt_string("playbook"),
            dry_run=bool(r.opt_flag("dry_run")),
            run_seq=r.opt_integer("run_seq"),
            schema_version=version,
            extra=r.unknown(modelled(cls, "created_at", "decisions")),
            nulls=r.nulls(modelled(cls, "created_at", "decisions")),
        )

    def to_doc(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            VERSION_FIELD: SCHEMA_VERSION,
            "id": self.id,
            "run_id": self.run_id,
            "step": self.step,
            "step_id": self.step_id,
            "required": self.required,
            "roles": self.roles,
            "reasons": self.reasons,
            "status": self.status,
            "approvers": [v.to_doc() for v in self.approvers],
            "denials": [v.to_doc() for v in self.denials],
            "requested_at": self.requested_at,
            "expires_at": self.expires_at,
            "expires_at_iso": self.expires_at_iso,
            "params": self.params,
            "playbook": self.playbook,
            "dry_run": self.dry_run,
            "run_seq": self.run_seq,
        }
        put(out, "decided_at", self.decided_at)
        return {**self.extra, **with_nulls(out, self.nulls)}

    def names(self, step: str) -> bool:
        """Whether a person's ``--step`` (an instance key or a step id) names this request."""
        return step in (self.step, self.step_id)

    @property
    def votes(self) -> list[Vote]:
        return [*self.approvers, *self.denials]

    def expired_by(self, now: float) -> bool:
        """Pending past its deadline."""
        return self.status == "pending" and self.expires_at <= now
