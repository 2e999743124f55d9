"""Worker mode: a message whose retry was lost (the worker holding its ETA task restarted) is still sent.

The outbox is in the store; `soar scheduler` sweeps it and hands overdue channels to a real
worker, which delivers through the real slack-sdk to the stand-in — once, and not before a
message's own next attempt.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

from soar.config import load_settings
from soar.notify.outbox import Message, enqueue, get
from soar.notify.service import SWEEP_GRACE
from soar.store import open_store
from tests.conftest import env_without_soar
from tests.integration.notify.apiserver import api_env, eventually
from tests.integration.notify.content import write_content
from tests.integration.notify.standin import Workspace
from tests.workers import flush_db, kill_group, redis_url_for_db, running_worker

DB = 11


def _message(title: str, next_attempt_at: float) -> Message:
    return Message(
        key=f"card:sweep-{uuid.uuid4().hex}",
        op="post",
        kind="card",
        channel="#soc-alerts",
        text=title,
        attempts=1,
        last_error="worker restarted",
        next_attempt_at=next_attempt_at,
    )


def test_the_scheduler_sends_what_a_lost_retry_left_waiting(tmp_path: Path, standin: None, redis: object) -> None:
    workspace = Workspace(["soc-alerts"])
    soar_env = api_env(write_content(tmp_path / "content"), workspace, eager=False, redis_url=redis_url_for_db(DB))
    settings = load_settings(**{k.removeprefix("SOAR_").lower(): v for k, v in soar_env.items()})
    store = open_store(settings)
    now = time.time()
    overdue = _message("Lost retry", now - SWEEP_GRACE - 60)
    later = _message("Not yet", now + 3600)  # backing off for an hour: the sweep must leave it alone
    assert enqueue(store, overdue) and enqueue(store, later)

    flush_db(DB)
    log = (tmp_path / "scheduler.log").open("ab")
    with running_worker(DB, soar_env, concurrency=1, log_path=tmp_path / "worker.log"):
        scheduler = subprocess.Popen(
            [sys.executable, "-m", "soar", "scheduler", "--tick", "0.5"],
            env={**env_without_soar(), **soar_env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            sent = eventually(lambda: (m := get(store, overdue.key)) is not None and m.status == "sent", 60)
            assert sent, (tmp_path / "scheduler.log").read_text()[-2000:]
        finally:
            kill_group(scheduler)
            log.close()
    flush_db(DB)

    texts = [m["text"] for m in workspace.top_level()]
    assert texts.count("Lost retry") == 1, texts
    assert "Not yet" not in texts
    pending = get(store, later.key)
    assert pending is not None and pending.status == "pending"
