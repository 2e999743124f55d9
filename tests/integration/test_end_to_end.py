"""Issue 9, item 4: the whole loop on the real stack, watched from outside.

The scenario's reverse-shell phase on web-01 is indexed into a fresh Elasticsearch index with its
timestamps shifted to now → `soar scheduler` sends the shipped rules to a real `soar worker` (own
Redis db) → alerts → the shipped `reverse-shell` playbook runs on that worker → the shipped policy
holds the isolation of a production host for an approver → an alert card and the approval request
in its Slack thread on the stand-in → a signed "Approve" click POSTed to a real `soar api` → the run
resumes and the lab host web1 (alias web-01) is isolated: the attacker peer's connections fail →
`soar runs rollback` releases it: the peer connects again → `soar runs report --json/--html` has
the timeline and a measured MTTC consistent with the run record. Nothing the run wrote holds a secret.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import Elasticsearch

from soar.actions import ActionContext, load_registry
from soar.config import Settings, load_settings
from soar.detection.elastic import bulk_index, create_events_index
from soar.hosts.runner import RESOURCE_KEY, HostRunner
from soar.notify.cards import APPROVE_ACTION, DENY_ACTION
from soar.store import Store, open_store
from tests.conftest import REPO_ROOT
from tests.integration.e2e_support import (
    APPROVER,
    LAB_ADDRESS,
    LAB_HOST,
    REVERSE_SHELL_RULE,
    SCENARIO_HOST,
    background,
    block_ids,
    button,
    eventually,
    expected_rules,
    lab_status,
    lab_tables,
    mgmt_reaches,
    parse_iso,
    peer_reaches,
    scenario_phase,
    serve_api,
    signed_click,
    soar_cli,
    write_content,
)
from tests.integration.hosts.lab import LAB
from tests.integration.notify.standin import Workspace, health
from tests.services import require
from tests.workers import flush_db, redis_url_for_db, running_worker

pytestmark = [pytest.mark.integration, pytest.mark.lab]

DB = 14


@pytest.fixture
def stack(tmp_path: Path, es: Elasticsearch, redis: object) -> Iterator[dict[str, Any]]:
    """Content, settings and secrets for one run; every index, template and Redis key removed after."""
    require("SSH lab", lab_status)
    require("Slack stand-in", health)
    workspace = Workspace(["soc-alerts", "soc-critical"])
    files = write_content(tmp_path / "content")
    prefix = f"soar-test-{uuid.uuid4().hex[:12]}"
    secret_values = {
        "slack_bot_token": workspace.token,
        "slack_signing_secret": "sign-" + secrets.token_hex(16),
        "audit_hmac_key": "hmac-" + secrets.token_hex(16),
        "api_token": APPROVER["token"],
    }
    values: dict[str, Any] = {
        "content_root": REPO_ROOT,  # the shipped rules, playbooks, responders, integrations and policy
        "state_dir": tmp_path / "state",
        "store": "elasticsearch",
        "index_prefix": prefix,
        "events_index": f"{prefix}-events",
        "redis_url": redis_url_for_db(DB),
        "inventory_file": files["inventory"],
        "ssh_known_hosts": LAB / "known_hosts",
        "ssh_connect_timeout": 5.0,
        "ssh_command_timeout": 30.0,
        "api_tokens_file": files["tokens"],
        "notify_routes_file": tmp_path / "content" / "notify.yml",  # absent: every card goes to #soc-alerts
        "slack_api_url": workspace.api_url,
        "slack_channel_interval": 0.0,
        "slack_bot_token": secret_values["slack_bot_token"],
        "slack_signing_secret": secret_values["slack_signing_secret"],
        "audit_hmac_key": secret_values["audit_hmac_key"],
    }
    settings = load_settings(**values)
    env = {f"SOAR_{name.upper()}": str(value) for name, value in values.items()}
    flush_db(DB)
    create_events_index(es, settings.events_index)
    state = {"env": env, "settings": settings, "workspace": workspace, "secrets": secret_values, "logs": tmp_path}
    try:
        yield state
    finally:
        with contextlib.suppress(Exception):  # for a post-mortem of a failure: what Slack showed
            (tmp_path / "slack.json").write_text(json.dumps(workspace.state()["messages"], indent=1))
        if state.get("armed"):
            release_web1(settings)  # whatever happened after the approval, the lab host is left open
        es.options(ignore_status=404).indices.delete(index=f"{prefix}-*")
        es.options(ignore_status=404).indices.delete_index_template(name=f"{prefix}-state")
        flush_db(DB)


def release_web1(settings: Settings) -> None:
    """Release web1 with the real action (idempotent: a host that is not isolated is left as it is)."""
    ctx = ActionContext(settings=settings, run_id="e2e-cleanup")
    try:
        load_registry(settings).get("hosts.release_host").call(ctx, {"host": LAB_HOST})
    finally:
        runner = ctx.resources.pop(RESOURCE_KEY, None)
        if isinstance(runner, HostRunner):
            runner.close()


@dataclass
class Incident:
    """The stack running, the alert raised and its run waiting for an approver in a Slack thread."""

    store: Store
    api_url: str
    alert: dict[str, Any]
    run_id: str
    card: dict[str, Any]
    request: dict[str, Any]


@contextmanager
def incident(stack: dict[str, Any], es: Elasticsearch) -> Iterator[Incident]:
    """Replay the phase, run worker + API + scheduler, wait for the held isolation; stop them all after."""
    env: dict[str, str] = stack["env"]
    settings: Settings = stack["settings"]
    logs: Path = stack["logs"]
    # the lab is shared with other areas' tests: wait out another test's isolation of web1 rather than undo it
    eventually("web1 free of another test's isolation", lambda: "soar_isolate" not in lab_tables(), 120, 1)
    assert peer_reaches(LAB_ADDRESS), f"before the incident the attacker peer reaches web1's sshd; {lab_tables()}"

    events = scenario_phase(datetime.now(UTC))
    bulk_index(es, settings.events_index, events)
    store = open_store(settings)
    try:
        with (
            running_worker(DB, env, concurrency=2, log_path=logs / "worker.log"),
            serve_api(env, logs / "api.log") as api_url,
        ):
            alert = detect(store, env, logs, expected_rules([doc_id for doc_id, _ in events]))
            run_id = wait_for_approval_request(store, alert)
            card, request = slack_thread(stack["workspace"], alert, run_id)
            yield Incident(store, api_url, alert, run_id, card, request)
    finally:
        store.close()


def test_scenario_to_contained_and_released_host_with_slack_approval_and_report(
    stack: dict[str, Any], es: Elasticsearch
) -> None:
    env: dict[str, str] = stack["env"]
    workspace: Workspace = stack["workspace"]
    with incident(stack, es) as inc:
        stack["armed"] = True  # from here on web1 may be isolated by this test: release it whatever happens
        click_in_slack(stack, inc, APPROVE_ACTION)
        contained = run_in(inc.store, inc.run_id, ("succeeded", "failed", "rolled_back"), 120)
        assert contained["status"] == "succeeded", contained.get("error")
        assert_contained(inc.store, contained)
        assert_thread_after_decision(workspace, inc, "approved", "succeeded")

        released, rollback_out = release(inc.store, env, inc.run_id)
        assert_thread_tells_the_story(workspace, inc.card)
        report, report_out, html = post_incident_report(env, inc.run_id, stack["logs"] / "report.html")
        assert_audit_trail(inc.store, env, inc.run_id)
        stored = stored_text(es, stack["settings"])

    assert_report(report, inc.alert, released)
    print_measures(report)
    assert inc.run_id in html and "time to contain" in html and "Containment verified" in html
    assert_no_secret(
        stack,
        {
            "the store": stored,
            "the JSON report": report_out,
            "the HTML report": html,
            "the CLI's output": rollback_out,
        },
    )


def test_a_denied_isolation_leaves_the_host_reachable_and_the_report_without_containment(
    stack: dict[str, Any], es: Elasticsearch
) -> None:
    """Light control: the approver says no in Slack, so nothing is cut, and the report measures no MTTC."""
    with incident(stack, es) as inc:
        stack["armed"] = True  # a wrongly executed isolation must not outlive the test either
        click_in_slack(stack, inc, DENY_ACTION)
        done = run_in(inc.store, inc.run_id, ("succeeded", "failed", "rolled_back"), 120)
        isolate = done["steps"]["isolate"]
        assert isolate["status"] != "succeeded", isolate
        (approval,) = [a.doc for a in inc.store.find("approvals", {"run_id": inc.run_id})]
        assert approval["status"] == "denied"
        assert [(d["approver"], d["via"]) for d in approval["denials"]] == [(APPROVER["name"], "slack")]
        assert peer_reaches(LAB_ADDRESS), f"a denied isolation cut nothing; {lab_tables()}"
        assert "soar_isolate" not in lab_tables()
        assert_thread_after_decision(stack["workspace"], inc, "denied", done["status"])
        report, report_out, _ = post_incident_report(stack["env"], inc.run_id, stack["logs"] / "report.html")
        stored = stored_text(es, stack["settings"])
    assert report["milestones"]["contained"] is None
    assert {s["label"]: s["seconds"] for s in report["segments"]}["time to contain"] is None
    assert report["human_decisions"] >= 1
    assert_no_secret(stack, {"the store": stored, "the JSON report": report_out})


def assert_no_secret(stack: dict[str, Any], written: dict[str, str]) -> None:
    """No configured secret in anything the run wrote: the given texts, what Slack shows, every process's log."""
    everywhere = {
        **written,
        "Slack": json.dumps(stack["workspace"].state()["messages"]),
        **{p.name: p.read_text(errors="replace") for p in stack["logs"].glob("*.log")},
    }
    for name, secret in stack["secrets"].items():
        for where, text in everywhere.items():
            assert secret not in text, f"the {name} leaked into {where}"


