"""The production path: `soar api` acknowledges a click and a real Celery worker (own Redis db) does the work.

The alert → run → approval request → Slack card → click → decision → resumed run → updated
thread all happen in other processes; this test only watches the store and the stand-in.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from celery import Celery

from soar.notify.interactions import INTERACTIONS_KIND
from soar.store import Store
from tests.integration.notify.apiserver import (
    Api,
    api_env,
    approval,
    approval_message_or_none,
    channel_id,
    eventually,
    open_test_store,
    payload,
    post,
    put_alert,
    serve_api,
    signed,
    waiting_step,
)
from tests.integration.notify.content import write_content
from tests.integration.notify.standin import Workspace
from tests.workers import flush_db, redis_url_for_db, running_worker

DB = 10


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, standin: None, redis: object) -> Iterator[Api]:
    root = write_content(tmp_path_factory.mktemp("slack-worker"))
    workspace = Workspace(["soc-alerts"])
    env = api_env(root, workspace, eager=False, redis_url=redis_url_for_db(DB))
    flush_db(DB)
    with (
        running_worker(DB, env, concurrency=2, log_path=root / "worker.log"),
        serve_api(root, workspace, env) as server,
    ):
        yield server
    flush_db(DB)


@pytest.fixture
def store(api: Api) -> Iterator[Store]:
    s = open_test_store(api)
    yield s
    s.close()


def alert_run_on_the_worker(store: Store) -> tuple[str, str]:
    """An alert handed to the worker as the scheduler would; (alert id, the run it started)."""
    alert_id = put_alert(store)
    client = Celery("client", broker=redis_url_for_db(DB))
    try:
        client.send_task("soar.playbooks.handle_alert", args=[alert_id], queue="response")
    finally:
        client.close()
    run_id = eventually(lambda: next((r.id for r in store.find("runs", {"alert_id": alert_id})), None), 30)
    assert run_id, "the worker started a run for the alert"
    return alert_id, str(run_id)


def test_an_alert_reaches_slack_and_a_click_on_approve_resumes_the_run_on_a_worker(api: Api, store: Store) -> None:
    alert_id, run_id = alert_run_on_the_worker(store)
    assert run_id, "the worker started a run for the alert"
    step = waiting_step(store, run_id)
    message = eventually(lambda: approval_message_or_none(api, run_id), 30)
    assert message, "the approval request reached Slack through the worker's outbox"
    for user in ("UALICE", "UBOB"):
        assert post(api, payload(run_id, step, user, channel=channel_id(api)))[0].status_code == 200
    assert eventually(lambda: approval(store, run_id)["status"] == "approved", 30)
    assert eventually(lambda: store.get("runs", run_id).doc["status"] == "succeeded", 30)  # type: ignore[union-attr]
    decided = eventually(
        lambda: (m := approval_message_or_none(api, run_id)) and not any(b["type"] == "actions" for b in m["blocks"]),
        30,
    )
    assert decided, "the buttons were replaced by the decision"
    cards = [m for m in api.workspace.top_level() if alert_id in str(m["blocks"])]
    assert len(cards) == 1, "one card (one thread) for the incident"
    assert eventually(lambda: "succeeded" in str(api.workspace.top_level()[0]["blocks"]), 30)


def test_an_alert_without_a_playbook_gets_its_card_from_a_worker(api: Api, store: Store) -> None:
    alert_id = put_alert(store)
    store.put(
        "alerts",
        alert_id,
        {
            **store.get("alerts", alert_id).doc,
            "rule": {
                "id": "no-playbook",  # type: ignore[union-attr]
                "title": "Unmatched rule",
                "level": "low",
            },
        },
    )
    client = Celery("client", broker=redis_url_for_db(DB))
    try:
        for _ in range(2):  # sent twice: one card
            client.send_task("soar.notify.alert", args=[alert_id], queue="response")
    finally:
        client.close()
    cards = eventually(lambda: [m for m in api.workspace.top_level() if alert_id in str(m["blocks"])], 30)
    assert cards and cards[0]["text"].startswith("[LOW] Unmatched rule")
    assert "no playbook matches" in str(cards[0]["blocks"])
    time.sleep(1)
    assert len([m for m in api.workspace.top_level() if alert_id in str(m["blocks"])]) == 1


def test_two_worker_processes_never_show_an_older_card_after_a_newer_one(api: Api, store: Store) -> None:
    from soar.notify.incidents import THREADS_KIND
    from soar.playbooks.events import make_event

    alert_id = uuid.uuid4().hex
    alert = {"id": alert_id, "rule": {"id": "r", "title": "Worker race", "level": "high"}}
    run = {"id": f"run-{uuid.uuid4().hex[:8]}", "playbook": {"name": "p"}, "status": "running", "alert": alert}
    events = [
        make_event("step_finished", run, step={"id": f"step{n:02d}", "uses": "x.y", "status": "succeeded"})
        for n in range(1, 13)
    ]
    client = Celery("client", broker=redis_url_for_db(DB))
    try:
        for event in events:  # both pool processes take them at once
            client.send_task("soar.notify.run_event", args=[run["id"], event], queue="response")
    finally:
        client.close()
    thread = eventually(lambda: (r := store.get(THREADS_KIND, alert_id)) and r.doc["revision"] == 12 and r.doc, 30)
    assert thread, "every event reached the incident's thread"

    def versions() -> list[int]:
        cards = [m for m in api.workspace.top_level() if alert_id in str(m["blocks"])]
        return [str(v["blocks"]).count("`step") for v in [*cards[0]["edits"], cards[0]]] if cards else []

    assert eventually(lambda: versions()[-1:] == [12], 30), versions()  # Slack ends on the newest card
    shown = versions()
    assert shown == sorted(set(shown)), f"an older card was shown after a newer one: {shown}"


def test_a_click_the_broker_cannot_take_gets_503_and_the_same_click_repeated_decides(api: Api, store: Store) -> None:
    """Redis unreachable from the API at the click: Slack gets a 503 (the clicker sees it failed), nothing is
    recorded as seen, and the very same request sent again once Redis is back is taken and decided."""
    from tests.integration.scheduler.proxy import CuttableProxy

    _, run_id = alert_run_on_the_worker(store)
    step = waiting_step(store, run_id)
    proxy = CuttableProxy("127.0.0.1", 6379).start()
    root = Path(api.env["SOAR_CONTENT_ROOT"])
    env = {**api.env, "SOAR_REDIS_URL": f"redis://127.0.0.1:{proxy.port}/{DB}"}
    try:
        with serve_api(root, api.workspace, env) as via_proxy:
            click = payload(run_id, step, "UALICE", channel=channel_id(api))
            proxy.cut()
            refused, body = post(via_proxy, click)
            assert refused.status_code == 503, refused.text
            assert "click again" in refused.json()["error"]
            assert store.count(INTERACTIONS_KIND, {"run_id": run_id}) == 0, "a click nobody will handle is not 'seen'"
            assert approval(store, run_id)["approvers"] == []
            proxy.restore()
            again = httpx.post(f"{via_proxy.url}/slack/interactivity", content=body, headers=signed(body), timeout=10)
            assert again.status_code == 200, again.text
            voters = eventually(lambda: approval(store, run_id)["approvers"], 30)
            assert [(v["approver"], v["via"]) for v in voters] == [("alice", "slack")]
            log = (root / "api.log").read_text()
            assert "not taken: the task broker is unreachable" in log and "Traceback" not in log
    finally:
        proxy.close()
