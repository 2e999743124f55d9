"""The outbox against the stand-in: rate limits, outages, lost answers, unknown channels, storms, pacing."""

from __future__ import annotations

import itertools
import logging
import time
import uuid

import pytest
from pydantic import SecretStr

from soar.clock import FakeClock
from soar.config import Settings
from soar.notify import Deliverer, deliver, transport_for
from soar.notify.delivery import DeliveryReport, backoff
from soar.notify.outbox import KIND, Message, enqueue, get, listing
from soar.store import Store
from tests.integration.notify.standin import Workspace


def _msg(n: int, channel: str = "#soc-alerts", kind: str = "card") -> Message:
    return Message(
        key=f"test:{uuid.uuid4().hex[:8]}:{n}",
        op="post",
        kind=kind,  # type: ignore[arg-type]
        channel=channel,
        text=f"message {n}",
        blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": f"message {n}"}}],
        summary={"title": f"rule {n % 3}", "level": "high", "host": f"h{n}"},
    )


def _texts(workspace: Workspace) -> list[str]:
    return [m["text"] for m in workspace.top_level()]


def _make_due(store: Store) -> None:
    """Skip the backoff wait: what a later scheduled delivery would find."""
    for message in listing(store, ["pending"]):
        message.next_attempt_at = 0
        store.put(KIND, message.key, message.to_doc())
    for record in store.find("notify_channels"):
        store.put("notify_channels", record.id, {**record.doc, "blocked_until": 0})


def test_429_retry_after_is_honoured_and_nothing_is_posted_twice(
    slack_settings: Settings, store: Store, workspace: Workspace
) -> None:
    enqueue(store, _msg(1))
    workspace.fault("rate_limit", method="chat.postMessage", retry_after=2)
    clock = FakeClock()

    def deliver_now() -> DeliveryReport:
        return Deliverer(slack_settings, store, transport_for(slack_settings), clock=clock).deliver("#soc-alerts")

    first = deliver_now()
    assert first.sent == 0 and first.retry_in == pytest.approx(2, abs=0.2)
    assert _texts(workspace) == []
    clock.advance(1.9)
    again = deliver_now()  # too early: the channel is still blocked
    assert again.sent == 0 and len(workspace.calls("chat.postMessage")) == 1
    clock.advance(0.2)
    assert deliver_now().sent == 1
    assert _texts(workspace) == ["message 1"]


def test_an_outage_loses_nothing_and_duplicates_nothing(
    slack_settings: Settings, store: Store, workspace: Workspace
) -> None:
    for n in range(5):
        enqueue(store, _msg(n))
    workspace.outage(True)
    report = deliver(slack_settings, store, "#soc-alerts")
    assert report.sent == 0 and report.retry_in is not None and report.retry_in > 0
    assert report.errors and "503" in report.errors[0]
    assert [m.status for m in listing(store)] == ["pending"] * 5  # stored, waiting
    workspace.outage(False)
    _make_due(store)
    assert deliver(slack_settings, store, "#soc-alerts").sent == 5
    assert _texts(workspace) == [f"message {n}" for n in range(5)]
    assert deliver(slack_settings, store, "#soc-alerts").sent == 0  # a later pass sends nothing again


def test_each_failed_attempt_backs_off_exponentially_with_jitter_up_to_five_minutes(
    slack_settings: Settings, store: Store, workspace: Workspace
) -> None:
    message = _msg(1)
    enqueue(store, message)
    workspace.outage(True)
    delays = []
    for _ in range(4):
        report = deliver(slack_settings, store, "#soc-alerts")
        stored = get(store, message.key)
        assert report.sent == 0 and stored is not None and stored.status == "pending"
        assert stored.next_attempt_at - time.time() == pytest.approx(report.retry_in, abs=0.2)  # kept for the retry
        delays.append(report.retry_in)
        _make_due(store)
    for attempt, delay in enumerate(delays, start=1):  # 1, 2, 4, 8 s, each ±20 %
        assert 0.8 * 2 ** (attempt - 1) <= delay <= 1.2 * 2 ** (attempt - 1), delays
    assert get(store, message.key).attempts == 4 and _texts(workspace) == []  # type: ignore[union-attr]
    assert [backoff(n) <= 300 for n in (9, 10, 30)] == [True] * 3 and backoff(30) >= 240  # capped at 5 minutes
    workspace.outage(False)
    _make_due(store)
    assert deliver(slack_settings, store, "#soc-alerts").sent == 1 and _texts(workspace) == ["message 1"]


