"""Truthful run records through the real engine (embedded mode: eager, SQLite): a dry run is recorded and shown as
planned, never as succeeded; the run's own event order; why a step was skipped; what the metrics leave out."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from typer.testing import CliRunner

from soar import celery_app
from soar.cli.metrics_cmd import print_table
from soar.cli.runs_cmd import app as runs_app
from soar.config import Settings, get_settings
from soar.notify import cards, incidents
from soar.playbooks import dispatch, engine
from soar.playbooks.approvals import decide
from soar.playbooks.records import RUNS
from soar.playbooks.runtime import Runtime
from soar.review.data import load_period
from soar.review.metrics import period_metrics
from soar.review.report import build_report, report_html
from soar.review.timeline import impacts_from_registry
from tests.playbook_kit import Content, alert
from tests.playbook_kit.testkit import calls

# Step ids out of alphabetical order, a skipped step between two that run, a containment and a notification.
PLAYBOOK = """\
name: truthful
trigger: {rules: [rule-contain]}
steps:
  - id: zeta_contain
    uses: testkit.contain
    with: {host: "{{ alert.host.name }}"}
  - id: mid_skipped
    uses: testkit.note
    when: "alert.user.name == 'nobody'"
    with: {text: "never"}
  - id: alpha_note
    uses: testkit.note
    with: {text: "contained {{ alert.host.name }}"}
