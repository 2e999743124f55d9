"""Correlation rules run in the same cycle and alert once per burst, however often their window is searched."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path

from elasticsearch import Elasticsearch

from soar.config import Settings
from soar.scheduler.cycle import Detector
from soar.scheduler.loading import load_scheduled_rules
from soar.store.sqlite import SQLiteStore
from tests.integration.scheduler.conftest import event, index_events

CORRELATION = """\
title: Burst of marker processes on one host
id: {id}
status: test
level: critical
correlation:
  type: event_count
  rules: [{base}]
  group-by: [host.name]
  timespan: 1m
  condition: {{gte: 3}}
soar:
  interval: 1s
  lookback: 30s
"""


def test_correlation_alerts_once_per_group_and_burst(
    es: Elasticsearch,
    events_index: str,
    det_settings: Settings,
    store: SQLiteStore,
    content: Path,
    write_rule: Callable[..., str],
) -> None:
    base = write_rule("base", interval="1s")
    corr_id = str(uuid.uuid4())
    (content / "rules" / "burst.yml").write_text(CORRELATION.format(id=corr_id, base=base), encoding="utf-8")
    rules, errors = load_scheduled_rules(det_settings)
    assert not errors, [str(e) for e in errors]
    by_id = {r.id: r for r in rules}
    assert by_id[corr_id].correlation is not None
    assert by_id[base].enabled is False  # generate: false (the default) keeps the base rule quiet

    now = time.time()
    docs = [(f"w{i}", event(i, now - 20 + i, host="web-01")) for i in range(4)]
    docs += [(f"d{i}", event(10 + i, now - 20 + i, host="db-01")) for i in range(2)]
    index_events(es, events_index, docs)
    detector = Detector(det_settings, store, es, lambda _id: None)
    report = detector.run(rules, now)
    run = report.runs[corr_id]
    assert run.error is None and run.hits >= 4 and run.alerts == 1  # the engine may prefilter groups below 3
    alert = store.find("alerts")[0].doc
    assert alert["rule"]["id"] == corr_id and alert["severity"] == "critical"
    assert alert["group"]["key"] == {"host.name": "web-01"} and alert["host"] == {"name": "web-01"}
    assert sorted(alert["event_ids"]) == ["w0", "w1", "w2", "w3"]  # the burst, not the other host
    # Searched again with an overlapping window that starts later: the same burst is not raised twice.
    again = detector.run(rules, now + 2)
    assert again.runs[corr_id].alerts == 0 and store.count("alerts") == 1


def test_a_correlation_over_no_index_fails_alone(
    es: Elasticsearch,
    events_index: str,
    det_settings: Settings,
    store: SQLiteStore,
    content: Path,
    write_rule: Callable[..., str],
) -> None:
    base = write_rule("base", interval="1s", index=f"{events_index}-nothing-*")
    plain = write_rule("plain", interval="1s")
    corr_id = str(uuid.uuid4())
    text = CORRELATION.format(id=corr_id, base=base).replace(
        "  lookback: 30s\n", f"  lookback: 30s\n  index: {events_index}-nothing-*\n"
    )
    (content / "rules" / "burst.yml").write_text(text, encoding="utf-8")
    rules, errors = load_scheduled_rules(det_settings)
    assert not errors
    now = time.time()
    index_events(es, events_index, [("p1", event(1, now - 2))])
    report = Detector(det_settings, store, es, lambda _id: None).run(rules, now)
    assert report.runs[plain].alerts == 1 and report.runs[plain].error is None
    assert report.runs[corr_id].alerts == 0  # nothing to correlate; an error, if any, stays with this rule
