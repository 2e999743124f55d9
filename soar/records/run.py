"""The ``runs`` document: a run, its step results, their instances and each instance's attempts, its rollback plan.

The engine holds a run as this model while it advances it (``soar.playbooks.state.HeldRun``) and saves
``to_doc()``; the API, the CLI, notify and review read it with ``from_doc``.

Pure. One document per (playbook, alert) holds the whole run (``soar/playbooks/records.py``
says why). ``Run.from_doc`` reads every document soar has written — one without
``schema_version`` is version 1 — and refuses a malformed one naming the field
(``runs/run-…: field steps.isolate.instances[0].status: …``). ``to_doc`` writes the same
fields back (an optional one only when it has a value) plus any field this version does not
model, so a round trip loses nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from soar.records._read import VERSION_FIELD, Reader, check_version, modelled, put, with_nulls
from soar.records.approval import Vote
from soar.records.parts import ActionOutcome, PolicyDecision, TargetRef

if TYPE_CHECKING:
    from soar.records.approval import Approval

KIND = "runs"
SCHEMA_VERSION = 1

RunStatus = Literal["running", "waiting_lock", "waiting_approval", "succeeded", "failed", "rolled_back", "aborted"]
RUN_STATUSES: tuple[RunStatus, ...] = RunStatus.__args__  # type: ignore[attr-defined]
TERMINAL: tuple[RunStatus, ...] = ("succeeded", "failed", "rolled_back", "aborted")
Phase = Literal["steps", "rollback"]
PHASES: tuple[Phase, ...] = ("steps", "rollback")
StepStatus = Literal["pending", "in_progress", "succeeded", "failed", "skipped", "denied"]
STEP_STATUSES: tuple[StepStatus, ...] = StepStatus.__args__  # type: ignore[attr-defined]
InstanceStatus = Literal[
    "pending",
    "ready",
    "running",
    "waiting_approval",
    "succeeded",
    "failed",
    "refused",
    "denied",
    "expired",
    "interrupted",
    "skipped",
]
INSTANCE_STATUSES: tuple[InstanceStatus, ...] = InstanceStatus.__args__  # type: ignore[attr-defined]
AttemptStatus = Literal["running", "succeeded", "failed", "interrupted"]
ATTEMPT_STATUSES: tuple[AttemptStatus, ...] = AttemptStatus.__args__  # type: ignore[attr-defined]
OnFailure = Literal["continue", "abort", "rollback"]
ON_FAILURE: tuple[OnFailure, ...] = OnFailure.__args__  # type: ignore[attr-defined]
CALL_PARAMS = "_params"  # where an instance keeps its unredacted parameters (``Instance.call_params``)


@dataclass(slots=True)
class Attempt:
    """One try of an instance's action (``running`` is the crash marker written before the call)."""

    n: int
    status: AttemptStatus
    dry_run: bool = False
    started_at: str | None = None
    started_seq: int | None = None
    worker: str | None = None
    finished_at: str | None = None
    finished_seq: int | None = None
    duration_ms: float | None = None
    exit_status: int | None = None
    stdout: str | None = None
    stderr: str | None = None
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    nulls: frozenset[str] = field(default=frozenset(), compare=False, repr=False)

    @classmethod
    def read(cls, r: Reader) -> Attempt:
        return cls(
            n=r.integer("n"),
            status=r.choice("status", ATTEMPT_STATUSES),
            dry_run=r.flag("dry_run", False),
            started_at=r.opt_string("started_at"),
            started_seq=r.opt_integer("started_seq"),
            worker=r.opt_string("worker"),
            finished_at=r.opt_string("finished_at"),
            finished_seq=r.opt_integer("finished_seq"),
            duration_ms=r.opt_number("duration_ms"),
            exit_status=r.opt_integer("exit_status"),
            stdout=r.opt_string("stdout"),
            stderr=r.opt_string("stderr"),
            error=r.opt_string("error"),
            extra=r.unknown(modelled(cls)),
            nulls=r.nulls(modelled(cls)),
        )

    def to_doc(self) -> dict[str, Any]:
        out: dict[str, Any] = {"n": self.n, "status": self.status, "dry_run": self.dry_run}
        for name in ("started_at", "started_seq", "worker", "finished_at", "finished_seq", "duration_ms"):
            put(out, name, getattr(self, name))
        for name in ("exit_status", "stdout", "stderr", "error"):
            put(out, name, getattr(self, name))
        return {**self.extra, **with_nulls(out, self.nulls)}

    def finish(
        self,
        status: AttemptStatus,
        *,
        finished_at: str,
        finished_seq: int,
        duration_ms: float,
        exit_status: int | None,
        stdout: str | None,
        stderr: str | None,
        error: str | None,
    ) -> None:
        """Record the action's outcome; what it left empty is written as null (the record says it ran)."""
        self.status, self.finished_at, self.finished_seq = status, finished_at, finished_seq
        self.duration_ms, self.exit_status = duration_ms, exit_status
        self.stdout, self.stderr, self.error = stdout, stderr, error
        self.nulls |= {n for n in ("exit_status", "stdout", "stderr", "error") if getattr(self, n) is None}