# -- the phases ---------------------------------------------------------------------------------------------------


def detect(store: Store, env: dict[str, str], logs: Path, expected: set[str]) -> dict[str, Any]:
    """The real scheduler sends every shipped rule to the worker: exactly the rules the scenario expects fire."""
    assert REVERSE_SHELL_RULE in expected
    log = logs / "scheduler.log"
    with background(["scheduler", "--tick", "1"], env, log):
        try:
            record = eventually(
                "the reverse-shell alert",
                lambda: next(iter(store.find("alerts", {"rule.id": REVERSE_SHELL_RULE})), None),
                90,
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}; the scheduler said: {log.read_text()[-600:]}") from None

        def all_fired() -> set[str] | None:
            ids = {str(r.doc["rule"]["id"]) for r in store.find("alerts")}
            return ids if ids >= expected else None

        fired = eventually("every expected alert of the phase", all_fired, 30)
    assert fired == expected, f"rules that fired but should not: {fired - expected}"
    alert = record.doc
    assert alert["host"]["name"] == SCENARIO_HOST
    assert "/dev/tcp/" in json.dumps(alert), "the alert carries the event that matched"
    return alert


def wait_for_approval_request(store: Store, alert: dict[str, Any]) -> str:
    """The shipped playbook started on the worker and the shipped policy holds the isolation of a prod host."""

    def waiting() -> dict[str, Any] | None:
        runs = [r.doc for r in store.find("runs", {"alert_id": alert["id"]})]
        return next((r for r in runs if r["status"] == "waiting_approval"), None)

    run = eventually("the reverse-shell run to wait for an approver", waiting, 60)
    assert run["playbook"]["name"] == "reverse-shell"
    pending = [p.doc for p in store.find("approvals", {"run_id": run["id"], "status": "pending"})]
    assert [p["step"] for p in pending] == ["isolate"]
    assert "isolation-in-production" in json.dumps(pending[0]["reasons"])
    assert peer_reaches(LAB_ADDRESS), f"nothing is contained before the approval; web1: {lab_tables()}"
    return str(run["id"])


