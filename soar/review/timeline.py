"""A run's timeline: first event → detection → alert → steps, approvals, verifications → containment → release.

Pure: built from the documents the engine stored (alert, run with its steps, approvals,
audit entries), so it can be rebuilt at any time and tested without services.
The run is read as the typed record (:class:`~soar.records.Run`, ``Run.from_doc``), approvals as
:class:`~soar.records.Approval`; a malformed time leaves a gap, never a crash, and a run record the model
cannot read is one line, "unreadable run record <id>: <reason>" (:class:`Unreadable`), never a traceback:
a report of a damaged run is still a report.

Order: the run's own events (step started, skipped, finished, approval requested, rollback, run finished,
the audit entries it wrote) keep the order of the run's event sequence (``seq`` in the run document), so
a step never shows "skipped" before "started" nor the run "finished" before its last step, whatever the
clocks; events from outside the run (the first event, detection, people's decisions) are placed among
them by time. Older records without a sequence are ordered by time, ties in the order things happen.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from soar.errors import RecordError
from soar.playbooks import outcomes
from soar.records import Approval, Run
from soar.records.parts import ActionOutcome
from soar.records.run import StepResult, run_planned, step_planned
from soar.review.times import from_iso, to_iso

CONTAIN_IMPACTS = ("contain", "destructive")
# What the host integration ships; a registry (impacts_from_registry) replaces this when available.
DEFAULT_IMPACTS: dict[str, str] = {
    "hosts.isolate_host": "contain",
    "hosts.block_ip": "contain",
    "hosts.lock_account": "contain",
    "hosts.kill_sessions": "contain",
    "hosts.kill_process": "destructive",
    "hosts.release_host": "release",
    "hosts.unblock_ip": "release",
    "hosts.unlock_account": "release",
    "hosts.collect_triage": "read",
}

NEVER = datetime.min.replace(tzinfo=UTC)
# audit actions worth a line in a run's timeline (steps and approvals come from their own records)
AUDIT_EVENTS = (
    "policy.",
    "verdict.",
    "exception.",
    "alert.",
    "playbook.rollback",
    "approval.refused",
    "approval.expired",
    "containment.",  # the containment watch: drifts, repairs, escalations, the release (soar.containment)
)
ImpactOf = Callable[[str], str | None]


@dataclass(frozen=True)
class Unreadable:
    """A run record ``Run.from_doc`` refused: shown as one line, left out of every figure."""

    id: str
    reason: str

    @property
    def line(self) -> str:
        return f"unreadable run record {self.id}: {self.reason}"


RunLike = Run | Unreadable | Mapping[str, Any]


def read_run(run: RunLike, id: str | None = None) -> Run | Unreadable:
    """The typed run of a stored document (``id``: the store's), or why it cannot be read."""
    if isinstance(run, Run | Unreadable):
        return run
    try:
        return Run.from_doc(run, id)
    except RecordError as exc:
        where = f"{exc.kind}/{exc.id}: "
        text = str(exc)
        return Unreadable(exc.id, text[len(where) :] if text.startswith(where) else text)


def default_impact_of(name: str) -> str | None:
    return DEFAULT_IMPACTS.get(name)


def impacts_from_registry(settings: Any) -> ImpactOf:
    """Impacts from the action registry; the revert of a containing action counts as a release."""
    from soar.actions import load_registry

    impacts = dict(DEFAULT_IMPACTS)
    for spec in load_registry(settings).specs():
        impacts[spec.name] = spec.impact
    for spec in load_registry(settings).specs():
        if spec.revert and spec.impact in CONTAIN_IMPACTS:
            impacts[spec.revert] = "release"
    return impacts.get


@dataclass(frozen=True)
class Event:
    at: datetime | None
    kind: str
    title: str
    detail: str = ""
    actor: str = ""
    ok: bool | None = None
    seq: tuple[int, int] | None = None  # (the run's event number, then within it), for the run's own events

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": to_iso(self.at) if self.at else None,
            "kind": self.kind,
            "title": self.title,
            "detail": self.detail,
            "actor": self.actor,
            "ok": self.ok,
            "seq": self.seq[0] if self.seq else None,
        }


# Ties in time (older records, events from outside the run) go in the order things happen.
RANK = {
    kind: n
    for n, kind in enumerate(
        (
            "first_event",
            "detected",
            "run_started",
            "approval_requested",
            "approval_decided",
            "step_started",
            "step_finished",
            "verification",
            "contained",
            "released",
            "audit",
            "run_finished",
        )
    )
}