@dataclass(slots=True)
class ApprovalSnapshot:
    """What an instance remembers of its decided approval request."""

    status: str
    approvers: list[Vote] = field(default_factory=list)
    denials: list[Vote] = field(default_factory=list)
    required: int = 1

    @classmethod
    def read(cls, r: Reader) -> ApprovalSnapshot:
        return cls(
            status=r.string("status"),
            approvers=[Vote.read(r.child(f"approvers[{i}]", v)) for i, v in enumerate(r.array("approvers"))],
            denials=[Vote.read(r.child(f"denials[{i}]", v)) for i, v in enumerate(r.array("denials"))],
            required=r.integer("required", 1),
        )

    def to_doc(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "approvers": [v.to_doc() for v in self.approvers],
            "denials": [v.to_doc() for v in self.denials],
            "required": self.required,
        }

    @classmethod
    def of(cls, approval: Approval) -> ApprovalSnapshot:
        """What an instance keeps of its decided request: the status, who voted which way, how many were needed."""
        return cls(
            status=approval.status,
            approvers=list(approval.approvers),
            denials=list(approval.denials),
            required=approval.required,
        )


@dataclass(slots=True)
class Instance:
    """One rendered instance of a step (one per for_each item): its targets, policy decision and attempts.

    ``call_params`` (stored as ``_params``) are the unredacted parameters the action is called with: the
    engine's own, which the API and the CLI never show (``params`` is their redacted copy).
    """

    key: str
    status: InstanceStatus
    params: dict[str, Any] = field(default_factory=dict)
    targets: list[TargetRef] = field(default_factory=list)
    item: Any = None
    dry_run: bool | None = None
    decision: PolicyDecision | None = None
    approval_id: str | None = None
    approval: ApprovalSnapshot | None = None
    quota: list[str] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)
    interruptions: int = 0
    result: ActionOutcome | None = None
    error: str | None = None
    call_params: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    nulls: frozenset[str] = field(default=frozenset(), compare=False, repr=False)

    @classmethod
    def read(cls, r: Reader) -> Instance:
        approval, decision, result = r.opt_obj("approval"), r.opt_obj("decision"), r.opt_obj("result")
        known = _INSTANCE_FIELDS
        return cls(
            key=r.string("key"),
            status=r.choice("status", INSTANCE_STATUSES),
            params=r.obj("params"),
            targets=[TargetRef.read(r.child(f"targets[{i}]", t)) for i, t in enumerate(r.array("targets"))],
            item=r.doc.get("item"),
            dry_run=r.opt_flag("dry_run"),
            decision=None if decision is None else PolicyDecision.read(r.child("decision", decision)),
            approval_id=r.opt_string("approval_id"),
            approval=None if approval is None else ApprovalSnapshot.read(r.child("approval", approval)),
            quota=r.strings("quota"),
            attempts=[Attempt.read(r.child(f"attempts[{i}]", a)) for i, a in enumerate(r.array("attempts"))],
            interruptions=r.integer("interruptions", 0),
            result=None if result is None else ActionOutcome.read(r.child("result", result)),
            error=r.opt_string("error"),
            call_params=r.opt_obj(CALL_PARAMS),
            extra=r.unknown(known),
            nulls=r.nulls(known),
        )

    @property
    def target_keys(self) -> set[str]:
        """The keys of what the instance acts on (``host:web-01``): what locks, blast radius and containment count."""
        return {t.key for t in self.targets}

    @property
    def unverified(self) -> bool:
        """Whether the action ran but its effect was not proven (``verified`` false)."""
        return self.result is not None and self.result.verified is False

    @property
    def last_attempt(self) -> Attempt | None:
        return self.attempts[-1] if self.attempts else None

    def set_error(self, error: str | None) -> None:
        """The instance's error after an attempt; a cleared one is written as null (the attempt left none)."""
        self.error = error
        if error is None:
            self.nulls |= {"error"}

    def to_doc(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "key": self.key,
            "params": self.params,
            "targets": [t.to_doc() for t in self.targets],
            "item": self.item,
            "dry_run": self.dry_run,
            "status": self.status,
            "decision": None if self.decision is None else self.decision.to_doc(),
            "approval_id": self.approval_id,
            "quota": self.quota,
            "attempts": [a.to_doc() for a in self.attempts],
            "interruptions": self.interruptions,
            "result": None if self.result is None else self.result.to_doc(),
        }
        put(out, "error", self.error)
        put(out, "approval", None if self.approval is None else self.approval.to_doc())
        put(out, CALL_PARAMS, self.call_params)
        return {**self.extra, **with_nulls(out, self.nulls)}


