"""The same cycle with the production store (Elasticsearch indices) instead of SQLite."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator

import pytest
from elasticsearch import Elasticsearch

from soar.config import Settings
from soar.scheduler.alerting import alert_id_for_event
from soar.scheduler.cycle import Detector
from soar.scheduler.loading import load_scheduled_rules
from soar.scheduler.state import CHECKPOINTS, GAPS
from soar.store.elastic import ElasticsearchStore
from tests.integration.scheduler.conftest import event, index_events


@pytest.fixture
def es_store(es: Elasticsearch) -> Iterator[ElasticsearchStore]:
    prefix = f"soar-test-{uuid.uuid4().hex[:10]}"
    yield ElasticsearchStore(es, prefix)
    es.options(ignore_status=404).indices.delete(index=f"{prefix}-state-*")
    es.options(ignore_status=404).indices.delete_index_template(name=f"{prefix}-state")


def test_cycle_and_gap_on_the_elasticsearch_store(
    es: Elasticsearch,
    events_index: str,
    det_settings: Settings,
    es_store: ElasticsearchStore,
    write_rule: Callable[..., str],
) -> None:
    rule_id = write_rule(interval="1s", lookback="2s")
    rules, _ = load_scheduled_rules(det_settings)
    t0 = time.time() - 300
    detector = Detector(det_settings, es_store, es, lambda _id: None)
    detector.run(rules, t0)
    index_events(es, events_index, [(f"e{i}", event(i, t0 + 20 * i)) for i in range(1, 10)])
    report = detector.run(rules, t0 + 300)
    assert report.runs[rule_id].gap is not None
    alerts = es_store.find("alerts", limit=100)
    assert sorted(a.id for a in alerts) == sorted(
        alert_id_for_event(rule_id, events_index, f"e{i}") for i in range(1, 10)
    )
    assert [g.doc["status"] for g in es_store.find(GAPS)] == ["filled"]
    ck = es_store.get(CHECKPOINTS, rule_id)
    assert ck is not None and ck.doc["runs_total"] == 2 and ck.doc["alerts_total"] == 9
    again = detector.run(rules, t0 + 301)
    assert again.created == [] and es_store.count("alerts") == 9


def test_suppressed_count_past_the_ids_kept_on_the_elasticsearch_store(
    es: Elasticsearch,
    events_index: str,
    det_settings: Settings,
    es_store: ElasticsearchStore,
    write_rule: Callable[..., str],
) -> None:
    rule_id = write_rule(interval="1s", lookback="5m", suppress={"by": ["host.name"], "window": "1h"})
    rules, _ = load_scheduled_rules(det_settings)
    now = (time.time() // 3600) * 3600 - 1800  # the middle of the last hour: one suppression window
    index_events(es, events_index, [(f"a{i}", event(i, now - 100 + i * 0.05)) for i in range(1200)])
    detector = Detector(det_settings, es_store, es, lambda _id: None)
    detector.run(rules, now - 50)  # 1000 events
    detector.run(rules, now)  # all 1200, overlapping
    detector.run(rules, now + 1)  # all again: nothing new
    [alert] = [r.doc for r in es_store.find("alerts", {"rule.id": rule_id})]
    assert alert["suppressed_count"] + 1 == 1200 and alert["suppressed_overflow"] == 200
