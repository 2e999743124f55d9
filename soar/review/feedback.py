"""Analyst feedback: verdicts on alerts, and rule exceptions proposed from false positives.

A verdict is one ``verdicts`` document per alert (id = alert id; a changed mind is
kept in ``history``) and is copied onto the alert. A false positive may propose an
exception (kind ``exceptions``, status ``proposed``) that the scheduler applies only
once an admin approves it. Everything is validated before anything is written.

An exception carries the scope of the alert it came from (the inventory's labels of the alert's hosts, never
the alert's own claims): only a principal allowed in that scope may see, approve or reject it, and — unless the
policy turns ``separation_of_duties.exceptions`` off — never the person who proposed it.

A value that would except (almost) every event (``*``, ``?*``, ``[!~]*``, ``0.0.0.0/0``, a network
wider than /8 or /16 for IPv6: ``soar.breadth.exception_value_problem``) is refused when it is
proposed, and again when it is approved (a document proposed earlier or written by hand).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from soar.alerts import fingerprint, utcnow_iso
from soar.audit import record
from soar.breadth import exception_value_problem
from soar.config import Settings
from soar.errors import Forbidden, InputError, NotFound, SoarError
from soar.records.alert import AlertState
from soar.scope import Scopes, scopes_for
from soar.store import Store

if TYPE_CHECKING:
    from soar.access import Principal

ALERTS = "alerts"
VERDICTS = "verdicts"
EXCEPTIONS = "exceptions"
FIELD = re.compile(r"^[A-Za-z_@][A-Za-z0-9_.@-]{0,120}$")


class TooBroad(SoarError):
    """A stored exception that would except (almost) every event cannot be approved (HTTP 409)."""


Verdict = Literal["true_positive", "false_positive"]
ALIASES = {"tp": "true_positive", "fp": "false_positive", "true": "true_positive", "false": "false_positive"}


class ExceptionProposal(BaseModel):
    """Which events the rule should stop matching: a field and its values (exact, CIDR or glob)."""

    model_config = ConfigDict(extra="forbid")

    field: str = Field(description="ECS field, e.g. source.ip or user.name")
    values: list[str] = Field(min_length=1, max_length=100, description="exact values, CIDRs or globs")
    shared: bool = Field(False, description="apply to every rule, not just this alert's rule")
    reason: str = Field("", max_length=2000)

    @field_validator("field")
    @classmethod
    def _field(cls, value: str) -> str:
        if not FIELD.match(value):
            raise ValueError(f"not a field name: {value!r}")
        return value

    @field_validator("values")
    @classmethod
    def _values(cls, values: list[str]) -> list[str]:
        for v in values:
            if not v.strip() or len(v) > 500:
                raise ValueError("values must be non-empty strings of at most 500 characters")
            problem = exception_value_problem(v)
            if problem:
                raise ValueError(problem)
        return values


class VerdictInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    verdict: Verdict
    note: str = Field("", max_length=2000)
    exception: ExceptionProposal | None = None


def parse_verdict(data: dict[str, Any]) -> VerdictInput:
    """Validate a verdict from the CLI or API; InputError naming the field."""
    raw = dict(data)
    if isinstance(raw.get("verdict"), str):
        raw["verdict"] = ALIASES.get(raw["verdict"].lower(), raw["verdict"].lower())
    try:
        parsed = VerdictInput.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "verdict"
        raise InputError(f"{where}: {err['msg'].removeprefix('Value error, ')}") from exc
    if parsed.exception is not None and parsed.verdict != "false_positive":
        raise InputError("exception: only a false positive can propose a rule exception")
    return parsed


def record_verdict(
    store: Store,
    settings: Settings,
    alert_id: str,
    verdict: VerdictInput,
    *,
    analyst: str,
    role: str,
    via: Literal["cli", "api", "slack"],
) -> dict[str, Any]:
    """Store the verdict (and a proposed exception); return the verdict document."""
    alert_rec = store.get(ALERTS, alert_id)
    if alert_rec is None:
        raise InputError(f"unknown alert id {alert_id!r}")
    alert = alert_rec.doc
    rule_id = str((alert.get("rule") or {}).get("id") or "")
    now = utcnow_iso()
    exception_doc: dict[str, Any] | None = None
    if verdict.exception is not None:
        proposal = verdict.exception
        exc_id = "exc-" + fingerprint(rule_id if not proposal.shared else "*", proposal.field, sorted(proposal.values))
        exception_doc = {
            "id": exc_id,
            "status": "proposed",
            "rule_id": None if proposal.shared else rule_id,
            "field": proposal.field,
            "values": list(proposal.values),
            "reason": proposal.reason,
            "from_alert": alert_id,
            "scope": [sc.to_doc() for sc in scopes_for(settings).of_alert(alert)],
            "proposed_by": analyst,
            "proposed_at": now,
            "approved_by": None,
            "approved_at": None,
        }
    entry = {"verdict": verdict.verdict, "note": verdict.note, "analyst": analyst, "role": role, "via": via, "at": now}
    existing = store.get(VERDICTS, alert_id)
    history = list(existing.doc.get("history", [])) if existing else []
    doc = {
        "id": alert_id,
        "alert_id": alert_id,
        "rule_id": rule_id,
        "rule_title": (alert.get("rule") or {}).get("title"),
        "alert_time": alert.get("@timestamp"),
        **entry,
        "exception_id": exception_doc["id"] if exception_doc else None,
        "history": [*history, entry],
    }
    if exception_doc is not None and not store.create(EXCEPTIONS, str(exception_doc["id"]), exception_doc):
        exception_doc = None  # the same exception was already proposed: nothing new to write
    store.put(VERDICTS, alert_id, doc)
    _set_alert_verdict(store, alert_id, verdict.verdict)
    record(
        store,
        actor=analyst,
        action="verdict.recorded",
        target=alert_id,
        details={"verdict": verdict.verdict, "rule_id": rule_id, "role": role, "via": via, "note": verdict.note},
        settings=settings,
    )
    if exception_doc is not None:
        record(
            store,
            actor=analyst,
            action="exception.proposed",
            target=str(exception_doc["id"]),
            details={k: exception_doc[k] for k in ("rule_id", "field", "values", "from_alert")},
            settings=settings,
        )
    return doc


def _set_alert_verdict(store: Store, alert_id: str, verdict: Verdict) -> None:
    def change(doc: dict[str, Any]) -> dict[str, Any]:
        state = AlertState.from_doc(doc, alert_id)
        state.verdict = verdict
        return state.to_doc()

    store.mutate(ALERTS, alert_id, change)


def visible_exceptions(
    store: Store, principal: Principal, status: str | None = None, limit: int = 10_000
) -> list[dict[str, Any]]:
    """The exceptions whose scope the principal may read, oldest proposal first."""
    from soar.access import authorize_in

    where = {"status": status} if status else None
    docs = [r.doc for r in store.find(EXCEPTIONS, where, order_by="proposed_at", limit=limit)]
    return [d for d in docs if authorize_in(principal, "alerts:read", Scopes.of_exception(d)).allowed]


def decide_exception(
    store: Store, settings: Settings, exception_id: str, *, principal: Principal, approve: bool
) -> dict[str, Any]:
    """Approve (the scheduler starts applying it) or reject a proposed exception, as ``principal``.

    An exception outside the principal's scope is ``NotFound`` (like an unknown id); its proposer may not
    decide it (separation of duties, on by default).
    """
    from soar.access import authorize_in
    from soar.policy import load_policy

    unknown = f"unknown exception id {exception_id!r}"
    sod = load_policy(settings.policy_path).separation_of_duties.exceptions
    wrote = False  # as of the last (the deciding) call of change

    def change(doc: dict[str, Any]) -> dict[str, Any] | None:
        nonlocal wrote
        wrote = False
        scopes = Scopes.of_exception(doc)
        if not authorize_in(principal, "alerts:read", scopes).allowed:
            raise NotFound(unknown)
        allowed = authorize_in(principal, "exceptions:approve", scopes)
        if not allowed.allowed:
            raise Forbidden(f"exception {exception_id}: {allowed.reason}")
        if doc.get("status") != "proposed":
            return None  # idempotent: a second decision changes nothing
        if sod and doc.get("proposed_by") == principal.name:
            raise Forbidden(
                f"exception {exception_id}: {principal.name} proposed it, so someone else must approve or reject it "
                "(policy: separation_of_duties.exceptions)"
            )
        if approve:  # proposed before the guard, or written by hand: never approve a value that excepts everything
            values = doc.get("values")
            for v in values if isinstance(values, list) else [values]:
                problem = exception_value_problem(str(v))
                if problem:
                    raise TooBroad(f"exception {exception_id}: {problem}; reject it instead")
        wrote = True
        return {
            **doc,
            "status": "approved" if approve else "rejected",
            "approved_by": principal.name,
            "approved_at": utcnow_iso(),
        }

    rec = store.mutate(EXCEPTIONS, exception_id, change)
    if rec is None:
        raise NotFound(unknown)
    doc = rec.doc
    if wrote:
        record(
            store,
            actor=principal.name,
            action="exception.approved" if approve else "exception.rejected",
            target=exception_id,
            details={
                "rule_id": doc.get("rule_id"),
                "field": doc.get("field"),
                "values": doc.get("values"),
                "role": principal.role,
            },
            settings=settings,
        )
    return doc


def rule_precision(verdicts: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per rule: true and false positives and precision = TP / (TP + FP) (None without verdicts)."""
    out: dict[str, dict[str, Any]] = {}
    for v in verdicts:
        rule = str(v.get("rule_id") or "?")
        row = out.setdefault(rule, {"rule_id": rule, "title": v.get("rule_title"), "tp": 0, "fp": 0})
        if v.get("verdict") == "true_positive":
            row["tp"] += 1
        elif v.get("verdict") == "false_positive":
            row["fp"] += 1
    for row in out.values():
        judged = row["tp"] + row["fp"]
        row["precision"] = round(row["tp"] / judged, 4) if judged else None
    return out


def precision_from_store(store: Store, rule_ids: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """Per-rule precision from the stored verdicts (for ``soar rules coverage`` and dashboards)."""
    where = {"rule_id": rule_ids} if rule_ids else None
    return rule_precision([r.doc for r in store.find(VERDICTS, where, limit=100_000)])
