"""One living thread per incident: run events become thread replies and card updates.

The incident is the alert (its id is the alert fingerprint); a run without an alert
is its own incident. The thread's state — which runs, which steps, which approvals —
is a ``notify_threads`` document from which the card is re-rendered after every
event. Every outgoing message goes through the outbox with a key derived from
the event, so an event delivered twice produces its messages once.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from soar.alerts import utcnow_iso
from soar.config import Settings
from soar.notify import cards
from soar.notify.outbox import Message, enqueue, key_for
from soar.notify.routing import load_routes
from soar.playbooks.events import EVENT_TYPES  # the emitter owns the event contract
from soar.playbooks.outcomes import shown_status
from soar.records import ApprovalNotice, StepNotice, Thread, ThreadRun, ThreadStep
from soar.records import thread as thread_record
from soar.store import Store

log = logging.getLogger("soar.notify")

THREADS_KIND = thread_record.KIND
RUN_INDEX_KIND = thread_record.RUN_INDEX_KIND

# events that only move the card (no reply of their own)
CARD_ONLY = {"step_started", "containment_released"}


def card_key(incident: str) -> str:
    return f"card:{incident}"


def approval_key(run_id: str, step_id: str) -> str:
    return f"approval:{run_id}:{step_id}"


def _incident_of(event: Mapping[str, Any]) -> str:
    alert = event.get("alert") or {}
    return str(alert.get("id") or f"run-{event.get('run_id', '')}")


def _full_alert(store: Store, alert: Mapping[str, Any]) -> Mapping[str, Any]:
    """The stored alert (tags, event excerpt) when there is one, else the excerpt the event carries."""
    if alert.get("id"):
        record = store.get("alerts", str(alert["id"]))
        if record is not None:
            return record.doc
    return alert


def open_thread(
    settings: Settings,
    store: Store,
    alert: Mapping[str, Any],
    *,
    incident: str | None = None,
    channel: str | None = None,
    planned: str | None = None,
) -> Thread:
    """The incident's thread, creating it (and enqueueing its card) the first time."""
    summary = cards.alert_summary(_full_alert(store, alert))
    incident = incident or summary["id"] or "unknown"
    record = store.get(THREADS_KIND, incident)
    if record is not None:
        return Thread.from_doc(record.doc, incident)
    chan = channel or load_routes(settings).channel_for(summary)
    thread = Thread(
        id=incident,
        channel=chan,
        card=card_key(incident),
        summary=summary,
        status="open",
        planned=planned,
        created_at=utcnow_iso(),
    )
    if store.create(THREADS_KIND, incident, thread.to_doc()):
        blocks = cards.incident_card(summary, status="open", planned=planned)
        enqueue(
            store,
            Message(
                key=card_key(incident),
                op="post",
                kind="card",
                channel=chan,
                text=cards.card_text(summary, "open"),
                blocks=blocks,
                incident=incident,
                summary={k: summary.get(k) for k in ("title", "level", "host", "rule_id")},
                revision=0,
            ),
        )
        return thread
    existing = store.get(THREADS_KIND, incident)
    assert existing is not None
    return Thread.from_doc(existing.doc, incident)


def _newer(holder: ThreadRun | ThreadStep, seq: int | None) -> bool:
    """True (and remembered) if an event of order ``seq`` may set ``holder``'s status.

    Workers handle a run's events concurrently, so they arrive in any order: a status is
    only ever replaced by a later event's. An event without ``seq`` (an older publisher) always may.
    """
    if seq is None:
        return True
    if seq < (holder.seq or 0):
        return False
    holder.seq = seq
    return True


def apply_event(thread: Thread, event: Mapping[str, Any]) -> Thread:
    """The thread state after ``event`` (the same events in any order, or twice, give the same state).

    Changes ``thread`` in place and returns it; touches nothing else.
    """
    run_id = str(event.get("run_id", ""))
    playbook = event.get("playbook")
    run = thread.runs.setdefault(run_id, ThreadRun(playbook=None if playbook is None else str(playbook)))
    if playbook:
        run.playbook = str(playbook)
    if isinstance(event.get("dry_run"), bool):  # a dry run's card says planned, never succeeded
        run.dry_run = event["dry_run"]
    raw_seq = event.get("seq")
    seq = int(raw_seq) if isinstance(raw_seq, int) else None
    kind = event.get("type")
    step = StepNotice.from_payload(event.get("step"))
    if step.id:
        entry = run.steps.setdefault(step.id, ThreadStep())
        if step.uses is not None:
            entry.uses = step.uses
        newest = step.status is not None and _newer(entry, seq)
        if newest:
            entry.status = step.status
            if step.dry_run is not None:
                entry.dry_run = step.dry_run
        if step.summary is not None and (newest or entry.summary is None):
            entry.summary = step.summary
        if str(kind).startswith("containment_") and step.summary and _newer(entry, seq):
            # the card's line for the step says what the containment watch found last (soar.containment)
            entry.summary = f"watch: {str(kind).removeprefix('containment_')}: {step.summary}"
    status: tuple[str, str] | None = None  # (run status, thread status) this event sets
    if kind == "approval_requested":
        status = ("awaiting_approval", "awaiting approval")
    elif kind == "approval_decided":
        approval = ApprovalNotice.from_payload(event.get("approval"))
        decision, final = approval.decision, approval.final
        if final:
            status = (
                "running" if decision == "approved" else decision or "running",
                "in progress" if decision == "approved" else f"approval {decision}",
            )
    elif kind == "run_started":
        status = ("running", "in progress")
    elif kind == "run_finished":
        status = (str(event.get("status") or "finished"), "")
    elif kind == "rollback":
        status = ("rolled_back", "")
    if status is not None and _newer(run, seq):
        run.status = status[0]
    if kind == "run_finished":
        if all(r.status not in ("running", "awaiting_approval") for r in thread.runs.values()):
            thread.status = shown_status(run.status, run.dry_run is True)
            thread.status_seq = max(seq or 0, thread.status_seq or 0)
    elif status is not None and status[1] and (seq is None or seq >= (thread.status_seq or 0)):
        thread.status = status[1]
        thread.status_seq = seq or (thread.status_seq or 0)
    return thread


