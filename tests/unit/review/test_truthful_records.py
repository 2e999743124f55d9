"""Truthful records, the pure part: dry runs read as planned, the run's own order, skip reasons, metric exclusions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from soar.cli.metrics_cmd import print_table
from soar.notify import cards
from soar.notify.incidents import apply_event
from soar.playbooks import outcomes
from soar.records import PlaybookRef, Run, Thread
from soar.review.metrics import incident_metrics, period_metrics, run_figures
from soar.review.render import render
from soar.review.timeline import build_timeline

ALERT = {
    "id": "a1",
    "@timestamp": "2026-11-28T10:00:00.000Z",
    "rule": {"id": "r1", "title": "SSH brute force", "level": "high"},
    "host": {"name": "web1"},
}
T = "2026-11-28T10:00:05.000Z"  # one millisecond for everything: only the run's sequence can order it


def _inst(status: str, *, dry: bool, seq: int) -> dict[str, Any]:
    return {
        "key": "block",
        "status": status,
        "dry_run": dry,
        "attempts": []  # the policy refuses before any attempt
        if status == "refused"
        else [{"n": 1, "status": status, "dry_run": dry, "started_at": T, "finished_at": T, "started_seq": seq}],
        "result": {"ok": status == "succeeded", "verified": True if status == "succeeded" else None},
    }


def _run(*, dry: bool = False, block: str = "succeeded", **extra: Any) -> dict[str, Any]:
    """A run whose events all share one timestamp, as a fast run's do: block, then a skipped note, then the end."""
    return {
        "id": "run-1",
        "playbook": {"name": "pb"},
        "alert_id": "a1",
        "alert": ALERT,
        "status": "succeeded",
        "dry_run": dry,
        "seq": 6,
        "created_at": T,
        "finished_at": T,
        "finished_seq": 6,
        "steps": {
            "note": {  # alphabetically first, ran last
                "uses": "hosts.note",
                "status": "skipped",
                "skip_reason": outcomes.skip_reason("condition", "alert.user.name is defined"),
                "dry_run": dry,
                "instances": [],
                "started_at": T,
                "finished_at": T,
                "started_seq": 4,
                "finished_seq": 5,
            },
            "block": {
                "uses": "hosts.block_ip",
                "status": "failed" if block == "refused" else block,  # a step whose instance was refused failed
                "dry_run": dry,
                "instances": [_inst(block, dry=dry, seq=2)],
                "started_at": T,
                "finished_at": T,
                "started_seq": 1,
                "finished_seq": 3,
            },
        },
        **extra,
    }


def test_shown_status_says_planned_for_a_dry_run_only() -> None:
    assert outcomes.shown_status("succeeded", True) == outcomes.DRY_RUN == "planned (dry run)"
    assert outcomes.shown_status("succeeded", False) == "succeeded"
    assert outcomes.shown_status("failed", True) == "failed (dry run)"
    assert outcomes.shown_status("skipped", True) == "skipped"
    assert outcomes.step_status(_run()["steps"]["note"]) == (
        "skipped: condition `when: alert.user.name is defined` was false"
    )
    # older records: no dry_run field, every attempt a dry one
    legacy = {"status": "succeeded", "instances": [{"attempts": [{"dry_run": True}]}]}
    assert outcomes.planned_only(legacy) and outcomes.step_status(legacy) == "planned (dry run)"
    assert outcomes.run_is_dry({"steps": {"s": legacy}}) and not outcomes.run_is_dry({"steps": {}})


def test_steps_in_the_runs_order_not_alphabetical() -> None:
    assert [s["id"] for s in outcomes.in_order(_run()["steps"])] == ["block", "note"]
    run = Run(id="run-1", playbook=PlaybookRef("p"), alert_id="a1", status="running", seq=0)
    assert [run.tick(), run.tick()] == [1, 2] and run.to_doc()["seq"] == 2


def test_timeline_follows_the_run_sequence_when_times_tie_or_clocks_disagree() -> None:
    events = build_timeline(_run()).events
    kinds = [(e.kind, e.title) for e in events]
    titles = [t for _, t in kinds]
    assert titles.index("Step block (hosts.block_ip) started") < titles.index("Step block (hosts.block_ip) succeeded")
    assert titles.index("Step block (hosts.block_ip) succeeded") < titles.index("Step note (hosts.note) skipped")
    assert "Step note (hosts.note) started" not in titles  # a skipped step never started: shown once, with why
    skipped = events[titles.index("Step note (hosts.note) skipped")]
    assert skipped.detail == "condition `when: alert.user.name is defined` was false"
    assert kinds[-1] == ("run_finished", "Run succeeded")
    # a worker whose clock is behind finished the run: still after its last step
    late = _run(finished_at="2026-11-28T10:00:01.000Z")
    assert build_timeline(late).events[-1].kind == "run_finished"
    # older records without a sequence: at equal times, started before finished, the run's end last
    legacy = _run()
    for step in legacy["steps"].values():
        step.pop("started_seq"), step.pop("finished_seq")
    legacy.pop("finished_seq"), legacy.pop("seq")
    events = build_timeline(legacy).events
    legacy_kinds = [e.kind for e in events]
    assert legacy_kinds.index("step_started") < legacy_kinds.index("step_finished")
    assert legacy_kinds[-1] == "run_finished"


