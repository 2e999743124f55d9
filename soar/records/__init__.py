"""Typed models of what soar stores: runs (steps, instances, attempts), approvals, the Slack outbox,
channel delivery state and incident threads; and of what a run event says about a step or an approval.

Pure: no I/O. Each stored kind has ``SCHEMA_VERSION``, ``from_doc`` (every document soar has
written reads: one without ``schema_version`` is version 1; a malformed one raises
:class:`~soar.errors.RecordError` naming the kind, the id and the field; a newer version is
refused the same way) and ``to_doc`` (the same fields, with ``schema_version``).

    kind              model
    alerts            AlertState (triage status, verdict, hand-off; the alert itself is soar.alerts.Alert's)
    runs              Run → StepResult → Instance (TargetRef, PolicyDecision, ActionOutcome, ApprovalSnapshot)
                      → Attempt
    approvals         Approval (votes: Vote)
    incidents         Incident (status, owner, notes, span; which alerts are in it: soar.incidents)
    outbox            Message
    notify_channels   ChannelState
    notify_threads    Thread → ThreadRun → ThreadStep
    (run events)      StepNotice, ApprovalNotice — messages, not stored: never raise
"""

from soar.records._read import VERSION_FIELD
from soar.records.alert import AlertState
from soar.records.approval import Approval, ApprovalStatus, Vote
from soar.records.incident import Incident, IncidentStatus
from soar.records.notices import ApprovalNotice, StepNotice
from soar.records.outbox import ChannelState, Message, MessageStatus
from soar.records.parts import ActionOutcome, PolicyDecision, TargetRef
from soar.records.run import (
    ApprovalSnapshot,
    Attempt,
    AttemptStatus,
    Instance,
    InstanceStatus,
    Lease,
    PlaybookRef,
    RollbackPlan,
    Run,
    RunStatus,
    StepRef,
    StepResult,
    StepStatus,
    instance_planned,
    run_planned,
    step_planned,
)
from soar.records.thread import Thread, ThreadRun, ThreadStep

__all__ = [
    "VERSION_FIELD",
    "ActionOutcome",
    "AlertState",
    "Approval",
    "ApprovalNotice",
    "ApprovalSnapshot",
    "ApprovalStatus",
    "Attempt",
    "AttemptStatus",
    "ChannelState",
    "Incident",
    "IncidentStatus",
    "Instance",
    "InstanceStatus",
    "Lease",
    "Message",
    "MessageStatus",
    "PlaybookRef",
    "PolicyDecision",
    "RollbackPlan",
    "Run",
    "RunStatus",
    "StepNotice",
    "StepRef",
    "StepResult",
    "StepStatus",
    "TargetRef",
    "Thread",
    "ThreadRun",
    "ThreadStep",
    "Vote",
    "instance_planned",
    "run_planned",
    "step_planned",
]
