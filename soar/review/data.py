"""The I/O edge of review: read what the engine stored, hand typed records (and plain alert/audit documents) to the pure
core. A run record the model cannot read reaches the core as :class:`~soar.review.timeline.Unreadable`."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Any, TypedDict

from soar.audit.chain import KIND as AUDIT
from soar.errors import NotFound, RecordError
from soar.records import Approval, Run
from soar.review.feedback import ALERTS, VERDICTS
from soar.review.metrics import WATCH
from soar.review.timeline import Unreadable, read_run
from soar.review.times import check_range, to_iso
from soar.store import Range, Record, Store

RUNS = "runs"  # kind names of the playbook engine (soar/playbooks/records.py)
APPROVALS = "approvals"
LIMIT = 10_000

log = logging.getLogger("soar.review")


class UnknownRun(NotFound):
    """No run has this id."""


def load_run(store: Store, run_id: str) -> dict[str, Any]:
    """Everything a run's review needs: the run (``Run`` or ``Unreadable``), its alert, approvals, audit entries."""
    rec = store.get(RUNS, run_id)
    if rec is None:
        raise UnknownRun(f"unknown run id {run_id!r} (list runs with 'soar runs list')")
    run = read_run(rec.doc, run_id)
    if isinstance(run, Unreadable):
        log.error("left out of the review: %s", run.line)
        alert_id, copy = "", {}
    else:
        alert_id, copy = run.alert_id or str(run.alert.get("id") or ""), run.alert
    alert_rec = store.get(ALERTS, alert_id) if alert_id else None
    alert = alert_rec.doc if alert_rec else copy
    approvals = _approvals(store.find(APPROVALS, {"run_id": run_id}, limit=LIMIT))
    containments = watched(store, run_id)
    targets = [t for t in (run_id, alert_id, *(c["id"] for c in containments)) if t]
    audit = [r.doc for r in store.find(AUDIT, {"target": targets}, order_by="key", limit=LIMIT)]
    verdict = store.get(VERDICTS, alert_id) if alert_id else None
    return {
        "run": run,
        "alert": alert,
        "approvals": approvals,
        "audit": audit,
        "verdict": verdict.doc if verdict else None,
        "containments": containments,
    }


def watched_runs(store: Store, run_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    """:func:`watched` for many runs, by run id."""
    from soar.records.containment import KIND, Containment

    out: dict[str, list[dict[str, Any]]] = {}
    for i in range(0, len(run_ids), 500):
        for r in store.find(KIND, {"run_id": run_ids[i : i + 500]}, limit=LIMIT):
            c = Containment.from_doc(r.doc, r.id)
            out.setdefault(c.run_id, []).append(c.shown())
    return out


def watched(store: Store, run_id: str) -> list[dict[str, Any]]:
    """The run's containments as the containment watch saw them (soar.containment), oldest first."""
    from soar.containment.ledger import for_run

    return [c.shown() for c in for_run(store, run_id)]


def _approvals(records: Iterable[Record]) -> list[Approval]:
    """The approval requests of these records; one that cannot be read is left out, loudly (a report still reports)."""
    out = []
    for rec in records:
        try:
            out.append(Approval.from_doc(rec.doc, rec.id))
        except RecordError as exc:
            log.error("left out of the review: %s", exc)
    return out


class Period(TypedDict):
    alerts: list[dict[str, Any]]
    runs: list[Run | Unreadable]
    approvals: list[Approval]
    verdicts: list[dict[str, Any]]


def load_period(store: Store, start: datetime, end: datetime) -> Period:
    """Alerts detected in [start, end], the runs and approvals of those alerts, and their verdicts."""
    check_range(start, end, what="--since/--until")
    window = Range(gte=to_iso(start), lte=to_iso(end))
    alerts = [r.doc for r in store.find(ALERTS, {"@timestamp": window}, order_by="@timestamp", limit=LIMIT)]
    ids = [str(a.get("id")) for a in alerts]
    records: list[Record] = []
    approvals: list[Approval] = []
    verdicts: list[dict[str, Any]] = []
    for i in range(0, len(ids), 500):
        chunk = ids[i : i + 500]
        records += store.find(RUNS, {"alert_id": chunk}, limit=LIMIT)
        verdicts += [r.doc for r in store.find(VERDICTS, {"alert_id": chunk}, limit=LIMIT)]
    run_ids = [r.id for r in records]
    for i in range(0, len(run_ids), 500):
        approvals += _approvals(store.find(APPROVALS, {"run_id": run_ids[i : i + 500]}, limit=LIMIT))
    watch = watched_runs(store, run_ids)
    runs: list[Run | Unreadable] = []
    for rec in records:
        run = read_run({"id": rec.id, **rec.doc})
        if isinstance(run, Run):  # what the containment watch saw of its containments (their uptime)
            run.extra[WATCH] = watch.get(rec.id, [])
        else:
            log.error("left out of the metrics: %s", run.line)
        runs.append(run)
    return {"alerts": alerts, "runs": runs, "approvals": approvals, "verdicts": verdicts}