def _seq(value: Any, within: int = 0) -> tuple[int, int] | None:
    return (value, within) if isinstance(value, int) and not isinstance(value, bool) else None


def _by_time(e: Event) -> tuple[bool, datetime, int]:
    return (e.at is None, e.at or NEVER, RANK.get(e.kind, len(RANK)))


def in_order(events: Iterable[Event]) -> list[Event]:
    """The run's events in its sequence, the others merged in by time (see the module's docstring)."""
    events = list(events)
    outside = sorted((e for e in events if e.seq is None), key=_by_time)
    run = sorted((e for e in events if e.seq is not None), key=lambda e: (e.seq, RANK.get(e.kind, len(RANK))))
    out: list[Event] = []
    i = j = 0
    while i < len(outside) and j < len(run):
        if outside[i].at is not None and (run[j].at is None or _by_time(outside[i]) < _by_time(run[j])):
            out.append(outside[i])
            i += 1
        else:
            out.append(run[j])
            j += 1
    return out + outside[i:] + run[j:]


MILESTONES = ("first_event", "detected", "run_started", "first_action", "contained", "released", "closed")
SEGMENTS = (
    ("first_event", "detected", "time to detect"),
    ("detected", "first_action", "time to first action"),
    ("first_action", "contained", "time to contain (from first action)"),
    ("detected", "contained", "time to contain"),
    ("contained", "released", "containment held"),
    ("detected", "closed", "time to resolve"),
)


@dataclass
class Timeline:
    run_id: str
    playbook: str
    status: str
    alert: dict[str, Any]
    events: list[Event]
    milestones: dict[str, datetime | None]
    steps: list[dict[str, Any]]
    approvals: list[dict[str, Any]]
    evidence: list[dict[str, Any]]
    approval_wait: float | None = None
    human_decisions: int = 0
    dry_run: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    watch: list[dict[str, Any]] = field(default_factory=list)  # the run's containments as the watch saw them
    unreadable: str | None = None  # "unreadable run record <id>: <reason>" when the model could not read the run

    def watch_totals(self) -> dict[str, Any] | None:
        """What the containment watch saw over the run's containments: looks, drifts, repairs, still in force."""
        if not self.watch:
            return None
        totals = {k: sum(int(c.get(k) or 0) for c in self.watch) for k in ("checks", "drifts", "repairs")}
        return {**totals, "in_force": sum(c.get("state") == "in_force" for c in self.watch)}

    def segments(self) -> list[dict[str, Any]]:
        out = []
        totals = self.watch_totals()
        for start, end, label in SEGMENTS:
            a, b = self.milestones.get(start), self.milestones.get(end)
            row = {"from": start, "to": end, "label": label, "seconds": (b - a).total_seconds() if a and b else None}
            if end == "released" and totals is not None:
                row.update(totals)
                row["detail"] = f"{totals['checks']} checks, {totals['drifts']} drifts, {totals['repairs']} repairs" + (
                    f"; {totals['in_force']} still in force" if totals["in_force"] else ""
                )
            out.append(row)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "playbook": self.playbook,
            "status": self.status,
            "dry_run": self.dry_run,
            "alert": self.alert,
            "milestones": {k: (to_iso(v) if v else None) for k, v in self.milestones.items()},
            "segments": self.segments(),
            "events": [e.to_dict() for e in self.events],
            "steps": self.steps,
            "approvals": self.approvals,
            "evidence": self.evidence,
            "approval_wait_seconds": self.approval_wait,
            "human_decisions": self.human_decisions,
            "containment_watch": self.watch,
        } | ({"unreadable": self.unreadable} if self.unreadable else {})


@dataclass(frozen=True)
class _Result:
    """One result for a step: the combined results of its instances (``for_each``: several)."""

    ok: bool | None
    verified: bool | None
    verification: list[dict[str, Any]]
    error: str | None
    evidence: list[Any]
    commands: list[dict[str, Any]]


def _result(step: StepResult) -> _Result:
    results: list[ActionOutcome] = [i.result for i in step.instances if i.result is not None]
    if not step.instances:
        return _Result(None, None, [], step.error, [], [])
    checks = [r.verified for r in results if r.verified is not None]
    return _Result(
        ok=all(r.ok for r in results) if results else None,
        verified=all(checks) if checks else None,
        verification=[r.verification for r in results if r.verification],
        error=step.error or "; ".join(str(r.error) for r in results if r.error) or None,
        evidence=[e for r in results for e in r.evidence],
        commands=[c for r in results for c in r.commands],
    )