def test_a_dry_run_timeline_plans_and_contains_nothing() -> None:
    tl = build_timeline(_run(dry=True))
    assert tl.status == "planned (dry run)" and tl.dry_run is True
    assert tl.milestones["contained"] is None
    steps = {s["id"]: s for s in tl.steps}
    assert steps["block"]["status"] == "planned (dry run)" and steps["block"]["dry_run"] is True
    assert steps["note"]["skip_reason"] == "condition `when: alert.user.name is defined` was false"
    assert not any("succeeded" in e.title for e in tl.events)
    html = render("run_report.html.j2", r={**tl.to_dict(), "audit": [], "verdict": None}, soar_version="x")
    assert 'id="dry-run"' in html and "planned (dry run)" in html and "was false" in html


def test_metrics_exclude_refused_and_dry_runs_and_count_them() -> None:
    refused = _run(block="refused", status="failed", finished_at="2026-11-28T10:00:00.500Z")
    refused["steps"]["block"]["instances"][0]["status"] = "refused"
    inc = incident_metrics(ALERT, [refused])
    assert inc["mttr"] is None and inc["mttc"] is None and inc["automated"] is False  # not resolved in 0 s, unaided
    assert inc["excluded_runs"] == {"dry_run": 0, "refused": 1} and inc["counted_runs"] == 0
    assert run_figures(refused)["excluded"] == "refused" and run_figures(_run(dry=True))["excluded"] == "dry_run"
    assert run_figures(_run()) == {"status": "succeeded", "excluded": None, "automated": True, "mttc": 5.0}

    second = {**ALERT, "id": "a2"}
    third = {**ALERT, "id": "a3"}
    runs = [
        {**refused, "alert_id": "a1"},
        {**_run(dry=True), "id": "run-2", "alert_id": "a2"},
        {**_run(), "id": "run-3", "alert_id": "a3"},
    ]
    start = datetime(2026, 11, 1, tzinfo=UTC)
    m = period_metrics([ALERT, second, third], runs, [], [], start=start, end=start + timedelta(30))
    assert m["responded"] == 1 and m["automation_rate"] == 1.0 and m["mttc"]["n"] == 1 and m["mttr"]["n"] == 1
    assert m["excluded_runs"] == {"dry_run": 1, "refused": 1} and m["excluded_incidents"] == 2
    assert "excluded from MTTA, MTTC, MTTR and the automation rate: 1 dry runs, 1 runs the policy refused" in (
        print_table(m)
    )


def test_a_partly_refused_run_that_contained_counts() -> None:
    run = _run()
    run["steps"]["other"] = {**run["steps"]["block"], "instances": [_inst("refused", dry=False, seq=7)]}
    assert outcomes.excluded_as(run, contained=True) is None
    assert outcomes.excluded_as(run, contained=False) == "refused"


@pytest.mark.parametrize(("dry", "shown"), [(True, "planned (dry run)"), (False, "succeeded")])
def test_cards_say_planned_for_a_dry_run(dry: bool, shown: str) -> None:
    base = {"run_id": "run-1", "playbook": "pb", "alert": {"id": "a1"}, "dry_run": dry}
    thread = Thread(id="a1", channel="#soc", card="card:a1")
    step = {"id": "block", "uses": "hosts.block_ip", "status": "succeeded", "dry_run": dry, "summary": "x"}
    apply_event(thread, {**base, "type": "step_finished", "seq": 1, "step": step})
    apply_event(thread, {**base, "type": "run_finished", "seq": 2, "status": "succeeded"})
    assert thread.status == shown
    text = "\n".join(cards.automation_lines(thread.runs))
    assert f"playbook *pb* — {shown}" in text and f"`block` hosts.block_ip — {shown}" in text
    assert ("succeeded" in text) is not dry
    _, blocks = cards.step_reply({**base, "type": "step_finished", "step": step})
    assert shown in cards.blocks_as_text(blocks)
    _, blocks = cards.generic_reply({**base, "type": "run_finished", "status": "succeeded"})
    assert f"— {shown}" in cards.blocks_as_text(blocks)
    assert shown in cards.card_followup(thread.status, thread.runs)
    skipped = {**step, "status": "skipped", "summary": "condition `when: x` was false"}
    _, blocks = cards.step_reply({**base, "type": "step_finished", "step": skipped})
    assert "skipped: condition `when: x` was false" in cards.blocks_as_text(blocks)