def test_a_lost_answer_is_found_by_its_idempotency_key_not_posted_again(
    slack_settings: Settings, store: Store, workspace: Workspace
) -> None:
    message = _msg(1)
    enqueue(store, message)
    workspace.fault("accept_then_error", method="chat.postMessage", status=502)
    report = deliver(slack_settings, store, "#soc-alerts")
    assert report.sent == 0 and get(store, message.key).uncertain  # type: ignore[union-attr]
    _make_due(store)
    report = deliver(slack_settings, store, "#soc-alerts")
    assert report.deduplicated == 1
    assert _texts(workspace) == ["message 1"]  # Slack got it once
    stored = get(store, message.key)
    assert stored is not None and stored.status == "sent" and stored.ts == workspace.top_level()[0]["ts"]


def test_an_unknown_channel_is_reported_once_and_the_message_kept_for_retry(
    slack_settings: Settings, store: Store, workspace: Workspace, caplog: pytest.LogCaptureFixture
) -> None:
    enqueue(store, _msg(1, channel="#soc-new"))
    enqueue(store, _msg(2, channel="#soc-new"))
    with caplog.at_level(logging.ERROR, logger="soar.notify"):
        first = deliver(slack_settings, store, "#soc-new")
        _make_due(store)
        second = deliver(slack_settings, store, "#soc-new")
    assert first.errors == ["channel_not_found"] and second.errors == ["channel_not_found"]
    reports = [r for r in caplog.records if "channel_not_found" in r.getMessage()]
    assert len(reports) == 1 and "#soc-new" in reports[0].getMessage()
    assert [m.status for m in listing(store)] == ["pending", "pending"]
    workspace.add_channel("soc-new")  # someone creates the channel (or invites the bot)
    _make_due(store)
    assert deliver(slack_settings, store, "#soc-new").sent == 2
    assert _texts(workspace) == ["message 1", "message 2"]


def test_a_storm_becomes_a_summary_not_a_flood(slack_settings: Settings, store: Store, workspace: Workspace) -> None:
    settings = slack_settings.model_copy(update={"slack_storm_threshold": 5})
    for n in range(40):
        enqueue(store, _msg(n))
    report = deliver(settings, store, "#soc-alerts")
    posted = workspace.top_level()
    assert report.summarized == 35 and report.sent == 6
    assert [m["text"] for m in posted[:5]] == [f"message {n}" for n in range(5)]
    assert "35 alerts summarised" in posted[5]["text"]
    summary = str(posted[5]["blocks"])
    assert "rule 0" in summary and "×12" in summary  # counted per rule


def test_messages_to_one_channel_are_paced_under_its_limit(slack_settings: Settings, store: Store) -> None:
    paced = Workspace(["soc-alerts"], rate_limit_per_sec=2)
    settings = slack_settings.model_copy(
        update={"slack_bot_token": SecretStr(paced.token), "slack_channel_interval": 0.55, "slack_storm_threshold": 100}
    )
    for n in range(5):
        enqueue(store, _msg(n))
    started = time.monotonic()
    report = Deliverer(settings, store, transport_for(settings)).deliver("#soc-alerts")
    assert report.sent == 5 and report.errors == []  # never hit the stand-in's 2/s limit
    assert time.monotonic() - started >= 4 * 0.55
    assert len(paced.calls("chat.postMessage")) == 5


