"""What a run event says about a step and an approval (``event["step"]``, ``event["approval"]``).

Pure. Events are messages, not stored documents: they carry no schema version, and a reader
must take an event from an older or newer worker as it is (a card that cannot be rendered would
hide an approval request from the on-call). So ``from_payload`` never raises: a field of the
wrong shape reads as absent. The one place that knows the payload's older spellings
(``decision`` before ``status``) is here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def _bool(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def _names(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list | tuple) else []


def _int(value: Any, default: int) -> int:
    try:
        return int(value) if value is not None and not isinstance(value, bool) else default
    except (TypeError, ValueError):
        return default


@dataclass(slots=True, frozen=True)
class StepNotice:
    """The step an event is about (``id`` None for a run-wide event such as a rollback)."""

    id: str | None = None
    uses: str | None = None
    status: str | None = None
    dry_run: bool | None = None
    summary: str | None = None
    attempt: int | None = None
    verified: bool | None = None
    impact: str | None = None

    @classmethod
    def from_payload(cls, payload: Any) -> StepNotice:
        p = payload if isinstance(payload, Mapping) else {}
        attempt = p.get("attempt")
        return cls(
            id=_str(p.get("id")) or None,
            uses=_str(p.get("uses")),
            status=_str(p.get("status")),
            dry_run=_bool(p.get("dry_run")),
            summary=_str(p.get("summary")),
            attempt=attempt if isinstance(attempt, int) and not isinstance(attempt, bool) else None,
            verified=_bool(p.get("verified")),
            impact=_str(p.get("impact")),
        )


@dataclass(slots=True, frozen=True)
class ApprovalNotice:
    """An approval request's state as an event reports it: voters by principal name."""

    step: str | None = None
    status: str | None = None  # None: the event does not say (see ``decision``)
    required: int = 1
    approvers: list[str] = field(default_factory=list)
    denials: list[str] = field(default_factory=list)
    slack_users: dict[str, str] = field(default_factory=dict)
    roles: list[str] = field(default_factory=list)
    expires_at: str | None = None
    impact: str | None = None

    @classmethod
    def from_payload(cls, payload: Any) -> ApprovalNotice:
        p = payload if isinstance(payload, Mapping) else {}
        users = p.get("slack_users")
        return cls(
            step=_str(p.get("step")) or None,
            status=_str(p.get("status") or p.get("decision")) or None,  # ``decision``: older publishers
            required=_int(p.get("required"), 1) or 1,
            approvers=_names(p.get("approvers")),
            denials=_names(p.get("denials")),
            slack_users={str(k): str(v) for k, v in users.items() if v} if isinstance(users, Mapping) else {},
            roles=_names(p.get("roles")),
            expires_at=_str(p.get("expires_at")) or None,
            impact=_str(p.get("impact")) or None,
        )

    @property
    def decision(self) -> str:
        """The request's state: what the event says, else ``pending``."""
        return self.status or "pending"

    @property
    def final(self) -> bool:
        """``approved`` (with enough approvers), ``denied`` and ``expired`` are final; ``pending`` with votes is not."""
        if self.decision == "approved":
            return len(self.approvers) >= self.required
        return self.decision != "pending"

    @property
    def revision(self) -> int:
        """Votes only accumulate and a final decision comes last: so later states of a request rank higher."""
        return 2 * (len(self.approvers) + len(self.denials)) + (1 if self.final else 0)
