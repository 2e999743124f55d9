"""A scheduler started while Elasticsearch is unreachable waits, says so once, and becomes ready by itself (#21).

Production shape: the Elasticsearch store (its index template is installed when the store opens, which
used to make ``soar scheduler`` exit with rc 2 before its loop). Elasticsearch is reached through a
loopback proxy that refuses connections until it is restored.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlparse

from elasticsearch import Elasticsearch

from soar.config import Settings
from soar.store.elastic import ElasticsearchStore
from tests.integration.scheduler.conftest import event, index_events, wait_for
from tests.integration.scheduler.proxy import CuttableProxy
from tests.integration.scheduler.test_kill import kill9
from tests.workers import REPO_ROOT

RULE = """\
title: Marker process started
id: {rule_id}
status: test
logsource: {{category: process_creation, product: linux}}
detection:
  sel: {{process.command_line|contains: {marker}}}
  condition: sel
level: high
soar: {{interval: 1s, lookback: 60s}}
"""


def check(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "soar", "services", "check", "--process", "scheduler", "--max-age", "10"],
        env=env,
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=60,
        check=False,
    )


def test_a_scheduler_started_during_an_outage_waits_and_becomes_ready(
    es: Elasticsearch, events_index: str, tmp_path: Path, service_settings: Settings
) -> None:
    target = urlparse(service_settings.elasticsearch_url)
    proxy = CuttableProxy(target.hostname or "127.0.0.1", target.port or 9200)  # not started: refuses
    marker = f"outage-start-{uuid.uuid4().hex[:8]}"
    (tmp_path / "rules").mkdir()
    rule_id = str(uuid.uuid4())
    (tmp_path / "rules" / "marker.yml").write_text(RULE.format(rule_id=rule_id, marker=marker), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOAR_")} | {
        "SOAR_CONTENT_ROOT": str(tmp_path),
        "SOAR_STATE_DIR": str(tmp_path / "state"),
        "SOAR_STORE": "elasticsearch",
        "SOAR_ELASTICSEARCH_URL": proxy.url,
        "SOAR_INDEX_PREFIX": f"soar-outage-{uuid.uuid4().hex[:6]}",
        "SOAR_EVENTS_INDEX": events_index,
        "SOAR_CELERY_EAGER": "true",
        "SOAR_DETECTION_INGEST_DELAY": "1",
    }
    log = tmp_path / "scheduler.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "soar", "scheduler", "--tick", "0.5"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO_ROOT,
            start_new_session=True,
        )
    try:
        assert wait_for(lambda: check(env).stderr.strip() != "" and "not ready" in check(env).stderr, 30), (
            log.read_text()[-2000:]
        )
        time.sleep(8)  # an outage of many ticks
        assert proc.poll() is None, "the scheduler exited during the outage:\n" + log.read_text()[-2000:]
        waiting = check(env)
        assert waiting.returncode == 1 and "alive, not ready" in waiting.stderr and "down for" in waiting.stderr
        text = log.read_text()
        assert text.count(" is down: ") == 1, text[-3000:]
        assert "Traceback" not in text and "tick failed" not in text

        index_events(es, events_index, [("e1", {**event(1, time.time() - 3, marker=marker)})])
        proxy.start()
        assert wait_for(lambda: check(env).returncode == 0, 60), log.read_text()[-3000:]
        assert "ready (pid" in check(env).stdout
        assert wait_for(lambda: "is back after" in log.read_text(), 10)
        store = ElasticsearchStore(es, env["SOAR_INDEX_PREFIX"])

        def status() -> str:
            out = subprocess.run(
                [sys.executable, "-m", "soar", "detect", "status"],
                env=env,
                capture_output=True,
                text=True,
                cwd=REPO_ROOT,
                timeout=60,
                check=False,
            )
            return out.stdout + out.stderr

        assert wait_for(lambda: store.count("alerts", {"rule.id": rule_id}) >= 1, 30), (
            "the event indexed during the outage was never alerted:\n" + log.read_text()[-2000:] + status()
        )

        def alerts_total() -> int:
            ck = store.get("checkpoints", rule_id)
            return int(ck.doc.get("alerts_total", 0)) if ck else -1

        assert wait_for(lambda: alerts_total() == 1, 10), alerts_total()  # counted, once
        time.sleep(2)  # more cycles over the same look-back: nothing new, nothing counted twice
        assert store.count("alerts", {"rule.id": rule_id}) == 1 and alerts_total() == 1
        assert store.count("gaps", {"status": "open"}) == 0
    finally:
        kill9(proc)
        proxy.close()
        es.options(ignore_status=404).indices.delete(index=f"{env['SOAR_INDEX_PREFIX']}-*")
