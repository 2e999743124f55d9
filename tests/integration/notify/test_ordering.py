"""Card updates never go backwards: whatever order workers enqueue them in, Slack ends on the newest card."""

from __future__ import annotations

import copy
import threading
import uuid
from typing import Any

from soar.config import Settings
from soar.notify import deliver, notify_run_event
from soar.notify.incidents import THREADS_KIND, apply_event, enqueue_card_update, open_thread
from soar.notify.outbox import listing
from soar.playbooks.events import make_event
from soar.store import Store, open_store
from tests.integration.notify.standin import Workspace


def _run() -> dict[str, Any]:
    alert = {"id": uuid.uuid4().hex, "rule": {"id": "r", "title": "Odd sudo", "level": "high"}}
    return {"id": f"run-{uuid.uuid4().hex[:8]}", "playbook": {"name": "p"}, "status": "running", "alert": alert}


def _step(run: dict[str, Any], n: int) -> dict[str, Any]:
    return make_event("step_finished", run, step={"id": f"step{n:02d}", "uses": "x.y", "status": "succeeded"})


def _versions(workspace: Workspace) -> list[dict[str, Any]]:
    """Every version of the one card Slack showed, oldest first (the post, then each chat.update)."""
    (card,) = workspace.top_level()
    return [*card["edits"], card]


def _steps_shown(version: dict[str, Any]) -> int:
    return str(version["blocks"]).count("`step")


def test_updates_enqueued_out_of_order_end_on_the_newest_and_a_late_one_is_never_sent(
    slack_settings: Settings, store: Store, workspace: Workspace
) -> None:
    run = _run()
    thread = open_thread(slack_settings, store, run["alert"])
    assert deliver(slack_settings, store, "#soc-alerts").sent == 1  # the card
    snapshots = []
    for n in range(1, 5):
        thread = apply_event(copy.deepcopy(thread), _step(run, n))
        thread.revision = n
        snapshots.append(copy.deepcopy(thread))
    for n in (4, 2, 1):  # workers raced: the newest was enqueued first, the oldest last
        enqueue_card_update(store, snapshots[n - 1])
    report = deliver(slack_settings, store, "#soc-alerts")
    assert report.sent == 1 and report.superseded == 2  # only the highest revision went
    assert [_steps_shown(v) for v in _versions(workspace)] == [0, 4]

    # a worker that was slower still: revision 3 after 4 was shown
    enqueue_card_update(store, snapshots[2])
    report = deliver(slack_settings, store, "#soc-alerts")
    assert report.sent == 0 and report.superseded == 1
    assert len(workspace.calls("chat.update")) == 1  # never sent
    newer = apply_event(copy.deepcopy(snapshots[3]), _step(run, 5))
    newer.revision = 5
    enqueue_card_update(store, newer)
    assert deliver(slack_settings, store, "#soc-alerts").sent == 1
    assert [_steps_shown(v) for v in _versions(workspace)] == [0, 4, 5]


def test_two_threads_publishing_at_once_never_show_an_older_card_after_a_newer_one(
    slack_settings: Settings, store: Store, workspace: Workspace
) -> None:
    run = _run()
    events = [_step(run, n) for n in range(1, 13)]
    errors: list[BaseException] = []

    def publish(mine: list[dict[str, Any]]) -> None:
        own = open_store(slack_settings)  # a worker of its own: its own store connection, same database
        try:
            for event in mine:
                notify_run_event(slack_settings, own, event)
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        finally:
            own.close()

    workers = [threading.Thread(target=publish, args=(events[i::2],)) for i in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert not errors, errors
    deliver(slack_settings, store, "#soc-alerts")  # whatever a busy channel left for its next wake-up
    shown = [_steps_shown(v) for v in _versions(workspace)]
    assert shown == sorted(set(shown)), f"an older card was shown after a newer one: {shown}"
    (thread,) = [r.doc for r in store.find(THREADS_KIND)]
    assert thread["revision"] == 12 and shown[-1] == 12  # Slack ends on the newest card
    assert {m.status for m in listing(store)} <= {"sent", "superseded"}
