"""Slack's 3-second rule: `soar api` acknowledges a click before any of the work, which a worker does later.

No worker consumes the API's Redis db while the click is answered, so the answer cannot have
waited for the decision; then a worker starts and does it. (How fast the answer is: bench_slack.)
"""

from __future__ import annotations

from pathlib import Path

import redis as redis_lib

from soar.notify.interactions import INTERACTIONS_KIND
from tests.integration.notify.apiserver import api_env, eventually, open_test_store, payload, post, serve_api
from tests.integration.notify.content import write_content
from tests.integration.notify.standin import Workspace
from tests.workers import flush_db, redis_url_for_db, running_worker

DB = 12


def test_a_click_is_acknowledged_before_the_work_which_a_worker_does_afterwards(
    tmp_path: Path, standin: None, redis: object
) -> None:
    root = write_content(tmp_path / "content")
    workspace = Workspace(["soc-alerts"])
    env = api_env(root, workspace, eager=False, redis_url=redis_url_for_db(DB))
    flush_db(DB)
    try:
        with serve_api(root, workspace, env) as api:
            store = open_test_store(api)
            click = payload("run-<!here>-gone", "contain", "UALICE", channel=workspace.channels["soc-alerts"])
            resp, _ = post(api, click)
            assert resp.status_code == 200
            (received,) = store.find(INTERACTIONS_KIND)
            assert received.doc["status"] == "received" and received.doc["user_id"] == "UALICE"
            queued = redis_lib.Redis.from_url(redis_url_for_db(DB)).llen(api.settings.response_queue)
            assert queued == 1, "the work waits for a worker as a task"
            assert workspace.state()["ephemerals"] == []

            with running_worker(DB, env, concurrency=1, log_path=root / "worker.log"):
                done = eventually(lambda: store.get(INTERACTIONS_KIND, received.id).doc["status"] != "received", 30)  # type: ignore[union-attr]
                assert done, "the worker handled the click"
                handled = store.get(INTERACTIONS_KIND, received.id)
                assert handled is not None and handled.doc["status"] == "refused"
                told = eventually(lambda: [e for e in workspace.state()["ephemerals"] if e["user"] == "UALICE"], 30)
                assert told, "the clicker is told why nothing was decided"
                shown = [told[0]["text"], str(told[0]["blocks"])]  # the run id came from the click: escaped
                assert all("run-&lt;!here&gt;-gone" in t and "<!here>" not in t for t in shown), told
            store.close()
    finally:
        flush_db(DB)
