"""The ``incidents`` document: alerts of one host or user close in time, and what people did about them.

Pure. Which alerts belong together is decided by ``soar.incidents.grouping`` (a function of the alerts);
this record keeps the incident's summary of them (time span, worst level, rules, hosts, users, the
sources of its scope) and its human state: status and who moved it when, the owner, notes. A merged
incident (a later alert joined it to an earlier one) keeps its id and points at the survivor
(``merged_into``), so a link to it still resolves. Everything taken from alerts is attacker-controlled.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from soar.alerts import LEVEL_ORDER, fingerprint
from soar.records._read import VERSION_FIELD, Reader, check_version, modelled, put, with_nulls

KIND = "incidents"
SCHEMA_VERSION = 1

IncidentStatus = Literal["open", "acknowledged", "closed"]
INCIDENT_STATUSES: tuple[IncidentStatus, ...] = IncidentStatus.__args__  # type: ignore[attr-defined]
Triage = Literal["acknowledged", "closed"]
SHOWN = 50  # rules, hosts and users listed on an incident (the alerts themselves are all kept)
MAX_NOTE = 4000
AUTOMATION = "soar"  # the actor of what the pipeline itself does to an incident


@dataclass(slots=True, frozen=True)
class Note:
    """A person's note on the incident, as written; its id is derived from its content, so a retry adds it once."""

    id: str
    at: str
    by: str
    text: str

    @classmethod
    def new(cls, by: str, text: str, at: str) -> Note:
        return cls(fingerprint("note", by, at, text)[:16], at, by, text)

    def to_doc(self) -> dict[str, str]:
        return {"id": self.id, "at": self.at, "by": self.by, "text": self.text}


