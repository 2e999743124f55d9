"""The pure review core: timelines, metrics, the chart, verdict parsing, time parsing (no services)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from soar.errors import InputError
from soar.records import Approval
from soar.review.chart import mitigation_svg
from soar.review.feedback import parse_verdict, rule_precision
from soar.review.metrics import incident_metrics, period_metrics, summary
from soar.review.render import format_duration, render
from soar.review.timeline import build_timeline
from soar.review.times import check_range, parse_duration, parse_time

ALERT = {
    "id": "a1",
    "@timestamp": "2026-11-28T10:00:00.000Z",
    "first_event_time": "2026-11-28T09:59:00.000Z",
    "rule": {"id": "r1", "title": "SSH brute force", "level": "high"},
    "host": {"name": "web1"},
    "source": {"ip": "203.0.113.9"},
}


def _instance(started: str, finished: str, **result: Any) -> dict[str, Any]:
    return {
        "key": "x",
        "status": "succeeded",
        "attempts": [{"n": 1, "status": "succeeded", "started_at": started, "finished_at": finished}],
        "result": {"ok": True, "verified": None, "evidence": [], "commands": [], **result},
    }


def _run(**extra: Any) -> dict[str, Any]:
    """A run document in the shape the playbook engine stores (docs/playbooks-api.md)."""
    return {
        "id": "run-1",
        "playbook": {"name": "ssh-brute-force"},
        "alert_id": "a1",
        "alert": ALERT,
        "status": "succeeded",
        "created_at": "2026-11-28T10:00:02.000Z",
        "finished_at": "2026-11-28T11:00:00.000Z",
        "steps": {
            "block": {
                "uses": "hosts.block_ip",
                "status": "succeeded",
                "started_at": "2026-11-28T10:00:03.000Z",
                "finished_at": "2026-11-28T10:01:00.000Z",
                "instances": [
                    _instance(
                        "2026-11-28T10:00:30.000Z",
                        "2026-11-28T10:01:00.000Z",
                        verified=True,
                        evidence=[{"name": "nft.txt", "sha256": "cd" * 32, "size": 5}],
                    )
                ],
            },
            "unblock": {
                "uses": "hosts.unblock_ip",
                "status": "succeeded",
                "started_at": "2026-11-28T10:30:00.000Z",
                "finished_at": "2026-11-28T10:30:05.000Z",
                "instances": [_instance("2026-11-28T10:30:00.000Z", "2026-11-28T10:30:05.000Z", verified=True)],
            },
        },
        **extra,
    }


APPROVAL = Approval.from_doc(
    {
        "id": "run-1.block",
        "expires_at": 1796573820.0,
        "run_id": "run-1",
        "step": "block",
        "step_id": "block",
        "status": "approved",
        "required": 1,
        "requested_at": "2026-11-28T10:00:03.000Z",
        "decided_at": "2026-11-28T10:00:28.000Z",
        "approvers": [{"approver": "alice", "role": "approver", "via": "slack", "at": "2026-11-28T10:00:28.000Z"}],
        "denials": [],
    }
)


def test_timeline_milestones_and_segments() -> None:
    tl = build_timeline(_run(), approvals=[APPROVAL])
    seg = {s["label"]: s["seconds"] for s in tl.segments()}
    assert seg["time to detect"] == 60
    assert seg["time to first action"] == 30  # the first attempt, not the step waiting for approval
    assert seg["time to contain"] == 60
    assert seg["containment held"] == 30 * 60 - 55
    assert seg["time to resolve"] == 3600
    assert tl.approval_wait == 25 and tl.human_decisions == 1
    assert tl.evidence == [{"step": "block", "name": "nft.txt", "sha256": "cd" * 32, "path": None, "size": 5}]
    kinds = [e.kind for e in tl.events]
    assert kinds[:3] == ["first_event", "detected", "run_started"]
    assert kinds.index("approval_decided") < kinds.index("contained") < kinds.index("released")
    assert tl.to_dict()["milestones"]["contained"] == "2026-11-28T10:01:00.000Z"


def test_failed_verification_is_not_containment() -> None:
    run = _run()
    run["steps"]["block"]["instances"][0]["result"]["verified"] = False
    tl = build_timeline(run)
    assert tl.milestones["contained"] is None
    assert any(e.kind == "verification" and e.ok is False for e in tl.events)


def test_malformed_stored_documents_leave_gaps_not_errors() -> None:
    tl = build_timeline({"id": "r", "steps": {"s": {"started_at": "not a time", "instances": "nope"}}})
    assert tl.milestones["detected"] is None and tl.segments()[0]["seconds"] is None


def test_incident_and_period_metrics() -> None:
    inc = incident_metrics(ALERT, [_run()], [APPROVAL])
    assert (inc["mttd"], inc["mtta"], inc["mttc"], inc["mttr"]) == (60, 30, 60, 1805)  # released 10:30:05
    assert inc["automated"] is False and inc["approval_wait"] == 25
    second = {**ALERT, "id": "a2", "@timestamp": "2026-11-29T10:00:00.000Z"}
    auto_run = {**_run(), "id": "run-2", "alert_id": "a2", "alert": second}
    verdicts = [
        {"alert_id": "a1", "rule_id": "r1", "verdict": "true_positive"},
        {"alert_id": "a2", "rule_id": "r1", "verdict": "false_positive"},
    ]
    start = datetime(2026, 11, 1, tzinfo=UTC)
    m = period_metrics(
        [ALERT, second], [_run(), auto_run], [APPROVAL], verdicts, start=start, end=start + timedelta(30)
    )
    assert m["alerts"] == 2 and m["responded"] == 2
    assert m["automation_rate"] == 0.5 and m["false_positive_rate"] == 0.5
    assert m["mttc"]["n"] == 2 and m["approval_wait"]["n"] == 1
    assert m["rules"] == [{"rule_id": "r1", "title": None, "tp": 1, "fp": 1, "precision": 0.5}]
    assert [s["day"] for s in m["series"]] == ["2026-11-28", "2026-11-29"]


def test_summary_and_precision_edges() -> None:
    assert summary([None, None]) == {"n": 0, "mean": None, "median": None, "p90": None}
    assert summary([1.0, 2.0, 3.0])["median"] == 2.0
    assert rule_precision([{"rule_id": "r", "verdict": "true_positive"}])["r"]["precision"] == 1.0


def test_chart_is_svg_with_one_bar_per_day_and_the_curve() -> None:
    svg = mitigation_svg(
        [
            {"day": "2026-11-28", "alerts": 4, "mttc_median": 600.0},
            {"day": "2026-11-29", "alerts": 2, "mttc_median": 120.0},
            {"day": "2026-11-30", "alerts": 1, "mttc_median": None},
        ]
    )
    assert svg.startswith("<svg") and svg.count('class="bar"') == 3
    points = re.search(r'class="mttc" points="([^"]+)"', svg)
    assert points is not None and len(points.group(1).split()) == 2
    assert "no alerts" in mitigation_svg([])


def test_chart_escapes_labels() -> None:
    assert "<script>" not in mitigation_svg([{"day": "<script>", "alerts": 1, "mttc_median": 1.0}], title="<x>")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"verdict": "maybe"}, "verdict: Input should be"),
        ({"verdict": "tp", "exception": {"field": "source.ip", "values": ["1.2.3.4"]}}, "only a false positive"),
        ({"verdict": "fp", "exception": {"field": "bad field!", "values": ["x"]}}, "exception.field"),
        ({"verdict": "fp", "exception": {"field": "user.name", "values": ["*"]}}, "would except every event"),
        ({"verdict": "fp", "exception": {"field": "user.name", "values": []}}, "exception.values"),
        ({"verdict": "fp", "colour": "red"}, "colour: Extra inputs"),
    ],
)
def test_malformed_verdicts_name_the_field(data: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError) as err:
        parse_verdict(data)
    assert message in str(err.value)


def test_verdict_aliases() -> None:
    assert parse_verdict({"verdict": "FP"}).verdict == "false_positive"
    assert parse_verdict({"verdict": "tp"}).verdict == "true_positive"


def test_times() -> None:
    now = datetime(2026, 11, 28, 12, tzinfo=UTC)
    assert parse_time("30d", now=now) == now - timedelta(days=30)
    assert parse_time("2026-11-01") == datetime(2026, 11, 1, tzinfo=UTC)
    assert parse_duration("15m") == timedelta(minutes=15)
    with pytest.raises(InputError, match="--since: expected"):
        parse_time("last tuesday", what="--since")
    with pytest.raises(InputError, match="is after the end"):
        check_range(now, now - timedelta(1))
    assert format_duration(3723) == "1h 02m 03s" and format_duration(None) == "—"


def test_templates_autoescape_attacker_data() -> None:
    html = render(
        "run_report.html.j2",
        r=build_timeline(_run(alert={**ALERT, "host": {"name": "<i>x</i>"}})).to_dict()
        | {"generated_at": "now", "verdict": None, "audit": [], "report_sha256": "0"},
    )
    assert "<i>x</i>" not in html and "&lt;i&gt;x&lt;/i&gt;" in html