def approval_revision(approval: Mapping[str, Any]) -> int:
    """Votes only accumulate and a final decision comes last: so later states of a request rank higher."""
    return ApprovalNotice.from_payload(approval).revision


def decision_of(approval: Mapping[str, Any]) -> tuple[str, bool]:
    """(decision, final): ``approved``/``denied``/``expired`` are final; ``pending`` with votes is not."""
    notice = ApprovalNotice.from_payload(approval)
    return notice.decision, notice.final


def _event_messages(thread: Thread, event: Mapping[str, Any]) -> list[Message]:
    kind = str(event.get("type"))
    run_id = str(event.get("run_id", ""))
    step = StepNotice.from_payload(event.get("step"))
    approval = ApprovalNotice.from_payload(event.get("approval"))
    step_id = approval.step or step.id or ""
    # The key ignores the event time: the same event published twice is one message.
    ident = {k: v for k, v in event.items() if k not in ("at", "seq", "alert")}
    out: list[Message] = []
    common: dict[str, Any] = {"channel": thread.channel, "incident": thread.id, "target": thread.card}
    if kind == "approval_requested":
        text, blocks = cards.approval_request(event)
        key = approval_key(run_id, step_id)
        out.append(Message(key=key, op="post", kind="reply", text=text, blocks=blocks, important=True, **common))
    elif kind == "approval_decided":
        text, blocks = cards.approval_decided(event, final=approval.final)
        out.append(
            Message(
                key=key_for("update", approval_key(run_id, step_id), ident),
                op="update",
                kind="update",
                channel=thread.channel,
                incident=thread.id,
                target=approval_key(run_id, step_id),
                text=text,
                blocks=blocks,
                revision=approval.revision,
            )
        )
        text, blocks = cards.decision_reply(event)
        out.append(Message(key=key_for("reply", ident), op="post", kind="reply", text=text, blocks=blocks, **common))
    elif kind == "step_finished":
        text, blocks = cards.step_reply(event)
        out.append(Message(key=key_for("reply", ident), op="post", kind="reply", text=text, blocks=blocks, **common))
    elif kind not in CARD_ONLY:
        text, blocks = cards.generic_reply(event)
        # a containment that did not take effect must reach the on-call even in a storm (it brings its card back)
        unproven = kind == "verification" and step.verified is False
        # so must a containment in force that the watch found undone (soar.containment)
        unproven = unproven or kind in ("containment_drifted", "containment_escalated")
        out.append(
            Message(
                key=key_for("reply", ident),
                op="post",
                kind="reply",
                text=text,
                blocks=blocks,
                important=unproven,
                **common,
            )
        )
    return out


def handle_event(settings: Settings, store: Store, event: Mapping[str, Any]) -> Thread:
    """Apply a run event to its incident's thread and enqueue the replies and the card update."""
    if event.get("type") not in EVENT_TYPES or not event.get("run_id"):
        raise ValueError(f"not a run event: type={event.get('type')!r} run_id={event.get('run_id')!r}")
    incident = _incident_of(event)
    alert = dict(event.get("alert") or {})
    alert.setdefault("id", incident)
    opened = open_thread(settings, store, alert, incident=incident)
    store.put(RUN_INDEX_KIND, str(event["run_id"]), {"incident": incident})

    def change(doc: dict[str, Any]) -> dict[str, Any]:
        thread = apply_event(Thread.from_doc(doc, incident), event)
        thread.revision += 1
        return thread.to_doc()

    record = store.mutate(THREADS_KIND, incident, change, create=opened.to_doc)
    assert record is not None  # change always writes
    thread = Thread.from_doc(record.doc, incident)
    for message in _event_messages(thread, event):
        enqueue(store, message)
    enqueue_card_update(store, thread)
    return thread


def enqueue_card_update(store: Store, thread: Thread) -> None:
    """The card as of this thread revision; delivery never lets it replace a newer one."""
    blocks = cards.incident_card(thread.summary, status=thread.status, runs=thread.runs, planned=thread.planned)
    enqueue(
        store,
        Message(
            key=f"update:{thread.card}:{thread.revision:08d}",
            op="update",
            kind="update",
            channel=thread.channel,
            incident=thread.id,
            target=thread.card,
            text=cards.card_text(thread.summary, thread.status),
            blocks=blocks,
            revision=thread.revision,
            followup=cards.card_followup(thread.status, thread.runs),
        ),
    )


def thread_for_run(store: Store, run_id: str) -> Thread | None:
    record = store.get(RUN_INDEX_KIND, run_id)
    if record is None:
        return None
    incident = str(record.doc["incident"])
    thread = store.get(THREADS_KIND, incident)
    return Thread.from_doc(thread.doc, incident) if thread else None