@dataclass(slots=True)
class Incident:
    id: str
    key: dict[str, str]  # {"field": "host.name", "value": "web1"}
    first_at: str  # the earliest alert's time (ISO)
    last_at: str  # the latest alert's time (ISO)
    created_at: str
    status: IncidentStatus = "open"
    alert_count: int = 0
    severity: str = "informational"
    rules: list[dict[str, str]] = field(default_factory=list)  # {"id", "title"}, first seen first
    hosts: list[str] = field(default_factory=list)
    users: list[str] = field(default_factory=list)
    scope_sources: list[dict[str, Any]] = field(default_factory=list)  # what scope.of_alert reads, per distinct alert
    owner: str | None = None
    assigned_at: str | None = None
    assigned_by: str | None = None
    acknowledged_at: str | None = None
    acknowledged_by: str | None = None
    closed_at: str | None = None
    closed_by: str | None = None
    reopened_at: str | None = None
    reopened_by: str | None = None
    notes: list[Note] = field(default_factory=list)
    absorbed: list[str] = field(default_factory=list)  # incidents merged into this one
    merged_into: str | None = None
    updated_at: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    nulls: frozenset[str] = field(default=frozenset(), compare=False, repr=False)

    @classmethod
    def new(cls, id: str, key: dict[str, str], at: str, now: str) -> Incident:
        return cls(id=id, key=dict(key), first_at=at, last_at=at, created_at=now, updated_at=now)

    @classmethod
    def from_doc(cls, doc: Any, id: str | None = None) -> Incident:
        iid = str((doc.get("id") if isinstance(doc, dict) else None) or id or "?")
        check_version(KIND, iid, doc if isinstance(doc, dict) else {}, SCHEMA_VERSION)
        r = Reader(KIND, iid, doc)
        key = r.child("key", r.obj("key"))
        notes = []
        for i, item in enumerate(r.array("notes")):
            n = r.child(f"notes[{i}]", item)
            notes.append(Note(n.string("id"), n.string("at"), n.string("by"), n.string("text")))
        rules = []
        for i, item in enumerate(r.array("rules")):
            rr = r.child(f"rules[{i}]", item)
            rules.append({"id": rr.string("id"), "title": rr.string("title", "")})
        return cls(
            id=r.string("id", iid),
            key={"field": key.string("field"), "value": key.string("value")},
            first_at=r.string("first_at"),
            last_at=r.string("last_at"),
            created_at=r.string("created_at"),
            status=r.choice("status", INCIDENT_STATUSES, "open"),
            alert_count=r.integer("alert_count", 0),
            severity=r.choice("severity", tuple(LEVEL_ORDER), "informational"),
            rules=rules,
            hosts=r.strings("hosts"),
            users=r.strings("users"),
            scope_sources=[dict(r.child(f"scope_sources[{i}]", s).doc) for i, s in enumerate(r.array("scope_sources"))],
            owner=r.opt_string("owner"),
            assigned_at=r.opt_string("assigned_at"),
            assigned_by=r.opt_string("assigned_by"),
            acknowledged_at=r.opt_string("acknowledged_at"),
            acknowledged_by=r.opt_string("acknowledged_by"),
            closed_at=r.opt_string("closed_at"),
            closed_by=r.opt_string("closed_by"),
            reopened_at=r.opt_string("reopened_at"),
            reopened_by=r.opt_string("reopened_by"),
            notes=notes,
            absorbed=r.strings("absorbed"),
            merged_into=r.opt_string("merged_into"),
            updated_at=r.opt_string("updated_at"),
            extra=r.unknown(modelled(cls)),
            nulls=r.nulls(modelled(cls)),
        )

    def to_doc(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            VERSION_FIELD: SCHEMA_VERSION,
            "id": self.id,
            "key": dict(self.key),
            "first_at": self.first_at,
            "last_at": self.last_at,
            "created_at": self.created_at,
            "status": self.status,
            "alert_count": self.alert_count,
            "severity": self.severity,
            "rules": [dict(r) for r in self.rules],
            "hosts": list(self.hosts),
            "users": list(self.users),
            "scope_sources": [dict(s) for s in self.scope_sources],
            "notes": [n.to_doc() for n in self.notes],
            "absorbed": list(self.absorbed),
        }
        for name in (
            *("owner", "assigned_at", "assigned_by", "acknowledged_at", "acknowledged_by", "closed_at", "closed_by"),
            *("reopened_at", "reopened_by", "merged_into", "updated_at"),
        ):
            put(out, name, getattr(self, name))
        return {**self.extra, **with_nulls(out, self.nulls)}

    # -- what the pipeline changes

    def join(self, alert: dict[str, Any], at: str, source: dict[str, Any]) -> None:
        """Take in one alert's summary: its time, level, rule, host, user and the source of its scope."""
        if self.scope_sources:
            self.first_at, self.last_at = min(self.first_at, at), max(self.last_at, at)
        else:  # the first alert: the span of an incident written before any alert joined (a merge mark) is no time
            self.first_at = self.last_at = at
        level = str(alert.get("severity") or (alert.get("rule") or {}).get("level") or "")
        if LEVEL_ORDER.get(level, -1) > LEVEL_ORDER[self.severity]:
            self.severity = level
        rule: dict[str, Any] = alert["rule"] if isinstance(alert.get("rule"), dict) else {}
        if rule.get("id") and len(self.rules) < SHOWN and all(r["id"] != str(rule["id"]) for r in self.rules):
            self.rules.append({"id": str(rule["id"]), "title": str(rule.get("title") or "")})
        for values, entity in ((self.hosts, "host"), (self.users, "user")):
            name = (alert.get(entity) or {}).get("name") if isinstance(alert.get(entity), dict) else None
            if isinstance(name, str) and name and name not in values and len(values) < SHOWN:
                values.append(name)
        if source not in self.scope_sources:
            self.scope_sources.append(source)

    def take_over(self, other: Incident) -> None:
        """Fold an incident merged into this one: its span, summary, notes and owner (this one's owner wins),
        and its triage (the merged incident is open if either is: a closed one must not hide the other's alerts)."""
        if other.scope_sources and self.scope_sources:
            self.first_at, self.last_at = min(self.first_at, other.first_at), max(self.last_at, other.last_at)
        elif other.scope_sources:  # an incident no alert joined yet (a merge mark) has no span of its own
            self.first_at, self.last_at = other.first_at, other.last_at
        if LEVEL_ORDER.get(other.severity, -1) > LEVEL_ORDER[self.severity]:
            self.severity = other.severity
        for rule in other.rules:
            if len(self.rules) < SHOWN and all(r["id"] != rule["id"] for r in self.rules):
                self.rules.append(rule)
        for mine, theirs in ((self.hosts, other.hosts), (self.users, other.users)):
            mine.extend(v for v in theirs if v not in mine and len(mine) < SHOWN)
        self.scope_sources.extend(s for s in other.scope_sources if s not in self.scope_sources)
        known = {n.id for n in self.notes}
        self.notes = sorted([*self.notes, *(n for n in other.notes if n.id not in known)], key=lambda n: (n.at, n.id))
        if self.owner is None and other.owner is not None:
            self.owner, self.assigned_at, self.assigned_by = other.owner, other.assigned_at, other.assigned_by
        for name in ("acknowledged_at", "acknowledged_by"):
            if getattr(self, name) is None:
                setattr(self, name, getattr(other, name))
        rank = INCIDENT_STATUSES.index
        self.status = min(self.status, other.status, key=rank)

    # -- what people change (each False when it changes nothing)

    def triage(self, to: Triage, actor: str, now: str) -> bool:
        """Acknowledge or close, as alerts do: the first time of each is kept, closing acknowledges too."""
        if to == "acknowledged":
            if self.acknowledged_at:
                return False
            self.acknowledged_at, self.acknowledged_by = now, actor
            self.status = "closed" if self.status == "closed" else "acknowledged"
            return True
        if self.status == "closed":
            return False
        self.closed_at, self.closed_by = now, actor
        if not self.acknowledged_at:
            self.acknowledged_at, self.acknowledged_by = now, actor
        self.status = "closed"
        return True

    def reopen(self, actor: str, now: str) -> bool:
        """A closed incident is open again (its acknowledgement stays); False when it is not closed."""
        if self.status != "closed":
            return False
        self.status = "acknowledged" if self.acknowledged_at else "open"
        self.closed_at = self.closed_by = None
        self.reopened_at, self.reopened_by = now, actor
        return True

    def assign(self, to: str | None, actor: str, now: str) -> bool:
        if self.owner == to:
            return False
        self.owner, self.assigned_at, self.assigned_by = to, now, actor
        return True

    def add_note(self, note: Note) -> bool:
        if any(n.id == note.id for n in self.notes):
            return False
        self.notes.append(note)
        return True


def scope_source(alert: dict[str, Any]) -> dict[str, Any]:
    """The part of an alert its scope is decided from (``soar.scope.Scopes.of_alert``): its host and the
    rule's attributes soar wrote at detection. Compact, so an incident of many alerts keeps few of them."""
    host: dict[str, Any] = alert["host"] if isinstance(alert.get("host"), dict) else {}
    out: dict[str, Any] = {"host": {k: host[k] for k in ("name", "hostname", "ip") if host.get(k)}}
    rule = (alert.get("inventory") or {}).get("rule") if isinstance(alert.get("inventory"), dict) else None
    if isinstance(rule, dict) and rule.get("attributes"):
        out["inventory"] = {"rule": {"attributes": rule["attributes"]}}
    return json.loads(json.dumps(out, sort_keys=True, default=str))  # type: ignore[no-any-return]


def public(doc: dict[str, Any]) -> dict[str, Any]:
    """The incident as clients read it: without the scope sources (access decisions' input, not its content)."""
    return {k: v for k, v in doc.items() if k not in ("scope_sources", VERSION_FIELD)}
