"""The Prometheus endpoint: cycle and per-rule durations, hits, alerts, errors, gap seconds, latency."""

from __future__ import annotations

import socket
import time
import urllib.request
from collections.abc import Callable

from elasticsearch import Elasticsearch
from prometheus_client.parser import text_string_to_metric_families

from soar import metrics_prom
from soar.config import Settings
from soar.scheduler.cycle import Detector
from soar.scheduler.loading import load_scheduled_rules
from soar.scheduler.rules import ScheduledRule
from soar.store.sqlite import SQLiteStore
from tests.integration.scheduler.conftest import event, index_events


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
    assert delta("soar_detection_gap_seconds_total", rule=rule_id) > 500
    assert delta("soar_detection_cycle_seconds_count") == 2
    assert delta("soar_detection_rule_seconds_count", rule=rule_id) == 2
    assert delta("soar_detection_event_to_alert_seconds_count") == 2
    assert delta("soar_detection_event_to_alert_seconds_sum") >= 7  # events 3-4 s old when alerted