def test_prometheus_leaves_out_dry_and_refused_runs_and_counts_them() -> None:
    from prometheus_client import REGISTRY

    from soar import metrics_prom

    def value(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    before = {
        why: value("soar_playbook_runs_finished_total", status=status, excluded=why)
        for why, status in (("no", "succeeded"), ("dry_run", "succeeded"), ("refused", "failed"))
    }
    automated = value("soar_playbook_runs_automated_total")
    contained = value("soar_playbook_time_to_contain_seconds_count")
    refused = _run(block="refused", status="failed")
    refused["steps"]["block"]["instances"][0]["status"] = "refused"
    for run in (_run(), _run(dry=True), refused):
        metrics_prom.observe_run(run)
    after = {
        why: value("soar_playbook_runs_finished_total", status=status, excluded=why)
        for why, status in (("no", "succeeded"), ("dry_run", "succeeded"), ("refused", "failed"))
    }
    assert {k: after[k] - before[k] for k in after} == {"no": 1, "dry_run": 1, "refused": 1}
    assert value("soar_playbook_runs_automated_total") - automated == 1  # the live run only
    assert value("soar_playbook_time_to_contain_seconds_count") - contained == 1


def test_an_approval_request_in_a_dry_run_says_nothing_is_touched() -> None:
    event = {"run_id": "r", "step": {"id": "isolate", "uses": "hosts.isolate_host"}, "approval": {"required": 1}}
    _, live = cards.approval_request({**event, "dry_run": False})
    _, dry = cards.approval_request({**event, "dry_run": True})
    assert "dry run" not in cards.blocks_as_text(live)
    assert "dry run: approving plans the step, nothing is touched" in cards.blocks_as_text(dry)


def test_an_unreadable_run_record_is_one_line_and_in_no_figure() -> None:
    bad = {**_run(), "id": "run-bad", "status": "exploded"}  # a status the model does not know
    line = "unreadable run record run-bad: field status: expected one of"
    tl = build_timeline(bad)
    assert [e.title for e in tl.events] == [tl.unreadable] and tl.unreadable.startswith(line)  # type: ignore[union-attr]
    assert tl.status == "unreadable" and tl.steps == [] and tl.milestones["contained"] is None
    html = render("run_report.html.j2", r={**tl.to_dict(), "audit": [], "verdict": None}, soar_version="x")
    assert html.count("unreadable run record run-bad") == 1 and "Traceback" not in html
    assert tl.to_dict()["unreadable"] == tl.unreadable
    assert run_figures(bad) == {"status": "unreadable", "excluded": "unreadable", "automated": False, "mttc": None}

    inc = incident_metrics(ALERT, [bad, _run()])
    assert inc["counted_runs"] == 1 and inc["mttc"] == 5.0 and inc["unreadable_runs"][0].startswith(line)
    assert "unreadable_runs" not in incident_metrics(ALERT, [_run()])  # a readable period's output is unchanged
    start = datetime(2026, 11, 1, tzinfo=UTC)
    m = period_metrics([ALERT], [bad], [], [], start=start, end=start + timedelta(30))
    assert m["responded"] == 0 and m["mttc"]["n"] == 0 and m["automation_rate"] is None
    assert len(m["unreadable_runs"]) == 1 and m["unreadable_runs"][0].startswith(line)
    table = print_table(m).splitlines()
    assert sum(row.startswith("unreadable run record run-bad") for row in table) == 1


def test_the_report_of_an_unreadable_run_record_says_so_in_one_line(tmp_path: Path) -> None:
    from soar.config import load_settings
    from soar.review.report import build_report, report_html
    from soar.store.sqlite import SQLiteStore

    store = SQLiteStore(tmp_path / "store.db")
    store.put("runs", "run-bad", {**_run(), "id": "run-bad", "status": "exploded"})
    report = build_report(store, load_settings(state_dir=tmp_path), "run-bad")
    assert report["status"] == "unreadable" and report["steps"] == [] and report["report_sha256"]
    assert [e["title"] for e in report["events"]] == [report["unreadable"]]
    assert report["unreadable"].startswith("unreadable run record run-bad: field status: expected one of")
    assert report_html(report).count("unreadable run record run-bad") == 1