def _first_attempt(step: StepResult) -> datetime | None:
    """When an action first really ran (a step is created before it waits for approval)."""
    return _min(from_iso(a.started_at) for i in step.instances for a in i.attempts)


def _min(values: Iterable[datetime | None]) -> datetime | None:
    present = [v for v in values if v is not None]
    return min(present) if present else None


def _first(
    marks: list[tuple[datetime | None, tuple[int, int] | None]],
) -> tuple[datetime, tuple[int, int] | None] | None:
    """The earliest (time, run sequence) of a milestone reached by several steps."""
    present = [(at, seq) for at, seq in marks if at is not None]
    return min(present, key=lambda m: m[0]) if present else None


def build_timeline(
    run: RunLike,
    *,
    alert: dict[str, Any] | None = None,
    approvals: Iterable[Approval] = (),
    audit: Iterable[dict[str, Any]] = (),
    impact_of: ImpactOf = default_impact_of,
) -> Timeline:
    """The timeline of a run (typed, or its stored document); an unreadable record gives a one-line timeline."""
    read = read_run(run)
    if isinstance(read, Unreadable):
        return unreadable_timeline(read, alert or {})
    return _timeline(read, alert or read.alert or {}, approvals, audit, impact_of)


def unreadable_timeline(bad: Unreadable, alert: dict[str, Any]) -> Timeline:
    """What a report shows of a run record the model cannot read: the one line that says so."""
    return Timeline(
        run_id=bad.id,
        playbook="?",
        status="unreadable",
        alert=alert,
        events=[Event(None, "unreadable", bad.line)],
        milestones=dict.fromkeys(MILESTONES),
        steps=[],
        approvals=[],
        evidence=[],
        unreadable=bad.line,
    )