"""


def _use(monkeypatch: pytest.MonkeyPatch, *, dry_run: bool) -> Settings:
    """Settings as a worker reads them, with host actions in dry run or not."""
    monkeypatch.setenv("SOAR_RESPONSE_DRY_RUN", "true" if dry_run else "false")
    get_settings.cache_clear()
    settings = get_settings()
    celery_app.configure(settings)
    dispatch.forget_runtimes()
    return settings


@pytest.fixture
def dry_settings(pb_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    yield _use(monkeypatch, dry_run=True)


def _start(settings: Settings, doc: dict[str, Any]) -> tuple[Runtime, str]:
    rt = dispatch.runtime_for(settings)
    rt.store.create(engine.ALERTS, doc["id"], doc)
    [run_id] = engine.handle_alert(rt, doc["id"])
    dispatch.kick(settings, run_id, runtime=rt)
    return rt, run_id


def _doc(rt: Runtime, run_id: str) -> dict[str, Any]:
    rec = rt.store.get(RUNS, run_id)
    assert rec is not None
    return rec.doc


def _cli(*args: str) -> str:
    """``soar runs ...`` as rita (a responder of the content's principals file, by her token)."""
    from soar.config import get_settings
    from tests.playbook_kit import CLI_TOKENS

    get_settings.cache_clear()
    try:
        out = CliRunner().invoke(runs_app, list(args), env={"SOAR_TOKEN": CLI_TOKENS["rita"]})
    finally:
        get_settings.cache_clear()
    assert out.exit_code == 0, out.output
    return out.output


def test_a_dry_run_is_recorded_and_shown_as_planned_everywhere(content: Content, dry_settings: Settings) -> None:
    content.playbook("truthful", PLAYBOOK)
    rt, run_id = _start(dry_settings, alert(host="dev1"))
    run = _doc(rt, run_id)
    assert calls(content.state) == [] and run["contained_targets"] == []  # nothing touched, nothing contained
    # the record: the run, every step result, instance and attempt say dry_run
    assert run["status"] == "succeeded" and run["dry_run"] is True
    for step in run["steps"].values():
        assert step["dry_run"] is True
        for inst in step["instances"]:
            assert inst["dry_run"] is True and all(a["dry_run"] is True for a in inst["attempts"])
    # every audit entry the run wrote says so, and after which of the run's events
    entries = [r.doc for r in rt.store.find("audit", {"target": run_id}, order_by="seq", limit=100)]
    by_action = {e["action"]: e["details"] for e in entries}
    assert {"playbook.run_started", "playbook.step_finished", "playbook.run_finished"} <= set(by_action)
    assert all(e["details"]["dry_run"] is True for e in entries), entries
    assert by_action["playbook.run_finished"]["run_seq"] == run["finished_seq"] == run["seq"]

    # runs show / runs list: planned, never succeeded
    shown = _cli("show", run_id)
    assert f"run {run_id}: planned (dry run)" in shown and "nothing was touched" in shown
    assert "- zeta_contain (testkit.contain): planned (dry run)" in shown
    assert "zeta_contain: planned (dry run) (policy allow, attempts 1)" in shown
    assert "succeeded" not in shown
    listed = _cli("list")
    assert "planned (dry run)" in listed and "succeeded" not in listed
    [row] = json.loads(_cli("list", "--json"))
    assert row["status"] == "succeeded" and row["dry_run"] is True and row["shown_status"] == "planned (dry run)"
    as_json = json.loads(_cli("show", run_id, "--json"))  # what the API returns: the record with its dry_run
    assert as_json["dry_run"] is True and as_json["steps"]["zeta_contain"]["instances"][0]["dry_run"] is True

    # the Slack card and its replies
    thread = incidents.thread_for_run(rt.store, run_id)
    assert thread is not None and thread.status == "planned (dry run)"
    card = cards.blocks_as_text(cards.incident_card(thread.summary, status=thread.status, runs=thread.runs))
    assert "playbook *truthful* — planned (dry run)" in card
    assert "`zeta_contain` testkit.contain — planned (dry run)" in card and "succeeded" not in card
    replies = [json.dumps(r.doc) for r in rt.store.find("outbox", limit=1000)]
    step_reply = next(r for r in replies if "step `zeta_contain`" in r)
    assert "planned (dry run): 1 command would run, nothing touched" in step_reply and "succeeded" not in step_reply
    assert any("*run finished*" in r and "planned (dry run)" in r for r in replies)

    # the report
    report = build_report(rt.store, dry_settings, run_id)
    assert report["dry_run"] is True and report["status"] == "planned (dry run)"
    assert {s["id"]: s["status"] for s in report["steps"]}["zeta_contain"] == "planned (dry run)"
    assert report["milestones"]["contained"] is None
    html = report_html(report)
    assert 'id="dry-run"' in html and "planned (dry run)" in html


def test_a_run_started_dry_stays_a_plan_when_the_setting_changes(
    content: Content, dry_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    content.playbook("truthful", PLAYBOOK)
    rt, run_id = _start(dry_settings, alert(host="web1"))  # prod: the containment waits for an approval
    assert _doc(rt, run_id)["status"] == "waiting_approval"
    live = _use(monkeypatch, dry_run=False)  # the worker that resumes it acts for real
    store = dispatch.runtime_for(live).store
    decide(live, store, run_id, "zeta_contain", approver="bob", role="approver", decision="approve", via="cli")
    run = _doc(dispatch.runtime_for(live), run_id)
    assert run["status"] == "succeeded" and run["dry_run"] is True
    assert run["steps"]["zeta_contain"]["instances"][0]["attempts"][0]["dry_run"] is True
    assert calls(content.state) == [] and run["contained_targets"] == []


def test_steps_and_timeline_follow_the_runs_own_order_and_skips_say_why(
    content: Content, pb_settings: Settings
) -> None:
    content.playbook("truthful", PLAYBOOK)
    rt, run_id = _start(pb_settings, alert(host="dev1"))
    run = _doc(rt, run_id)
    assert run["status"] == "succeeded" and run["dry_run"] is False
    skipped = run["steps"]["mid_skipped"]
    assert skipped["status"] == "skipped" and skipped["skip_reason"] == (
        "condition `when: alert.user.name == 'nobody'` was false"
    )
    order = ("zeta_contain", "mid_skipped", "alpha_note")
    seqs = [(run["steps"][s]["started_seq"], run["steps"][s]["finished_seq"]) for s in order]
    assert seqs == sorted(seqs) and all(began < ended for began, ended in seqs)
    assert run["finished_seq"] == run["seq"] > seqs[-1][1]

    # runs show: the order the steps ran (not alphabetical), the skip with its reason
    shown = _cli("show", run_id)
    lines = [line for line in shown.splitlines() if line.startswith("- ")]
    assert [line.split(" ")[1] for line in lines] == ["zeta_contain", "mid_skipped", "alpha_note"]
    assert "- mid_skipped (testkit.note): skipped: condition `when: alert.user.name == 'nobody'` was false" in shown
    assert "- zeta_contain (testkit.contain): succeeded" in shown  # a live run did succeed

    # the timeline: in the run's order (a skipped step once, never "started"), the run finished after its last step
    report = build_report(rt.store, pb_settings, run_id)
    titles = [e["title"] for e in report["events"]]
    steps = [t for t in titles if t.startswith("Step ")]
    assert steps == [
        "Step zeta_contain (testkit.contain) started",
        "Step zeta_contain (testkit.contain) succeeded",
        "Step mid_skipped (testkit.note) skipped",
        "Step alpha_note (testkit.note) started",
        "Step alpha_note (testkit.note) succeeded",
    ]
    assert titles[-1] == "Run succeeded"
    run_seqs = [e["seq"] for e in report["events"] if e["seq"] is not None]
    assert run_seqs == sorted(run_seqs)
    step = {s["id"]: s for s in report["steps"]}["mid_skipped"]
    assert step["skip_reason"].startswith("condition `when:") and "was false" in report_html(report)

    # the card and its reply say why too
    replies = [json.dumps(r.doc) for r in rt.store.find("outbox", limit=1000)]
    assert any("step `mid_skipped`" in r and "skipped" in r and "was false" in r for r in replies)


def test_metrics_leave_out_refused_and_dry_runs_and_say_so(
    content: Content, pb_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    content.playbook("truthful", PLAYBOOK)
    rt, refused_id = _start(pb_settings, alert("refused-1", host="bastion-1"))  # protected: the policy refuses
    refused = _doc(rt, refused_id)
    assert refused["status"] == "failed" and refused["dry_run"] is False
    assert refused["steps"]["zeta_contain"]["instances"][0]["status"] == "refused"
    assert refused["steps"]["alpha_note"]["status"] == "skipped"  # the run stopped: the reason says after what
    assert "refused by policy" in refused["steps"]["alpha_note"]["skip_reason"]
    dry = _use(monkeypatch, dry_run=True)
    rt, dry_id = _start(dry, alert("dry-1", host="dev1"))
    assert _doc(rt, dry_id)["dry_run"] is True
    live = _use(monkeypatch, dry_run=False)
    rt, live_id = _start(live, alert("live-1", host="dev2"))
    assert _doc(rt, live_id)["contained_targets"] == ["host:dev2"]

    end = datetime.now(UTC)
    start = end - timedelta(days=365)
    data = load_period(rt.store, start, end)
    impacts = impacts_from_registry(live)  # as `soar metrics` reads them
    m = period_metrics(
        data["alerts"], data["runs"], data["approvals"], data["verdicts"], start=start, end=end, impact_of=impacts
    )
    assert m["alerts"] == 3 and m["responded"] == 1  # only the live run that contained counts
    assert m["excluded_runs"] == {"dry_run": 1, "refused": 1} and m["excluded_incidents"] == 2
    assert m["mttr"]["n"] == 1 and m["mttc"]["n"] == 1 and m["automation_rate"] == 1.0
    by_alert = {i["alert_id"]: i for i in m["incidents"]}
    assert by_alert["refused-1"]["mttr"] is None and by_alert["refused-1"]["automated"] is False  # not "0 s, unaided"
    assert by_alert["dry-1"]["mttc"] is None and by_alert["dry-1"]["excluded_runs"] == {"dry_run": 1, "refused": 0}
    assert "1 dry runs, 1 runs the policy refused (2 alerts left with no counted run)" in print_table(m)


def test_a_run_rolled_back_later_is_counted_once_and_its_rollback_follows_in_order(
    content: Content, pb_settings: Settings
) -> None:
    from prometheus_client import REGISTRY

    from soar.playbooks.rollback import request_rollback

    def finished(status: str) -> float:
        return REGISTRY.get_sample_value("soar_playbook_runs_finished_total", {"status": status, "excluded": "no"}) or 0

    before = finished("succeeded"), finished("rolled_back")
    content.playbook("truthful", PLAYBOOK)
    rt, run_id = _start(pb_settings, alert(host="dev1"))
    request_rollback(rt, run_id, actor="rita", reason="false positive")
    dispatch.kick(pb_settings, run_id, runtime=rt)
    run = _doc(rt, run_id)
    assert run["status"] == "rolled_back" and run["rollback"]["seq"] > run["steps"]["alpha_note"]["finished_seq"]
    assert (finished("succeeded") - before[0], finished("rolled_back") - before[1]) == (1, 0)
    shown = _cli("show", run_id)
    lines = [line for line in shown.splitlines() if line.startswith(("- ", "rollback:"))]
    assert lines[-2:] == [
        "rollback: requested by rita: false positive",
        "- revert_zeta_contain (testkit.release): succeeded",
    ]
    titles = [e["title"] for e in build_report(rt.store, pb_settings, run_id)["events"]]
    assert titles[titles.index("Step alpha_note (testkit.note) succeeded") :] == [
        "Step alpha_note (testkit.note) succeeded",
        "playbook.rollback",
        "playbook.rollback_requested",
        "Step Rollback revert_zeta_contain (testkit.release) started",
        "Step Rollback revert_zeta_contain (testkit.release) succeeded",
        "Containment released",
        "Run rolled_back",
    ]
