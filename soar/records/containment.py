"""The ``containments`` document: one applied and verified containment, and what its watch has seen since.

Pure. A containment is recorded when its step's verification succeeds and stays ``in_force`` until
its revert is verified (``released``) or its own expiry passes. The watch (``soar.containment``)
re-verifies it every ``interval`` seconds under a ``lease`` (one watcher at a time, state only here),
appends a :class:`Check` per look and counts drifts, repairs and unreachable looks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from soar.records._read import VERSION_FIELD, Reader, check_version, modelled, put, with_nulls
from soar.records.run import Lease

KIND = "containments"
SCHEMA_VERSION = 1
MAX_CHECKS = 50  # the newest checks kept; ``checks`` counts them all

State = Literal["in_force", "released"]
STATES: tuple[State, ...] = State.__args__  # type: ignore[attr-defined]
# held: verified again; drifted: the management path answered and the containment is not (fully) there;
# unreachable: the management path did not answer (not a drift); repaired/repair_failed: a re-apply after a drift
CheckOutcome = Literal["held", "drifted", "unreachable", "repaired", "repair_failed", "expired"]
CHECK_OUTCOMES: tuple[CheckOutcome, ...] = CheckOutcome.__args__  # type: ignore[attr-defined]


@dataclass(slots=True)
class Check:
    """One look of the watch (or one repair): when, what it concluded, what it found."""

    at: str
    outcome: CheckOutcome
    found: list[str] = field(default_factory=list)
    decision: str | None = None  # what the policy made of a drift: repair, ask, escalate
    duration_ms: float | None = None

    @classmethod
    def read(cls, r: Reader) -> Check:
        return cls(
            at=r.string("at"),
            outcome=r.choice("outcome", CHECK_OUTCOMES),
            found=r.strings("found"),
            decision=r.opt_string("decision"),
            duration_ms=r.opt_number("duration_ms"),
        )

    def to_doc(self) -> dict[str, Any]:
        out: dict[str, Any] = {"at": self.at, "outcome": self.outcome, "found": self.found}
        put(out, "decision", self.decision)
        put(out, "duration_ms", self.duration_ms)
        return out


@dataclass(slots=True)
class Containment:
    """A containment in force (or released), keyed by its action and what it contains (one per target)."""

    id: str
    run_id: str
    step: str  # the step instance that applied it (``isolate``, ``block[1]``)
    action: str
    verify: str  # the read action that proves it again
    host: str | None
    params: dict[str, Any]  # as the run record shows them (secrets redacted)
    applied_at: str
    applied_ts: float
    interval: float
    next_check: float  # epoch seconds
    state: State = "in_force"
    expires_ts: float | None = None  # its own expiry (release_after, expire_seconds): gone then is not a drift
    boot_id: str | None = None  # the host's boot id when it was proven
    checks: int = 0
    drifts: int = 0
    repairs: int = 0
    unreachable_in_a_row: int = 0
    escalated: bool = False
    last_check: str | None = None
    last_outcome: CheckOutcome | None = None
    history: list[Check] = field(default_factory=list)
    released_at: str | None = None
    released_by: str | None = None  # the run (or ``expired``) whose verified revert ended it
    lease: Lease | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    nulls: frozenset[str] = field(default=frozenset(), compare=False, repr=False)

    @classmethod
    def from_doc(cls, doc: Any, id: str | None = None) -> Containment:
        cid = str((doc.get("id") if isinstance(doc, dict) else None) or id or "?")
        check_version(KIND, cid, doc if isinstance(doc, dict) else {}, SCHEMA_VERSION)
        r = Reader(KIND, cid, doc)
        lease = r.opt_obj("lease")
        last = r.doc.get("last_outcome")
        return cls(
            id=r.string("id", cid),
            run_id=r.string("run_id"),
            step=r.string("step"),
            action=r.string("action"),
            verify=r.string("verify"),
            host=r.opt_string("host"),
            params=r.obj("params"),
            applied_at=r.string("applied_at"),
            applied_ts=r.number("applied_ts"),
            interval=r.number("interval"),
            next_check=r.number("next_check"),
            state=r.choice("state", STATES),
            expires_ts=r.opt_number("expires_ts"),
            boot_id=r.opt_string("boot_id"),
            checks=r.integer("checks", 0),
            drifts=r.integer("drifts", 0),
            repairs=r.integer("repairs", 0),
            unreachable_in_a_row=r.integer("unreachable_in_a_row", 0),
            escalated=r.flag("escalated", False),
            last_check=r.opt_string("last_check"),
            last_outcome=None if last is None else r.choice("last_outcome", CHECK_OUTCOMES),
            history=[Check.read(r.child(f"history[{i}]", c)) for i, c in enumerate(r.array("history"))],
            released_at=r.opt_string("released_at"),
            released_by=r.opt_string("released_by"),
            lease=None
            if lease is None
            else Lease(owner=r.child("lease", lease).string("owner"), until=_until(r, lease)),
            extra=r.unknown(modelled(cls)),
            nulls=r.nulls(modelled(cls)),
        )

    def to_doc(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            VERSION_FIELD: SCHEMA_VERSION,
            "id": self.id,
            "run_id": self.run_id,
            "step": self.step,
            "action": self.action,
            "verify": self.verify,
            "host": self.host,
            "params": self.params,
            "applied_at": self.applied_at,
            "applied_ts": self.applied_ts,
            "interval": self.interval,
            "next_check": self.next_check,
            "state": self.state,
            "checks": self.checks,
            "drifts": self.drifts,
            "repairs": self.repairs,
            "unreachable_in_a_row": self.unreachable_in_a_row,
            "escalated": self.escalated,
            "history": [c.to_doc() for c in self.history],
            "lease": None if self.lease is None else self.lease.to_doc(),
        }
        for name in ("expires_ts", "boot_id", "last_check", "last_outcome", "released_at", "released_by"):
            put(out, name, getattr(self, name))
        return {**self.extra, **with_nulls(out, self.nulls)}

    def add(self, check: Check) -> None:
        """Append a look (the newest MAX_CHECKS are kept) and move the counters it changes."""
        self.history = [*self.history, check][-MAX_CHECKS:]
        if check.outcome in ("held", "drifted", "unreachable"):
            self.checks += 1
            self.last_check, self.last_outcome = check.at, check.outcome
        if check.outcome == "drifted":
            self.drifts += 1
        if check.outcome == "repaired":
            self.repairs += 1
            self.last_outcome = "repaired"
        self.unreachable_in_a_row = self.unreachable_in_a_row + 1 if check.outcome == "unreachable" else 0

    @property
    def uptime(self) -> float | None:
        """The share of the watch's verdicts that found it in force (held, or repaired at once): a look that could
        not reach the host gives none. None before a verdict; from the looks kept (the newest MAX_CHECKS)."""
        verdicts = [c.outcome for c in self.history if c.outcome in ("held", "drifted")]
        if not verdicts:
            return None
        return verdicts.count("held") / len(verdicts)

    def shown(self) -> dict[str, Any]:
        """What people see of it (``runs show``, the API, the report): no lease, the last drifts and repairs."""
        return {
            "id": self.id, "step": self.step, "action": self.action, "host": self.host, "params": self.params,
            "state": self.state, "in_force_since": self.applied_at, "released_at": self.released_at,
            "released_by": self.released_by, "interval": self.interval, "checks": self.checks,
            "last_check": self.last_check, "last_outcome": self.last_outcome, "drifts": self.drifts,
            "repairs": self.repairs, "escalated": self.escalated, "uptime": self.uptime,
            "drift_log": [c.to_doc() for c in self.history if c.outcome != "held"][-10:],
        }  # fmt: skip

    def held_by_other(self, owner: str, now: float) -> bool:
        return self.lease is not None and self.lease.until > now and self.lease.owner != owner


def _until(r: Reader, lease: dict[str, Any]) -> float:
    return r.child("lease", lease).number("until")