_INSTANCE_FIELDS = (modelled(Instance) - {"call_params"}) | {CALL_PARAMS}


@dataclass(slots=True)
class StepResult:
    """A step of the run as it happened: its status, instances and place in the run's sequence."""

    id: str
    status: StepStatus
    uses: str = ""
    phase: Phase = "steps"
    for_each: bool = False
    on_failure: OnFailure = "continue"
    instances: list[Instance] = field(default_factory=list)
    error: str | None = None
    dry_run: bool | None = None
    started_at: str | None = None
    started_seq: int | None = None
    finished_at: str | None = None
    finished_seq: int | None = None
    skip_reason: str | None = None
    denied_by: list[Vote] | None = None  # who denied a ``denied`` step (``Vote.brief``)
    extra: dict[str, Any] = field(default_factory=dict)
    nulls: frozenset[str] = field(default=frozenset(), compare=False, repr=False)

    @property
    def order(self) -> tuple[int, int, str]:
        """Sort key: the run's sequence when the step began, else (older records) its start time."""
        if self.started_seq is not None:
            return (0, self.started_seq, "")
        return (1, 0, self.started_at or self.finished_at or "9999")

    @classmethod
    def read(cls, r: Reader, step_id: str) -> StepResult:
        denied = r.doc.get("denied_by")
        return cls(
            id=r.string("id", step_id),
            status=r.choice("status", STEP_STATUSES),
            uses=r.string("uses", ""),
            phase=r.choice("phase", PHASES, "steps"),
            for_each=r.flag("for_each", False),
            on_failure=r.choice("on_failure", ON_FAILURE, "continue"),
            instances=[Instance.read(r.child(f"instances[{i}]", d)) for i, d in enumerate(r.array("instances"))],
            error=r.opt_string("error"),
            dry_run=r.opt_flag("dry_run"),
            started_at=r.opt_string("started_at"),
            started_seq=r.opt_integer("started_seq"),
            finished_at=r.opt_string("finished_at"),
            finished_seq=r.opt_integer("finished_seq"),
            skip_reason=r.opt_string("skip_reason"),
            denied_by=None
            if denied is None
            else [Vote.read(r.child(f"denied_by[{i}]", d)) for i, d in enumerate(r.array("denied_by"))],
            extra=r.unknown(modelled(cls)),
            nulls=r.nulls(modelled(cls)),
        )

    def to_doc(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "uses": self.uses,
            "phase": self.phase,
            "for_each": self.for_each,
            "on_failure": self.on_failure,
            "status": self.status,
            "instances": [i.to_doc() for i in self.instances],
            "error": self.error,
            "dry_run": self.dry_run,
            "started_at": self.started_at,
            "started_seq": self.started_seq,
            "finished_at": self.finished_at,
        }
        put(out, "finished_seq", self.finished_seq)
        put(out, "skip_reason", self.skip_reason)
        put(out, "denied_by", None if self.denied_by is None else [v.to_doc() for v in self.denied_by])
        return {**self.extra, **with_nulls(out, self.nulls)}


