"""Response metrics: per incident and over a period.

    MTTD  first matched event → alert            (detection delay)
    MTTA  alert → first action or acknowledgement
    MTTC  alert → first verified containment
    MTTR  alert → release of containment or closure of the run
    automation rate   incidents responded to with no human decision / incidents responded to
    approval wait     request → decision, summed per incident
    containment uptime    the share of the containment watch's looks that found an incident's containments
                      in force (soar.containment), per incident
    false-positive rate   false positives / alerts with a verdict; precision per rule

Dry runs and runs whose containment the policy refused are left out of MTTA, MTTC, MTTR and the
automation rate (a plan contains nothing; a refusal ends a run at once, unaided) and counted in
``excluded_runs`` so the figures say what they leave out. A run record the model cannot read is left out of
every figure and named, one line each, in ``unreadable_runs`` (present only when there is one).

Pure: takes the runs (typed, or their stored documents, read with ``Run.from_doc``), returns plain dicts.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from soar.playbooks.outcomes import EXCLUDED, run_excluded, run_votes
from soar.records import Approval, Run
from soar.review.feedback import rule_precision
from soar.review.timeline import ImpactOf, RunLike, Unreadable, build_timeline, default_impact_of, read_run
from soar.review.times import from_iso, to_iso

MEASURES = ("mttd", "mtta", "mttc", "mttr", "approval_wait")


WATCH = "containment_watch"  # what data.load_period attaches to each run: its containments as the watch saw them


def _seconds(a: datetime | None, b: datetime | None) -> float | None:
    return (b - a).total_seconds() if a and b else None


def _watched(run: RunLike) -> list[dict[str, Any]]:
    """The containments the watch saw for a run (review's annotation, not a run field: counted even unreadable)."""
    raw = run.extra.get(WATCH) if isinstance(run, Run) else run.get(WATCH) if isinstance(run, Mapping) else None
    return [c for c in raw or [] if isinstance(c, dict)]


def _split(runs: Iterable[RunLike]) -> tuple[list[Run], list[str]]:
    """The readable runs, and a line for each record the model cannot read."""
    read = [read_run(r) for r in runs]
    return [r for r in read if isinstance(r, Run)], [r.line for r in read if isinstance(r, Unreadable)]


def incident_metrics(
    alert: dict[str, Any],
    runs: Iterable[RunLike] = (),
    approvals: Iterable[Approval] = (),
    *,
    impact_of: ImpactOf = default_impact_of,
) -> dict[str, Any]:
    """One alert and the runs it started (usually one): the time of each phase, in seconds."""
    detected = from_iso(alert.get("@timestamp"))
    first_event = from_iso(alert.get("first_event_time"))
    approvals = list(approvals)
    firsts: list[datetime] = []
    contained: list[datetime] = []
    ends: list[datetime] = []
    waits: list[float] = []
    humans = 0
    runs = list(runs)
    excluded = dict.fromkeys(EXCLUDED, 0)
    uptimes = [c["uptime"] for run in runs for c in _watched(run) if c.get("uptime") is not None]
    readable, unreadable = _split(runs)
    for run in readable:
        mine = [a for a in approvals if a.run_id == run.id]
        tl = build_timeline(run, alert=alert, approvals=mine, impact_of=impact_of)
        m = tl.milestones
        why = run_excluded(run, contained=m["contained"] is not None or bool(run.contained_targets))
        if why is not None:
            excluded[why] += 1
            continue
        if m["first_action"]:
            firsts.append(m["first_action"])
        if m["contained"]:
            contained.append(m["contained"])
        end = m["released"] or m["closed"]
        if end:
            ends.append(end)
        if tl.approval_wait is not None:
            waits.append(tl.approval_wait)
        humans += max(tl.human_decisions, run_votes(run))
    acked = from_iso(alert.get("acknowledged_at"))
    if acked:
        firsts.append(acked)
    closed = from_iso(alert.get("closed_at"))
    if closed:
        ends.append(closed)
    counted = len(readable) - sum(excluded.values())
    return {
        "alert_id": alert.get("id"),
        "rule_id": (alert.get("rule") or {}).get("id"),
        "detected_at": alert.get("@timestamp"),
        "verdict": alert.get("verdict"),
        "runs": len(runs),
        "counted_runs": counted,
        "excluded_runs": excluded,
        "mttd": _seconds(first_event, detected),
        "mtta": _seconds(detected, min(firsts)) if firsts else None,
        "mttc": _seconds(detected, min(contained)) if contained else None,
        "mttr": _seconds(detected, min(ends)) if ends else None,
        "approval_wait": sum(waits) if waits else None,
        "automated": counted > 0 and humans == 0,
        "human_decisions": humans,
        "containment_uptime": statistics.fmean(uptimes) if uptimes else None,
    } | ({"unreadable_runs": unreadable} if unreadable else {})


def summary(values: Iterable[float | None]) -> dict[str, Any]:
    present = sorted(v for v in values if v is not None)
    if not present:
        return {"n": 0, "mean": None, "median": None, "p90": None}
    p90 = present[min(len(present) - 1, round(0.9 * (len(present) - 1)))]
    return {"n": len(present), "mean": statistics.fmean(present), "median": statistics.median(present), "p90": p90}


def _mean(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.fmean(present) if present else None


def period_metrics(
    alerts: list[dict[str, Any]],
    runs: Sequence[RunLike],
    approvals: list[Approval],
    verdicts: list[dict[str, Any]],
    *,
    start: datetime,
    end: datetime,
    impact_of: ImpactOf = default_impact_of,
) -> dict[str, Any]:
    runs_by_alert: dict[str, list[RunLike]] = {}
    read = [read_run(r) for r in runs]
    unreadable = [r.line for r in read if isinstance(r, Unreadable)]  # no alert to file them under: listed here
    for run, doc in zip(read, runs, strict=True):
        if isinstance(run, Run):
            runs_by_alert.setdefault(run.alert_id, []).append(_annotated(run, doc))
    incidents = [
        incident_metrics(a, runs_by_alert.get(str(a.get("id")), []), approvals, impact_of=impact_of) for a in alerts
    ]
    responded = [i for i in incidents if i["counted_runs"]]
    judged = [v for v in verdicts if v.get("verdict") in ("true_positive", "false_positive")]
    fps = sum(1 for v in judged if v["verdict"] == "false_positive")
    return {
        "from": to_iso(start),
        "to": to_iso(end),
        "alerts": len(alerts),
        "responded": len(responded),
        "excluded_runs": {why: sum(i["excluded_runs"][why] for i in incidents) for why in EXCLUDED},
        "excluded_incidents": sum(1 for i in incidents if i["runs"] and not i["counted_runs"]),
        **{name: summary(i[name] for i in incidents) for name in MEASURES},
        "automation_rate": (sum(1 for i in responded if i["automated"]) / len(responded)) if responded else None,
        "containment_uptime": _mean(i["containment_uptime"] for i in incidents),
        "verdicts": len(judged),
        "false_positive_rate": fps / len(judged) if judged else None,
        "rules": sorted(rule_precision(judged).values(), key=lambda r: r["rule_id"]),
        "series": daily_series(incidents),
        "incidents": incidents,
    } | ({"unreadable_runs": unreadable} if unreadable else {})


def _annotated(run: Run, doc: RunLike) -> Run:
    """The typed run with the watch's containments its document carried (``WATCH``, kept in ``extra``)."""
    if WATCH not in run.extra and (watch := _watched(doc)):
        run.extra[WATCH] = watch
    return run


def daily_series(incidents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per day: alerts, and the median time to contain — the threat-mitigation curve."""
    days: dict[str, list[dict[str, Any]]] = {}
    for inc in incidents:
        when = from_iso(inc.get("detected_at"))
        if when is not None:
            days.setdefault(when.date().isoformat(), []).append(inc)
    out = []
    for day in sorted(days):
        mttc = [i["mttc"] for i in days[day] if i["mttc"] is not None]
        out.append({"day": day, "alerts": len(days[day]), "mttc_median": statistics.median(mttc) if mttc else None})
    return out


def run_figures(run: RunLike, *, impact_of: ImpactOf = default_impact_of) -> dict[str, Any]:
    """One finished run as the live metrics count it: why it is excluded, automated, time to contain.

    A record the model cannot read is counted as ``unreadable`` (status and exclusion) and nothing else.
    """
    read = read_run(run)
    if isinstance(read, Unreadable):
        return {"status": "unreadable", "excluded": "unreadable", "automated": False, "mttc": None}
    tl = build_timeline(read, impact_of=impact_of)
    m = tl.milestones
    why = run_excluded(read, contained=m["contained"] is not None or bool(read.contained_targets))
    counted = why is None
    return {
        "status": read.status,
        "excluded": why,
        "automated": counted and run_votes(read) == 0,
        "mttc": _seconds(m["detected"], m["contained"]) if counted else None,
    }
