"""The state of a stored alert: what people and the pipeline change on it after detection wrote it.

Pure. The alert itself — rule, entities, matched events — is detection's (``soar.alerts.Alert``)
and is kept as written (``extra``); this record reads and writes only its state: the triage
status and who moved it when, the analyst's verdict, and whether it was handed to automation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from soar.records._read import VERSION_FIELD, Reader, check_version, modelled, put, with_nulls

KIND = "alerts"
SCHEMA_VERSION = 1

AlertStatus = Literal["open", "acknowledged", "closed"]
ALERT_STATUSES: tuple[AlertStatus, ...] = AlertStatus.__args__  # type: ignore[attr-defined]
Verdict = Literal["true_positive", "false_positive"]
VERDICTS: tuple[Verdict, ...] = Verdict.__args__  # type: ignore[attr-defined]
Triage = Literal["acknowledged", "closed"]


@dataclass(slots=True)
class AlertState:
    id: str
    status: AlertStatus | None = None  # None: never triaged and not stamped (reads as open)
    acknowledged_at: str | None = None
    acknowledged_by: str | None = None
    closed_at: str | None = None
    closed_by: str | None = None
    verdict: Verdict | None = None
    dispatched: bool | None = None  # handed to automation (absent: alerts from before it was kept)
    assignee: str | None = None  # the principal working it
    assigned_at: str | None = None
    assigned_by: str | None = None
    reopened_at: str | None = None  # the last reopen (its close is cleared: MTTR counts to the next one)
    reopened_by: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    nulls: frozenset[str] = field(default=frozenset(), compare=False, repr=False)

    @classmethod
    def from_doc(cls, doc: Any, id: str | None = None) -> AlertState:
        aid = str((doc.get("id") if isinstance(doc, dict) else None) or id or "?")
        check_version(KIND, aid, doc if isinstance(doc, dict) else {}, SCHEMA_VERSION)
        r = Reader(KIND, aid, doc)
        verdict, status = r.doc.get("verdict"), r.doc.get("status")
        return cls(
            id=r.string("id", aid),
            status=None if status is None else r.choice("status", ALERT_STATUSES),
            acknowledged_at=r.opt_string("acknowledged_at"),
            acknowledged_by=r.opt_string("acknowledged_by"),
            closed_at=r.opt_string("closed_at"),
            closed_by=r.opt_string("closed_by"),
            verdict=None if verdict is None else r.choice("verdict", VERDICTS),
            dispatched=r.opt_flag("dispatched"),
            assignee=r.opt_string("assignee"),
            assigned_at=r.opt_string("assigned_at"),
            assigned_by=r.opt_string("assigned_by"),
            reopened_at=r.opt_string("reopened_at"),
            reopened_by=r.opt_string("reopened_by"),
            extra=r.unknown(modelled(cls)),
            nulls=r.nulls(modelled(cls)),
        )

    def to_doc(self) -> dict[str, Any]:
        out: dict[str, Any] = {VERSION_FIELD: SCHEMA_VERSION, "id": self.id}
        for name in (
            *("status", "acknowledged_at", "acknowledged_by", "closed_at", "closed_by", "verdict", "dispatched"),
            *("assignee", "assigned_at", "assigned_by", "reopened_at", "reopened_by"),
        ):
            put(out, name, getattr(self, name))
        return {**self.extra, **with_nulls(out, self.nulls)}

    def triage(self, to: Triage, actor: str, now: str) -> bool:
        """Acknowledge or close; False when that changes nothing (the first time of each is kept).

        Closing acknowledges too (MTTA stops at the latest then); a closed alert stays closed.
        """
        if to == "acknowledged":
            if self.acknowledged_at:
                return False
            self.acknowledged_at, self.acknowledged_by = now, actor
            self.status = "closed" if self.status == "closed" else "acknowledged"
            return True
        if self.closed_at and self.status == "closed":
            return False
        self.closed_at, self.closed_by = self.closed_at or now, actor
        self.acknowledged_at = self.acknowledged_at or now
        self.status = "closed"
        return True

    @property
    def shown_status(self) -> AlertStatus:
        return self.status or "open"

    def assign(self, to: str | None, actor: str, now: str) -> bool:
        """Give the alert to ``to`` (None: nobody); False when it already is theirs."""
        if self.assignee == to:
            return False
        self.assignee, self.assigned_at, self.assigned_by = to, now, actor
        return True

    def reopen(self, actor: str, now: str) -> bool:
        """A closed alert is open again (its acknowledgement stays); False when it is not closed."""
        if self.status != "closed":
            return False
        self.status = "acknowledged" if self.acknowledged_at else "open"
        self.closed_at = self.closed_by = None
        self.reopened_at, self.reopened_by = now, actor
        return True