@dataclass(slots=True)
class StepRef:
    """A step of a run's section: a playbook step (``explicit``), or a revert the engine derived from a step that
    ran (``uses``, and ``params``: the unredacted parameters of the instance it undoes)."""

    id: str
    explicit: bool = True
    uses: str | None = None
    params: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def read(cls, r: Reader) -> StepRef:
        return cls(
            id=r.string("id"),
            explicit=r.flag("explicit", False),
            uses=r.opt_string("uses"),
            params=r.opt_obj("params"),
            extra=r.unknown(modelled(cls)),
        )

    def to_doc(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "explicit": self.explicit}
        put(out, "uses", self.uses)
        put(out, "params", self.params)
        return {**self.extra, **out}


@dataclass(slots=True)
class RollbackPlan:
    """Why a run is rolled back and the steps its rollback phase runs (``seq``: the run's event when it began)."""

    reason: str | None = None
    steps: list[StepRef] = field(default_factory=list)
    seq: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def read(cls, r: Reader) -> RollbackPlan:
        return cls(
            reason=r.opt_string("reason"),
            steps=[StepRef.read(r.child(f"steps[{i}]", e)) for i, e in enumerate(r.array("steps"))],
            seq=r.opt_integer("seq"),
            extra=r.unknown(modelled(cls)),
        )

    def to_doc(self) -> dict[str, Any]:
        out: dict[str, Any] = {"reason": self.reason, "steps": [e.to_doc() for e in self.steps]}
        put(out, "seq", self.seq)
        return {**self.extra, **out}


@dataclass(slots=True, frozen=True)
class PlaybookRef:
    """The playbook a run follows, as it was when the run began (``text``: a resumed run follows it)."""

    name: str
    path: str = ""
    version_hash: str = ""
    text: str | None = None

    def to_doc(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "path": self.path, "version_hash": self.version_hash}
        put(out, "text", self.text)
        return out


@dataclass(slots=True, frozen=True)
class Lease:
    """Which worker holds the run, until when (epoch seconds)."""

    owner: str
    until: float

    def to_doc(self) -> dict[str, Any]:
        return {"owner": self.owner, "until": self.until}