def slack_thread(workspace: Workspace, alert: dict[str, Any], run_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The alert card in #soc-alerts and the approval request, with its buttons, in the card's thread."""
    card = eventually("the alert card in Slack", lambda: card_of(workspace, alert["id"]), 60)
    assert card["text"].startswith("[CRITICAL] Reverse shell through bash /dev/tcp"), card["text"]
    assert card["channel"] == workspace.channels["soc-alerts"]
    assert eventually(
        "the card to name the playbook and its waiting step",
        lambda: "reverse-shell" in (shown := json.dumps(card_of(workspace, card_id(card)))) and "waiting" in shown,
        30,
    )
    request = eventually("the approval request in Slack", lambda: approval_message(workspace, run_id), 60)
    assert request["thread_ts"] == card["ts"], "the approval request is a reply in the alert's thread"
    assert has_buttons(request), "the request has buttons"
    return card, request


def click_in_slack(stack: dict[str, Any], inc: Incident, action_id: str) -> None:
    """Alice clicks a button of the request: Slack's signed POST reaches the real API, which hands it to the worker.

    The same click signed with another secret is refused first, and decides nothing.
    """
    click = {
        "clicked": button(inc.request, action_id),
        "user": APPROVER["slack_user_id"],
        "channel": inc.request["channel"],
        "message_ts": inc.request["ts"],
    }
    forged = signed_click(inc.api_url, "not-" + stack["secrets"]["slack_signing_secret"], **click)
    assert forged.status_code == 401, forged.text
    assert [a.doc["status"] for a in inc.store.find("approvals", {"run_id": inc.run_id})] == ["pending"]
    resp = signed_click(inc.api_url, stack["secrets"]["slack_signing_secret"], **click)
    assert resp.status_code == 200, resp.text


def assert_contained(store: Store, run: dict[str, Any]) -> None:
    isolate = run["steps"]["isolate"]
    assert isolate["status"] == "succeeded", isolate
    (instance,) = isolate["instances"]
    assert instance["result"]["verified"] is True, "the action verified its own effect"
    assert instance["decision"]["outcome"] == "approve", instance["decision"]
    (approval,) = [a.doc for a in store.find("approvals", {"run_id": run["id"]})]
    assert approval["status"] == "approved"
    assert [(a["approver"], a["via"]) for a in approval["approvers"]] == [(APPROVER["name"], "slack")]
    # the real effect, seen from the attacker's side; the management path stays open
    assert not peer_reaches(LAB_ADDRESS), "web1 is isolated: the attacker peer's connection fails"
    assert "soar_isolate" in lab_tables()
    assert mgmt_reaches(LAB_ADDRESS), "the management peer still reaches web1"


def assert_thread_after_decision(workspace: Workspace, inc: Incident, decision: str, final_status: str) -> None:
    """The decision replaces the buttons and names who decided; the thread says it too; the card shows the end."""
    decided = eventually(
        "the approval message to show the decision",
        lambda: next((m for m in [approval_message(workspace, inc.run_id)] if m and not has_buttons(m)), None),
        30,
    )
    shown = json.dumps(decided["blocks"])
    assert f"*{decision}*" in shown, shown
    assert APPROVER["name"] in shown, shown
    if decision != "approved":
        named = f"{decision} by {APPROVER['name']}"
        eventually(
            f"a reply saying {named!r}",
            lambda: any(named in json.dumps(m) for m in workspace.replies(inc.card["ts"])),
            30,
        )
    assert eventually(
        f"the card to show the run {final_status}",
        lambda: final_status in json.dumps(card_of(workspace, card_id(inc.card))),
        30,
    )


def release(store: Store, env: dict[str, str], run_id: str) -> tuple[dict[str, Any], str]:
    """`soar runs rollback` (the CLI a responder uses) reverts the isolation on the worker; the peer gets in again."""
    as_approver = {**env, "SOAR_TOKEN": APPROVER["token"]}  # the CLI acts as the token's principal
    rolled = soar_cli(as_approver, "runs", "rollback", run_id, "--reason", "e2e drill: release")
    assert rolled.returncode == 0, rolled.stdout + rolled.stderr
    released = run_in(store, run_id, ("rolled_back", "failed"), 90)
    assert released["status"] == "rolled_back", released.get("error")
    reverts = {k: v for k, v in released["steps"].items() if v.get("phase") == "rollback"}
    assert [v["uses"] for v in reverts.values()] == ["hosts.release_host"], reverts
    steps = {k: (v["uses"], v["status"]) for k, v in released["steps"].items()}
    assert peer_reaches(LAB_ADDRESS), f"after the release the peer reaches web1 again; {lab_tables()}, {steps}"
    assert "soar_isolate" not in lab_tables()
    return released, rolled.stdout + rolled.stderr


# what the on-call reads in the incident's thread, in this order (one reply each)
STORY = (
    ("approved", APPROVER["name"]),
    ("hosts.isolate_host", "succeeded", "verified"),
    ("run finished", "succeeded"),
    ("rollback", APPROVER["name"], "e2e drill: release"),
    ("hosts.release_host", "succeeded", "verified"),
    ("run finished", "rolled_back"),
)


def assert_thread_tells_the_story(workspace: Workspace, card: dict[str, Any]) -> None:
    """The thread under the card: approval, verified containment, release, each as its own reply, in order."""

    def told() -> bool:
        replies = [m["text"] + json.dumps(m["blocks"]) for m in workspace.replies(card["ts"])]
        at = 0
        for fragments in STORY:
            at = next((i + 1 for i in range(at, len(replies)) if all(f in replies[i] for f in fragments)), -1)
            if at < 0:
                return False
        return True

    eventually("the thread to tell approval → containment → release", told, 30)
    # The card's Automation section shows the run rolled back. Its header may lag one state behind: two worker
    # processes can enqueue card updates out of revision order and the outbox keeps the later-enqueued one
    # (soar/notify/storm.py coalesce_updates; reported to the notify area), so the header is not asserted.
    eventually(
        "the card to show the run rolled back",
        lambda: "playbook *reverse-shell* — rolled_back" in card_shows(workspace, card),
        30,
    )


def post_incident_report(env: dict[str, str], run_id: str, html_path: Path) -> tuple[dict[str, Any], str, str]:
    as_json = soar_cli(env, "runs", "report", run_id, "--json")
    assert as_json.returncode == 0, as_json.stderr
    as_html = soar_cli(env, "runs", "report", run_id, "--html", str(html_path))
    assert as_html.returncode == 0, as_html.stderr
    return json.loads(as_json.stdout), as_json.stdout, html_path.read_text(encoding="utf-8")


def assert_audit_trail(store: Store, env: dict[str, str], run_id: str) -> None:
    """Who decided what is in the keyed audit chain, and `soar audit verify` finds it intact."""
    verified = soar_cli(env, "audit", "verify", "--json")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    result = json.loads(verified.stdout)
    assert result["ok"] and result["keyed"] and result["entries"] > 0, result
    entries = [e.doc for e in store.find("audit", limit=10_000)]
    actions = {str(e.get("action")) for e in entries if run_id in json.dumps(e)}
    for action in ("playbook.run_started", "approval.requested", "approval.approve", "playbook.rollback"):
        assert action in actions, (action, sorted(actions))
    approve = next(e for e in entries if e.get("action") == "approval.approve" and run_id in json.dumps(e))
    assert APPROVER["name"] in json.dumps(approve) and "slack" in json.dumps(approve), approve


def assert_report(report: dict[str, Any], alert: dict[str, Any], run: dict[str, Any]) -> None:
    """The timeline has every milestone and segment; the MTTC is measured, and agrees with the run record."""
    milestones = report["milestones"]
    for name in ("first_event", "detected", "run_started", "first_action", "contained", "released"):
        assert milestones[name], f"the report's timeline lacks {name}"
    segments = {s["label"]: s["seconds"] for s in report["segments"]}
    for label in ("time to detect", "time to first action", "time to contain", "containment held"):
        assert segments[label] is not None and segments[label] > 0, (label, segments)
    mttc = segments["time to contain"]
    # alert → the isolate step's verified finish, both read from the store the worker wrote
    expected = (parse_iso(run["steps"]["isolate"]["finished_at"]) - parse_iso(alert["@timestamp"])).total_seconds()
    assert abs(mttc - expected) < 0.01, (mttc, expected)
    approval = report["approvals"][0]
    assert parse_iso(milestones["contained"]) > parse_iso(approval["decided_at"]), "contained after the approval"
    assert report["human_decisions"] >= 1
    titles = [e["title"] for e in report["events"]]
    assert "Containment verified" in titles and "Containment released" in titles, titles


def print_measures(report: dict[str, Any]) -> None:
    """The measured segments, for the record (`pytest -s`); never asserted against a fixed number."""
    for segment in report["segments"]:
        if segment["seconds"] is not None:
            print(f"e2e {segment['label']:<40} {segment['seconds']:8.2f} s")


# -- reading the stand-in and the store ----------------------------------------------------------------------------


def card_id(card: dict[str, Any]) -> str:
    return str(card["ts"])


def card_of(workspace: Workspace, alert_id_or_ts: str) -> dict[str, Any] | None:
    """The alert's top-level card (by alert id in its blocks, or by its ts)."""
    return next(
        (m for m in workspace.top_level() if m["ts"] == alert_id_or_ts or alert_id_or_ts in json.dumps(m["blocks"])),
        None,
    )


def card_shows(workspace: Workspace, card: dict[str, Any]) -> str:
    """The card's header text and blocks as they read now."""
    current = card_of(workspace, card_id(card)) or {}
    return str(current.get("text", "")) + json.dumps(current.get("blocks"), ensure_ascii=False)


def has_buttons(message: dict[str, Any]) -> bool:
    return any(b["type"] == "actions" for b in message["blocks"])


def approval_message(workspace: Workspace, run_id: str) -> dict[str, Any] | None:
    """The run's approval request as the channel shows it now ("edits" keeps the history)."""
    for m in workspace.state()["messages"]:
        ids = block_ids(m) + [i for e in m.get("edits") or [] for i in block_ids(e)]
        if any(i.startswith(f"approval:{run_id}") for i in ids):
            return dict(m)
    return None


def run_in(store: Store, run_id: str, statuses: tuple[str, ...], timeout: float) -> dict[str, Any]:
    def current() -> dict[str, Any] | None:
        record = store.get("runs", run_id)
        return record.doc if record is not None and record.doc["status"] in statuses else None

    return eventually(f"run {run_id} to be {' or '.join(statuses)}", current, timeout)


def stored_text(es: Elasticsearch, settings: Settings) -> str:
    """Every document of the run's state indices, as text."""
    index = f"{settings.index_prefix}-state-*"
    es.indices.refresh(index=index)
    hits = es.search(index=index, size=10_000, query={"match_all": {}})["hits"]["hits"]
    assert hits, "the store is empty"
    return json.dumps([h["_source"] for h in hits])
