"""The shipped soar rules (``rules/**/*.soar.yml``) on their fixtures: timelines of real shipper documents, run
through the scheduler's cycles on Elasticsearch and on the embedded store; each must give exactly its alerts."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from elasticsearch import Elasticsearch

from soar.config import load_settings
from soar.detection._provenance import invented_fields, leaves
from soar.detection.elastic import create_events_index
from soar.detection.embedded import EventStore
from soar.scheduler import baselines
from soar.scheduler.baseline_fixtures import offset, timeline
from soar.scheduler.cycle import Detector
from soar.scheduler.loading import load_scheduled_rules
from soar.scheduler.runtime import reset
from soar.scheduler.sources import EmbeddedSource
from soar.store.sqlite import SQLiteStore
from tests.integration.scheduler.conftest import index_events

REPO = Path(__file__).resolve().parents[3]
FIXTURES = sorted((REPO / "rules").rglob("*.soar.tests.yml"))


def _get(doc: Mapping[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(doc, Mapping) or part not in doc:
            return None
        doc = doc[part]
    return doc


def _cases() -> Iterator[Any]:
    for path in FIXTURES:
        for n, case in enumerate(yaml.safe_load(path.read_text())["cases"]):
            yield pytest.param(path, case, id=f"{path.name.removesuffix('.soar.tests.yml')}[{n}]")


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name)
def test_fixture_events_are_real_shipper_documents(path: Path) -> None:
    """Each event is its corpus document with only the fields named in ``changed`` edited and ``added_by_agent``
    added; no field the source does not declare."""
    for case in yaml.safe_load(path.read_text())["cases"]:
        for item in case["events"]:
            prov = item["provenance"]
            original = json.loads((REPO / prov["corpus"]).read_text())["document"]
            allowed = set(prov.get("changed", [])) | set(prov.get("added_by_agent", []))
            event = item["event"]
            for name in leaves(event):
                if name not in allowed:
                    assert _get(event, name) == _get(original, name), f"{path.name}: {name} differs from the corpus"
            for name in leaves(original):
                assert name in allowed or _get(event, name) == _get(original, name), f"{path.name}: {name} dropped"
            assert not invented_fields(event, prov["source"]), f"{path.name}: invented fields"


@pytest.mark.parametrize(("path", "case"), list(_cases()))
def test_shipped_soar_rule_gives_exactly_its_alerts_on_both_engines(
    path: Path, case: Mapping[str, Any], es: Elasticsearch, es_index: str, tmp_path: Path
) -> None:
    content = tmp_path / "content"
    shutil.copytree(REPO / "rules", content / "rules")
    if case.get("inventory"):
        hosts = "".join(f"  {h}: {{address: 10.0.0.{n + 1}}}\n" for n, h in enumerate(case["inventory"]))
        (content / "inventory.yml").write_text("hosts:\n" + hosts, encoding="utf-8")
    create_events_index(es, es_index)
    reset()
    settings = load_settings(
        content_root=content,
        state_dir=content / "state",
        events_index=es_index,
        celery_eager=True,
        detection_ingest_delay=0.0,
    )
    rule_file = path.with_name(path.name.replace(".soar.tests.yml", ".soar.yml"))
    rule_id = yaml.safe_load(rule_file.read_text())["id"]
    rules, errors = load_scheduled_rules(settings)
    assert not errors, [str(e) for e in errors]
    rules = [r for r in rules if r.id == rule_id]
    assert rules and rules[0].baseline is not None
    end = (time.time() // 3600) * 3600  # the last full hour: buckets of every size align on it
    events = timeline(case, end)
    index_events(es, es_index, [(str(i), e) for i, e in enumerate(events)])
    embedded = EventStore(tmp_path / "events.sqlite3")
    embedded.insert(events)
    interval = rules[0].interval
    ticks = [
        end + offset(str(case["from"])) + n * interval for n in range(int(-offset(str(case["from"])) // interval) + 2)
    ]
    expected = sorted(json.dumps(a, sort_keys=True) for a in case["alerts"])
    for name, source in (("elasticsearch", es), ("embedded", EmbeddedSource(embedded, {}))):
        store = SQLiteStore(tmp_path / f"{name}.sqlite3")
        for host in case.get("isolated", []):
            store.put("containments", host, {"state": "in_force", "action": "hosts.isolate_host", "host": host})
        baselines.forget_process_state()
        detector = Detector(settings, store, source, lambda _id: None)
        for tick in ticks:
            report = detector.run(rules, tick)
            assert report.runs[rule_id].error is None, (name, report.runs[rule_id].error)
        found = sorted(json.dumps(r.doc["group"]["key"], sort_keys=True) for r in store.find("alerts", limit=1000))
        assert found == expected, (name, case["name"])
        store.close()
    embedded.close()
    reset()