def test_pacing_holds_across_delivery_passes_each_with_its_own_deliverer(
    slack_settings: Settings, store: Store
) -> None:
    paced = Workspace(["soc-alerts"], rate_limit_per_sec=2)
    settings = slack_settings.model_copy(
        update={"slack_bot_token": SecretStr(paced.token), "slack_channel_interval": 0.55}
    )
    for n in range(4):  # one message per pass, as when each run event kicks its own delivery task
        enqueue(store, _msg(n))
        assert Deliverer(settings, store, transport_for(settings)).deliver("#soc-alerts").sent == 1
    calls = paced.calls("chat.postMessage")
    assert len(calls) == 4 and [m["text"] for m in paced.top_level()] == [f"message {n}" for n in range(4)]
    gaps = [b["at"] - a["at"] for a, b in itertools.pairwise(calls)]
    assert min(gaps) >= 0.5, gaps  # never faster than the interval (less the stand-in's clock resolution)


def test_without_a_bot_token_the_same_content_goes_to_the_console(
    slack_settings: Settings, store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = slack_settings.model_copy(update={"slack_bot_token": None})
    enqueue(store, _msg(7))
    assert deliver(settings, store, "#soc-alerts").sent == 1
    err = capsys.readouterr().err
    assert "post to #soc-alerts" in err and "message 7" in err


def test_without_slack_a_runs_card_replies_and_approval_request_go_to_the_console(
    slack_settings: Settings, store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    from soar.notify import notify_run_event
    from soar.playbooks.events import make_event

    settings = slack_settings.model_copy(update={"slack_bot_token": None, "slack_channel_interval": 1.0})
    alert = {
        "id": uuid.uuid4().hex,
        "rule": {"id": "r", "title": "SSH brute force", "level": "high", "tags": ["attack.t1110.001"]},
        "host": {"name": "web-1"},
        "source": {"ip": "203.0.113.9"},
        "events": [{"message": "Failed password for root"}],
    }
    store.put("alerts", alert["id"], alert)
    run = {
        "id": f"run-{uuid.uuid4().hex[:6]}",
        "playbook": {"name": "contain-ssh"},
        "status": "running",
        "alert": alert,
    }
    step = {"id": "block", "uses": "hosts.block_ip", "status": "awaiting_approval"}
    for event in (
        make_event("run_started", run),
        make_event(
            "approval_requested", run, step=step, approval={"step": "block", "required": 2, "impact": "contain"}
        ),
    ):
        notify_run_event(settings, store, event)
    printed = capsys.readouterr().err.split("[slack→console] ")[1:]
    card = printed[0]
    assert card.startswith("post to #soc-alerts\nSSH brute force")
    for part in ("web-1", "203.0.113.9", "T1110.001", "high", "Failed password for root", alert["id"]):
        assert part in card, part
    rest = "".join(printed[1:])
    assert "(thread console." in rest and "run started" in rest and run["id"] in rest
    assert "Approval needed" in rest and "[Approve]" in rest and "[Deny]" in rest
    assert {m.status for m in listing(store)} <= {"sent", "superseded"}


def test_a_storm_never_hides_an_approval_request(slack_settings: Settings, store: Store, workspace: Workspace) -> None:
    settings = slack_settings.model_copy(update={"slack_storm_threshold": 3})
    storm = [_msg(n) for n in range(10)]
    for message in storm:
        enqueue(store, message)
    approval = Message(
        key=f"approval:{uuid.uuid4().hex[:8]}",
        op="post",
        kind="reply",
        channel="#soc-alerts",
        text="Approval needed",
        target=storm[8].key,
        important=True,
    )
    enqueue(store, approval)
    deliver(settings, store, "#soc-alerts")
    texts = _texts(workspace)
    # at most 3 cards: the one awaiting approval is never folded, two more, then one summary of the other 7
    assert texts[:3] == ["message 0", "message 1", "message 8"]
    assert len(texts) == 4 and "7 alerts summarised" in texts[3]
    card = next(m for m in workspace.top_level() if m["text"] == "message 8")
    assert [r["text"] for r in workspace.replies(card["ts"])] == ["Approval needed"]


def test_one_deliverer_per_channel_and_one_pending_wake_up(slack_settings: Settings, store: Store) -> None:
    import threading

    settings = slack_settings.model_copy(update={"slack_channel_interval": 0.3})
    for n in range(4):
        enqueue(store, _msg(n))
    first = Deliverer(settings, store, transport_for(settings))
    worker = threading.Thread(target=first.deliver, args=("#soc-alerts",))
    worker.start()
    time.sleep(0.2)
    second = Deliverer(settings, store, transport_for(settings))
    report = second.deliver("#soc-alerts")
    assert report.busy and report.sent == 0  # pacing holds: the channel has one sender
    assert second.claim_wake("#soc-alerts", 0.5) and not Deliverer(settings, store, transport_for(settings)).claim_wake(
        "#soc-alerts", 0.5
    )
    worker.join()
    assert [m.status for m in listing(store)] == ["sent"] * 4
    time.sleep(0.55)
    assert second.claim_wake("#soc-alerts", 0.5)  # the earlier wake-up is due: a new one may be scheduled


def test_an_approval_for_an_incident_already_folded_into_a_summary_brings_its_card_back(
    slack_settings: Settings, store: Store, workspace: Workspace
) -> None:
    settings = slack_settings.model_copy(update={"slack_storm_threshold": 3})
    storm = [_msg(n) for n in range(10)]
    for message in storm:
        enqueue(store, message)
    deliver(settings, store, "#soc-alerts")
    assert get(store, storm[7].key).status == "summarized"  # type: ignore[union-attr]
    enqueue(
        store,
        Message(
            key="approval:late",
            op="post",
            kind="reply",
            channel="#soc-alerts",
            text="Approval needed",
            target=storm[7].key,
            important=True,
        ),
    )
    deliver(settings, store, "#soc-alerts")
    card = next(m for m in workspace.top_level() if m["text"] == "message 7")
    assert [r["text"] for r in workspace.replies(card["ts"])] == ["Approval needed"]


def test_a_message_left_in_flight_by_a_dead_deliverer_is_not_posted_twice(
    slack_settings: Settings, store: Store, workspace: Workspace
) -> None:
    message = _msg(1)
    enqueue(store, message)
    # The dead deliverer had claimed it and Slack had taken it, but it never recorded the answer.
    transport_for(slack_settings).post(message.channel, message.text, message.blocks, thread_ts=None, key=message.key)
    record = store.get(KIND, message.key)
    assert record is not None
    store.put(KIND, message.key, {**record.doc, "status": "sending", "attempts": 1, "first_attempt_at": time.time()})
    report = deliver(slack_settings, store, "#soc-alerts")
    assert report.deduplicated == 1 and report.sent == 0
    assert _texts(workspace) == ["message 1"]
    assert get(store, message.key).status == "sent"  # type: ignore[union-attr]


def test_a_wrong_token_is_reported_without_the_token_and_the_messages_are_kept(
    slack_settings: Settings, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "xoxb-not-the-right-token-7f3a"
    settings = slack_settings.model_copy(update={"slack_bot_token": SecretStr(secret)})
    enqueue(store, _msg(1))
    with caplog.at_level(logging.DEBUG):
        report = deliver(settings, store, "#soc-alerts")
    assert report.errors == ["invalid_auth"]
    assert [m.status for m in listing(store)] == ["pending"]
    assert "invalid_auth" in caplog.text and secret not in caplog.text
    assert all(secret not in str(r.doc) for kind in ("outbox", "notify_channels") for r in store.find(kind))
