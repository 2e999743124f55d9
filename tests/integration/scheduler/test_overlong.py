"""Values longer than a keyword field's ``ignore_above`` are judged with Sigma's meaning on both paths.

On an index with the official ECS mappings Elasticsearch indexes no ``process.args`` element longer than
1,024 characters: padded past it, an argument escapes ``|endswith`` and makes ``not |endswith`` match.
The scheduler judges such documents (found through ``_ignored``) in process (soar.scheduler.overlong), so
the alerts are those the oracle — Sigma's meaning, written from the specification — gives.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import Elasticsearch

from soar.config import Settings
from soar.detection.oracle import matches as oracle_matches
from soar.scheduler import fetch
from soar.scheduler.alerting import alert_id_for_event
from soar.scheduler.cycle import Detector
from soar.scheduler.loading import load_scheduled_rules
from soar.scheduler.planning import iso
from soar.store.sqlite import SQLiteStore
from tests.integration.scheduler.conftest import index_events

RULE = """\
title: {title}
id: {rule_id}
status: test
level: high
logsource: {{product: linux, category: process_creation}}
detection:
{detection}
falsepositives: [none]
"""

ENDS_EVIL = "  sel: {process.args|endswith: evil}\n  condition: sel"
BASH_NOT_EVIL = "  sel: {process.name: bash}\n  filter: {process.args|endswith: evil}\n  condition: sel and not filter"
DETECTIONS = {
    "11111111-1111-4111-8111-111111111111": ENDS_EVIL,
    "22222222-2222-4222-8222-222222222222": BASH_NOT_EVIL,
}
PAD = "a" * 1100


def _event(ts: float, name: str, args: list[str], user: str = "alice") -> dict[str, Any]:
    return {
        "@timestamp": iso(ts),
        "event": {"category": ["process"], "type": ["start"]},
        "process": {"name": name, "args": args, "executable": f"/usr/bin/{name}"},
        "host": {"name": "web-01"},
        "user": {"name": user},
    }


@pytest.fixture(autouse=True)
def _fresh_memo() -> Any:
    fetch.reset()
    yield
    fetch.reset()


def test_padded_values_are_judged_as_sigma_means_on_the_search_and_the_fetch_path(
    es: Elasticsearch, events_index: str, det_settings: Settings, content: Path
) -> None:
    shutil.rmtree(content / "rules")
    (content / "rules").mkdir()
    for n, (rule_id, detection) in enumerate(DETECTIONS.items()):
        text = RULE.format(title=f"overlong {n}", rule_id=rule_id, detection=detection)
        (content / "rules" / f"r{n}.yml").write_text(text, encoding="utf-8")
    rules, errors = load_scheduled_rules(det_settings)
    assert len(rules) == 2 and not errors, [str(e) for e in errors]
    now = time.time()
    docs = {
        "padded-evil": _event(now - 10, "bash", ["bash", "-c", PAD + "evil"]),
        "short-evil": _event(now - 9, "sh", ["sh", "-c", "run evil"]),
        "padded-good": _event(now - 8, "bash", ["bash", "-c", PAD + "good"]),
        "short-good": _event(now - 7, "bash", ["bash", "-c", "good"]),
        "padded-user": _event(now - 6, "bash", ["bash", "evil"], user="x" * 1100),  # _ignored, on another field
    }
    index_events(es, events_index, list(docs.items()))
    ignored = es.search(index=events_index, query={"exists": {"field": "_ignored"}}, source=False)
    assert {h["_id"] for h in ignored["hits"]["hits"]} == {"padded-evil", "padded-good", "padded-user"}

    expected = {
        rule_id: {
            alert_id_for_event(rule_id, events_index, doc_id)
            for doc_id, doc in docs.items()
            if oracle_matches(_sigma(detection), doc)
        }
        for rule_id, detection in DETECTIONS.items()
    }
    # Sigma's meaning, independently: the padded argument ends with evil; a bash whose args do not is found
    assert {d for d, doc in docs.items() if oracle_matches(_sigma(ENDS_EVIL), doc)} == {
        "padded-evil",
        "short-evil",
        "padded-user",
    }
    assert {d for d, doc in docs.items() if oracle_matches(_sigma(BASH_NOT_EVIL), doc)} == {"padded-good", "short-good"}

    for path in ("search", "fetch"):
        store = SQLiteStore(content / "state" / f"{path}.sqlite3")
        try:
            detector = Detector(det_settings.model_copy(update={"detection_path": path}), store, es, lambda _id: None)
            report = detector.run(rules, now)
        finally:
            store.close()
        created = set(report.created)
        for rule_id in DETECTIONS:
            mine = {a for a in created if a in {alert_id_for_event(rule_id, events_index, d) for d in docs}}
            assert mine == expected[rule_id], (path, rule_id)
        if path == "search":
            assert report.requests.msearch == 1 and report.requests.search == 0  # the sweep rode in the _msearch


def _sigma(detection_yaml: str) -> dict[str, Any]:
    import textwrap

    import yaml

    parsed: dict[str, Any] = yaml.safe_load(textwrap.dedent(detection_yaml))
    return parsed


def test_on_the_arrival_clock_a_padded_event_stamped_long_ago_is_judged_when_it_arrives(
    es: Elasticsearch, events_index: str, det_settings: Settings, content: Path
) -> None:
    shutil.rmtree(content / "rules")
    (content / "rules").mkdir()
    rule_id = next(iter(DETECTIONS))
    (content / "rules" / "r.yml").write_text(
        RULE.format(title="overlong", rule_id=rule_id, detection=ENDS_EVIL), encoding="utf-8"
    )
    settings = det_settings.model_copy(update={"detection_time_field": "event.ingested"})
    rules, errors = load_scheduled_rules(settings)
    assert len(rules) == 1 and rules[0].time_field == "event.ingested" and not errors
    now = time.time()
    late = _event(now - 3600, "bash", ["bash", "-c", PAD + "evil"])  # stamped an hour ago (a shipper back online)
    late["event"]["ingested"] = iso(now - 5)  # and arrived now
    index_events(es, events_index, [("late-padded", late)])
    for path in ("search", "fetch"):
        store = SQLiteStore(content / "state" / f"{path}.sqlite3")
        try:
            detector = Detector(settings.model_copy(update={"detection_path": path}), store, es, lambda _id: None)
            report = detector.run(rules, now)
        finally:
            store.close()
        assert set(report.created) == {alert_id_for_event(rule_id, events_index, "late-padded")}, path
