"""The Prometheus endpoint: cycle and per-rule durations, hits, alerts, errors, gap seconds, latency."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from elasticsearch import Elasticsearch
from prometheus_client.parser import text_string_to_metric_families

from soar import metrics_prom
from soar.config import Settings
from soar.scheduler.cycle import Detector
from soar.scheduler.loading import load_scheduled_rules
from soar.scheduler.loop import RUN_RULES
from soar.scheduler.rules import ScheduledRule
from soar.store.sqlite import SQLiteStore
from tests.integration.scheduler.conftest import event, index_events
from tests.integration.scheduler.test_kill import detection_env
from tests.workers import REPO_ROOT, flush_db, redis_url_for_db, running_worker


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_metrics_endpoint_reports_a_cycle(
    es: Elasticsearch, events_index: str, det_settings: Settings, store: SQLiteStore, write_rule: Callable[..., str]
) -> None:
    rule_id = write_rule(interval="1s")
    rules, _ = load_scheduled_rules(det_settings)
    broken = ScheduledRule(
        id=f"broken-{rule_id}", title="Broken", level="low", tags=(), index=events_index, interval=1, lookback=30,
        max_alerts=10, content_hash="h", source="t:1", query={"query_string": {"query": "a:(b"}},
    )  # fmt: skip
    before = samples(metrics_prom.exposition().decode())
    now = time.time()
    index_events(es, events_index, [("m1", event(1, now - 4)), ("m2", event(2, now - 3))])
    detector = Detector(det_settings, store, es, lambda _id: None)
    detector.run([*rules, broken], now)
    detector.run(rules, now + 600)  # late: a gap

    port = free_port()
    metrics_prom.serve(port)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        after = samples(resp.read().decode())

    def delta(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    # The late run's gap fill searched the same two events again: hits count searches, alerts stay once.
    assert delta("soar_detection_rule_hits_total", rule=rule_id) == 4
    assert delta("soar_detection_rule_alerts_total", rule=rule_id) == 2
    assert delta("soar_detection_rule_errors_total", rule=broken.id, kind="rejected") == 1
    # runs, alerts and errors count what the checkpoints were written with (#21): the two agree
    ck, bad = store.get("checkpoints", rule_id), store.get("checkpoints", broken.id)
    assert ck is not None and bad is not None
    assert delta("soar_detection_rule_runs_total", rule=rule_id) == ck.doc["runs_total"] == 2
    assert delta("soar_detection_rule_alerts_total", rule=rule_id) == ck.doc["alerts_total"]
    assert delta("soar_detection_rule_runs_total", rule=broken.id) == bad.doc["errors_total"] == 1
    assert delta("soar_detection_gap_seconds_total", rule=rule_id) > 500
    assert delta("soar_detection_cycle_seconds_count") == 2
    assert delta("soar_detection_rule_seconds_count", rule=rule_id) == 2
    assert delta("soar_detection_event_to_alert_seconds_count") == 2
    assert delta("soar_detection_event_to_alert_seconds_sum") >= 7  # events 3-4 s old when alerted


DB_METRICS = 4


def test_metrics_of_a_prefork_worker_sum_every_pool_process(
    es: Elasticsearch, events_index: str, content: Path, write_rule: Callable[..., str], tmp_path: Path
) -> None:
    from celery import Celery

    rules = [write_rule(f"r{i}", interval="1s", marker=f"pool-{i}") for i in range(6)]
    now = time.time()
    index_events(
        es, events_index, [(f"p{i}-{k}", event(k, now - 5, marker=f"pool-{i}")) for i in range(6) for k in range(i + 1)]
    )
    prom = tmp_path / "prom"
    env = detection_env(content, events_index, DB_METRICS) | {"PROMETHEUS_MULTIPROC_DIR": str(prom)}
    stale = "stale-" + rules[0]
    code = f"from soar import metrics_prom as m; m.RULE_HITS.labels({stale!r}).inc(1e6)"
    subprocess.run([sys.executable, "-c", code], env=os.environ | env, check=True, cwd=REPO_ROOT, timeout=60)
    assert list(prom.glob("counter_*.db"))  # what an earlier run left

    port = free_port()
    flush_db(DB_METRICS)
    client = Celery("client", broker=redis_url_for_db(DB_METRICS), backend=redis_url_for_db(DB_METRICS))
    try:
        args = ("--metrics-port", str(port))
        with running_worker(DB_METRICS, env, concurrency=2, log_path=tmp_path / "worker.log", extra_args=args):
            sent = [client.send_task(RUN_RULES, args=[[r]], queue="detection") for r in rules * 2]
            results = [s.get(timeout=120) for s in sent]
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
                text = resp.read().decode()
            pids = {f.stem.rsplit("_", 1)[1] for f in prom.glob("counter_*.db")}
    finally:
        client.close()
        flush_db(DB_METRICS)
    got = samples(text)

    def total(name: str) -> float:
        return sum(v for (n, labels), v in got.items() if n == name and dict(labels).get("rule") in rules)

    assert len(pids) == 2  # both pool processes ran tasks (the parent, which runs none, wrote nothing)
    assert not [k for k in got if ("rule", stale) in k[1]]  # the directory was emptied at start
    assert total("soar_detection_rule_hits_total") == sum(
        r["rules"][rid]["hits"] for r in results for rid in r["rules"]
    )
    assert total("soar_detection_rule_alerts_total") == sum(range(1, 7))  # each event alerted once, by one process
    assert got[("soar_detection_cycle_seconds_count", ())] == len(sent)


def test_a_prefork_metrics_endpoint_without_the_multiprocess_directory_is_refused() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOAR_") and k != "PROMETHEUS_MULTIPROC_DIR"}
    out = subprocess.run(
        [sys.executable, "-m", "soar", "worker", "-c", "2", "--metrics-port", str(free_port())],
        env=env | {"SOAR_REDIS_URL": redis_url_for_db(DB_METRICS)},
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=60,
    )
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert out.stderr.startswith("error: --metrics-port: a prefork pool of 2 processes needs PROMETHEUS_MULTIPROC_DIR")