@dataclass(slots=True)
class Run:
    """One run of a playbook on one alert."""

    id: str
    playbook: PlaybookRef
    alert_id: str
    status: RunStatus
    phase: Phase = "steps"
    cursor: int = 0
    rule_id: str | None = None
    alert: dict[str, Any] = field(default_factory=dict)
    origin: str = "alert"
    requested_by: str | None = None
    inputs: dict[str, Any] = field(default_factory=dict)
    steps: dict[str, StepResult] = field(default_factory=dict)
    rollback: RollbackPlan = field(default_factory=RollbackPlan)
    contained_targets: list[str] = field(default_factory=list)
    lease: Lease | None = None
    error: str | None = None
    outputs: dict[str, Any] = field(default_factory=dict)
    created_at: str | None = None
    updated_at: str | None = None
    finished_at: str | None = None
    dry_run: bool | None = None  # absent in records from before it was stamped: see ``is_dry``
    seq: int | None = None  # the run's event counter (absent in records from before it was kept)
    event_seq: int | None = None
    finished_seq: int | None = None
    failed_steps: list[str] | None = None
    denied_steps: list[str] | None = None
    schema_version: int = SCHEMA_VERSION
    extra: dict[str, Any] = field(default_factory=dict)
    nulls: frozenset[str] = field(default=frozenset(), compare=False, repr=False)

    @classmethod
    def from_doc(cls, doc: Any, id: str | None = None) -> Run:
        """The run of a stored document (``id``: the store's, for documents that lack their own)."""
        rid = str((doc.get("id") if isinstance(doc, dict) else None) or id or "?")
        version = check_version(KIND, rid, doc if isinstance(doc, dict) else {}, SCHEMA_VERSION)
        r = Reader(KIND, rid, doc)
        pb = r.child("playbook", r.doc.get("playbook"))
        lease = r.opt_obj("lease")
        steps = r.child("steps", r.obj("steps"))
        return cls(
            id=r.string("id", rid),
            playbook=PlaybookRef(
                name=pb.string("name"),
                path=pb.string("path", ""),
                version_hash=pb.string("version_hash", ""),
                text=pb.opt_string("text"),
            ),
            alert_id=str(r.ident("alert_id") or ""),
            status=r.choice("status", RUN_STATUSES),
            phase=r.choice("phase", PHASES, "steps"),
            cursor=r.integer("cursor", 0),
            rule_id=r.ident("rule_id"),
            alert=r.obj("alert", None),
            origin=r.string("origin", "alert"),
            requested_by=r.opt_string("requested_by"),
            inputs=r.obj("inputs", None),
            steps={sid: StepResult.read(steps.child(sid, s), sid) for sid, s in steps.doc.items()},
            rollback=RollbackPlan.read(r.child("rollback", r.obj("rollback", {"reason": None, "steps": []}))),
            contained_targets=r.strings("contained_targets"),
            lease=None if lease is None else _lease(r.child("lease", lease)),
            error=r.opt_string("error"),
            outputs=r.obj("outputs", None),
            created_at=r.opt_string("created_at"),
            updated_at=r.opt_string("updated_at"),
            finished_at=r.opt_string("finished_at"),
            dry_run=r.opt_flag("dry_run"),
            seq=r.opt_integer("seq"),
            event_seq=r.opt_integer("event_seq"),
            finished_seq=r.opt_integer("finished_seq"),
            failed_steps=r.strings("failed_steps") if "failed_steps" in r.doc else None,
            denied_steps=r.strings("denied_steps") if "denied_steps" in r.doc else None,
            schema_version=version,
            extra=r.unknown(modelled(cls)),
            nulls=r.nulls(modelled(cls)),
        )

    def to_doc(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            VERSION_FIELD: SCHEMA_VERSION,
            "id": self.id,
            "playbook": self.playbook.to_doc(),
            "alert_id": self.alert_id,
            "rule_id": self.rule_id,
            "alert": self.alert,
            "origin": self.origin,
            "requested_by": self.requested_by,
            "inputs": self.inputs,
            "status": self.status,
            "phase": self.phase,
            "cursor": self.cursor,
            "steps": {sid: s.to_doc() for sid, s in self.steps.items()},
            "rollback": self.rollback.to_doc(),
            "contained_targets": self.contained_targets,
            "lease": None if self.lease is None else self.lease.to_doc(),
            "error": self.error,
            "outputs": self.outputs,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "finished_at": self.finished_at,
        }
        for name in ("dry_run", "seq", "event_seq", "finished_seq", "failed_steps", "denied_steps"):
            put(out, name, getattr(self, name))
        return {**self.extra, **with_nulls(out, self.nulls)}

    @property
    def steps_in_order(self) -> list[StepResult]:
        """The steps as they happened (the run's own sequence)."""
        return sorted(self.steps.values(), key=lambda s: s.order)

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL

    def tick(self) -> int:
        """The run's next event number: a counter kept in the run, so it survives workers and clocks."""
        self.seq = (self.seq or 0) + 1
        return self.seq

    def list_unfinished(self, step_id: str, *, denied: bool) -> None:
        """Name a step that ended denied (``denied_steps``) or failed (``failed_steps``) in the run, once."""
        name = "denied_steps" if denied else "failed_steps"
        listed: list[str] = getattr(self, name) or []
        if step_id not in listed:
            listed.append(step_id)
        setattr(self, name, listed)

    def held_by_other(self, owner: str, now: float) -> bool:
        """Whether another worker's lease on the run is still running."""
        return self.lease is not None and self.lease.until > now and self.lease.owner != owner


def _lease(r: Reader) -> Lease:
    return Lease(owner=r.string("owner"), until=r.number("until"))


def attempts_planned(attempts: list[Attempt]) -> bool:
    """Attempts that touched nothing: there were some, and every one was a dry run (older records)."""
    return bool(attempts) and all(a.dry_run for a in attempts)


def instance_planned(inst: Instance) -> bool:
    """An instance that touched nothing: recorded ``dry_run``, or (older records) every attempt was."""
    return inst.dry_run if inst.dry_run is not None else attempts_planned(inst.attempts)


def step_planned(step: StepResult) -> bool:
    """A step that touched nothing: recorded ``dry_run``, or (older records) every attempt of it was."""
    if step.dry_run is not None:
        return step.dry_run
    return attempts_planned([a for i in step.instances for a in i.attempts])


def run_planned(run: Run) -> bool:
    """A dry run: recorded so when it started, or (older records) every attempt of every step was a dry one."""
    if run.dry_run is not None:
        return run.dry_run
    return attempts_planned([a for s in run.steps.values() for i in s.instances for a in i.attempts])