def _timeline(
    run: Run,
    alert: dict[str, Any],
    approvals: Iterable[Approval],
    audit: Iterable[dict[str, Any]],
    impact_of: ImpactOf,
) -> Timeline:
    rule = alert.get("rule") or {}
    events: list[Event] = []
    first_event = from_iso(alert.get("first_event_time"))
    detected = from_iso(alert.get("@timestamp"))
    if first_event:
        events.append(Event(first_event, "first_event", "First matched event", _entity(alert)))
    if detected:
        events.append(
            Event(detected, "detected", f"Alert: {rule.get('title', '?')}", f"level {rule.get('level', '?')}", "soar")
        )
    run_started = from_iso(run.created_at)
    dry = run_planned(run)
    if run_started:
        title = f"Playbook {run.playbook.name} started" + (
            " (dry run: host actions planned, nothing touched)" if dry else ""
        )
        seq0 = _seq(0) if run.seq is not None else None
        events.append(Event(run_started, "run_started", title, "", "automation", seq=seq0))

    steps_out: list[dict[str, Any]] = []
    evidence: list[dict[str, Any]] = []
    contained: list[tuple[datetime | None, tuple[int, int] | None]] = []
    released: list[tuple[datetime | None, tuple[int, int] | None]] = []
    started: list[datetime | None] = []
    for step in run.steps_in_order:  # ``run.rollback.steps`` is the rollback *plan*; what ran has phase rollback
        uses = step.uses
        impact = impact_of(uses) or ""
        result = _result(step)
        t0, t1 = from_iso(step.started_at), from_iso(step.finished_at)
        ok, verified = result.ok, result.verified
        planned = step_planned(step)
        status = outcomes.shown_status(step.status, planned)
        skipped = step.skip_reason if status == "skipped" else None
        rollback = step.phase == "rollback"
        label = f"{'Rollback ' if rollback else ''}{step.id} ({uses})"
        began, ended = _seq(step.started_seq), _seq(step.finished_seq)
        if t0 and status != "skipped":  # a skipped step never started: it shows once, skipped, with why
            started.append(_first_attempt(step) or t0)
            events.append(Event(t0, "step_started", f"Step {label} started", impact, "automation", seq=began))
        if t1 or (skipped and t0):
            detail = str(skipped or result.error or "")
            events.append(
                Event(t1 or t0, "step_finished", f"Step {label} {status}", detail, "", ok, seq=ended or began)
            )
        if verified is not None:
            events.append(
                Event(
                    t1 or t0,
                    "verification",
                    f"Verification of {step.id}: {'held' if verified else 'FAILED'}",
                    _short(result.verification),
                    "",
                    verified,
                    seq=_seq(step.finished_seq, 1),
                )
            )
        after = _seq(step.finished_seq, 2)
        if ok and not planned and verified is not False and impact in CONTAIN_IMPACTS and not rollback:
            contained.append((t1, after))
        if ok and not planned and (impact == "release" or rollback):
            released.append((t1, after))
        for item in result.evidence:  # what the action returned (not a run field): kept as it was
            if isinstance(item, dict):
                evidence.append({"step": step.id, **{k: item.get(k) for k in ("name", "sha256", "path", "size")}})
        steps_out.append(
            {
                "id": step.id,
                "uses": uses,
                "impact": impact or None,
                "status": status,
                "dry_run": planned,
                "skip_reason": skipped,
                "ok": ok,
                "verified": verified,
                "rollback": rollback,
                "started_at": step.started_at,
                "finished_at": step.finished_at,
                "seconds": (t1 - t0).total_seconds() if t0 and t1 else None,
                "error": result.error,
                "commands": result.commands,
            }
        )

    approvals_out, waits, humans = [], [], 0
    for appr in approvals:
        requested = from_iso(appr.requested_at)
        votes = [("approve", v) for v in appr.approvers] + [("deny", v) for v in appr.denials]
        decisions = [{"decision": d, **v.to_doc()} for d, v in votes]
        decided = from_iso(appr.decided_at) or _min(from_iso(v.at) for v in appr.votes)
        if requested:
            what = f"Approval requested for {appr.step}"
            events.append(Event(requested, "approval_requested", what, seq=_seq(appr.run_seq)))
        for d, v in votes:
            humans += 1
            what = f"{d} by {v.approver} ({v.role})"
            events.append(Event(from_iso(v.at), "approval_decided", what, f"via {v.via}", v.approver, d == "approve"))
        wait = (decided - requested).total_seconds() if requested and decided else None
        if wait is not None:
            waits.append(wait)
        approvals_out.append(
            {
                "step_id": appr.step,
                "status": appr.status,
                "required": appr.required,
                "requested_at": appr.requested_at,
                "decided_at": appr.decided_at,
                "decisions": decisions,
                "wait_seconds": wait,
            }
        )
    for entry in audit:
        if str(entry.get("action", "")).startswith(AUDIT_EVENTS):
            raw = entry.get("details")
            details: dict[str, Any] = raw if isinstance(raw, dict) else {}
            events.append(
                Event(
                    from_iso(entry.get("at")),
                    "audit",
                    str(entry.get("action")) + (" (dry run)" if details.get("dry_run") else ""),
                    str(entry.get("target") or ""),
                    str(entry.get("actor") or ""),
                    seq=_seq(details.get("run_seq"), 1),
                )
            )
    closed = from_iso(run.finished_at)
    if closed:
        shown = outcomes.shown_status(run.status, dry)
        events.append(Event(closed, "run_finished", f"Run {shown}", run.error or "", seq=_seq(run.finished_seq)))
    first_contained, first_released = _first(contained), _first(released)
    if first_contained:
        events.append(Event(first_contained[0], "contained", "Containment verified", seq=first_contained[1]))
    if first_released:
        events.append(Event(first_released[0], "released", "Containment released", seq=first_released[1]))
    events = in_order(events)
    milestones = {
        "first_event": first_event,
        "detected": detected,
        "run_started": run_started,
        "first_action": _min(started),
        "contained": first_contained[0] if first_contained else None,
        "released": first_released[0] if first_released else None,
        "closed": closed,
    }
    return Timeline(
        run_id=run.id,
        playbook=run.playbook.name,
        status=outcomes.shown_status(run.status, dry),
        dry_run=dry,
        alert=alert,
        events=events,
        milestones=milestones,
        steps=steps_out,
        approvals=approvals_out,
        evidence=evidence,
        approval_wait=sum(waits) if waits else None,
        human_decisions=humans,
    )


def _entity(alert: dict[str, Any]) -> str:
    parts = []
    for name, key in (("host", "name"), ("user", "name"), ("source", "ip")):
        value = (alert.get(name) or {}).get(key) if isinstance(alert.get(name), dict) else None
        if value:
            parts.append(f"{name} {value}")
    return ", ".join(parts)


def _short(value: Any, limit: int = 200) -> str:
    text = "" if value in (None, {}, []) else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
