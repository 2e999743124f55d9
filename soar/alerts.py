"""The alert document: what detection hands to response, and what every later record refers to.

ECS-style and flat enough for templates (``alert.host.name``, ``alert.source.ip``).
The id is a fingerprint — rule id + matched event id, or rule id + group key +
window for correlations — so writing it with create-only semantics is exactly-once.
Everything in an alert except ``rule`` comes from events and is attacker-controlled.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Level = Literal["informational", "low", "medium", "high", "critical"]

RISK_SCORE: dict[str, int] = {"informational": 10, "low": 21, "medium": 47, "high": 73, "critical": 99}
LEVEL_ORDER: dict[str, int] = {name: i for i, name in enumerate(RISK_SCORE)}

# ECS fields copied from the first matched event onto the alert, for routing and templates.
ENTITY_FIELDS = ("host", "user", "source", "destination", "process", "file", "url", "group")


class RuleRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    title: str
    level: Level = "medium"
    tags: list[str] = Field(default_factory=list)


class Alert(BaseModel):
    """One alert. Unknown ECS fields are kept (``extra='allow'``) so alerts from webhooks round-trip."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    id: str
    timestamp: str = Field(alias="@timestamp")  # detection time, ISO 8601 UTC
    rule: RuleRef
    severity: Level = "medium"
    risk_score: int = 47
    origin: str = "soar"  # "soar" for our rules, else the sender of a webhook
    status: Literal["open", "acknowledged", "closed"] = "open"
    verdict: Literal["true_positive", "false_positive"] | None = None
    first_event_time: str | None = None
    last_event_time: str | None = None
    event_ids: list[str] = Field(default_factory=list)
    events: list[dict[str, Any]] = Field(default_factory=list)  # an excerpt of the matched events
    group: dict[str, Any] | None = None  # correlations: {"key": {...}, "window_start", "window_end"}
    suppressed_count: int = 0
    host: dict[str, Any] = Field(default_factory=dict)
    user: dict[str, Any] = Field(default_factory=dict)
    source: dict[str, Any] = Field(default_factory=dict)

    def to_doc(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, mode="json")

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Alert:
        return cls.model_validate(doc)


def utcnow_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def fingerprint(rule_id: str, *parts: Any) -> str:
    """A stable id for (rule, what matched): the same inputs always give the same alert id."""
    payload = json.dumps([rule_id, *parts], sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()[:40]


def alert_from_events(
    rule: RuleRef,
    events: list[dict[str, Any]],
    event_ids: list[str],
    *,
    fingerprint_parts: tuple[Any, ...] | None = None,
    group: dict[str, Any] | None = None,
    detected_at: str | None = None,
    excerpt: int = 10,
) -> Alert:
    """Build the alert for a rule match; entity fields come from the first event."""
    first = events[0] if events else {}
    times = sorted(str(e["@timestamp"]) for e in events if e.get("@timestamp"))
    parts = fingerprint_parts if fingerprint_parts is not None else tuple(event_ids[:1])
    entities = {name: first[name] for name in ENTITY_FIELDS if isinstance(first.get(name), dict)}
    return Alert.model_validate(
        {
            "id": fingerprint(rule.id, *parts),
            "@timestamp": detected_at or utcnow_iso(),
            "rule": rule,
            "severity": rule.level,
            "risk_score": RISK_SCORE[rule.level],
            "first_event_time": times[0] if times else None,
            "last_event_time": times[-1] if times else None,
            "event_ids": event_ids,
            "events": events[:excerpt],
            "group": group,
            **entities,
        }
    )
