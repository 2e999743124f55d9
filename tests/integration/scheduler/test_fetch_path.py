"""The fetch path gives exactly the alerts the search path gives, on the same ECS-mapped index.

Each test runs the same rules over the same events twice, once per ``detection_path`` (each with its own
store), and compares the alerts created (their ids are fingerprints of rule and event, so equal ids are
equal alerts) and what the cycle reports. The events: every fixture event of the shipped rule pack (real
shipper documents) with copies whose values change case as real logs do, and the oracle generator's
events and rules (tests/unit/detection/oracle_gen.py), on an index with the official ECS mappings.
"""

from __future__ import annotations

import random
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import Elasticsearch

from soar.config import Settings
from soar.detection import load_fixtures, load_rules
from soar.detection._compile import Compiler
from soar.errors import ContentError
from soar.scheduler import fetch
from soar.scheduler.alerting import alert_id_for_event
from soar.scheduler.cycle import CycleReport, Detector
from soar.scheduler.loading import load_scheduled_rules
from soar.scheduler.planning import iso
from soar.scheduler.rules import ScheduledRule
from soar.store.sqlite import SQLiteStore
from tests.integration.scheduler.conftest import event, index_events
from tests.unit.detection import oracle_gen as gen

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(autouse=True)
def _fresh_memo() -> Iterator[None]:
    fetch.reset()
    yield
    fetch.reset()


def _both(
    settings: Settings, es: Elasticsearch, content: Path, rules: list[ScheduledRule], now: float, runs: int = 1
) -> dict[str, list[CycleReport]]:
    out: dict[str, list[CycleReport]] = {}
    for path in ("search", "fetch"):
        store = SQLiteStore(content / "state" / f"{path}.sqlite3")
        try:
            settings_path = settings.model_copy(update={"detection_path": path})
            detector = Detector(settings_path, store, es, lambda _id: None)
            out[path] = [detector.run(rules, now + n) for n in range(runs)]
            if path == "fetch":
                assert detector.fetch_stats.fallbacks == []
        finally:
            store.close()
    return out


def _created(reports: list[CycleReport]) -> list[set[str]]:
    return [set(r.created) for r in reports]


def _swap_case(value: Any) -> Any:
    if isinstance(value, str):
        return value.swapcase()
    if isinstance(value, list):
        return [_swap_case(v) for v in value]
    if isinstance(value, dict):
        return {k: v if k == "@timestamp" else _swap_case(v) for k, v in value.items()}
    return value


def test_the_rule_pack_on_real_documents_alerts_the_same_on_both_paths(
    es: Elasticsearch, events_index: str, det_settings: Settings, content: Path
) -> None:
    shutil.rmtree(content / "rules")
    shutil.copytree(REPO / "rules", content / "rules", ignore=shutil.ignore_patterns("*.tests.yml", "README.md"))
    rules, errors = load_scheduled_rules(det_settings)
    assert rules and not errors, [str(e) for e in errors]
    ruleset = load_rules([REPO / "rules"])
    events: list[dict[str, Any]] = []
    for rule in ruleset.rules:
        try:
            fixtures = load_fixtures(rule)
        except ContentError:
            continue
        for fixture in fixtures:
            events += fixture.events
    events += [_swap_case(e) for e in events]  # /USR/BIN/CURL, ROOT: case as real logs change it
    now = time.time()
    rng = random.Random(5)
    docs = []
    for n, ev in enumerate(events):
        ev = {**ev, "@timestamp": iso(now - 25 + rng.random() * 20)}
        docs.append((f"pack-{n}", ev))
    # A case-swapped copy can be refused by a typed field (a date, an ip in upper-case hex is fine, "TRUE" is
    # not a boolean): both paths read the same index, so those documents are simply not there.
    resp = es.bulk(
        operations=[x for doc_id, ev in docs for x in ({"index": {"_index": events_index, "_id": doc_id}}, ev)],
        refresh=True,
    )
    refused = [item["index"]["_id"] for item in resp["items"] if item["index"].get("error")]
    assert not [d for d in refused if int(d.split("-")[1]) < len(events) // 2], "an original fixture was refused"
    got = _both(det_settings, es, content, rules, now, runs=2)
    search, fetched = _created(got["search"]), _created(got["fetch"])
    assert len(search[0]) >= 50  # the pack's should_match documents do fire
    assert fetched == search and fetched[1] == set()  # the same alerts; the overlap creates none twice
    hits = {rid: run.hits for rid, run in got["search"][0].runs.items()}
    assert {rid: run.hits for rid, run in got["fetch"][0].runs.items()} == hits
    # The fetch path read the index once for every plain rule; correlations went to the search path.
    assert got["fetch"][0].requests.search == 1 and got["fetch"][0].requests.pit == 0


def test_generated_rules_match_the_same_events_on_both_paths(
    es: Elasticsearch, events_index: str, det_settings: Settings, content: Path, tmp_path: Path
) -> None:
    draw = gen.RandomDraw(3)
    events = [gen.event(draw) for _ in range(80)]
    generated = [gen.rule(draw, events) for _ in range(200)]
    compiler = Compiler("elasticsearch", [str(gen.pipeline_file(tmp_path))])
    rules = []
    for n, loaded in enumerate(gen.load_generated(tmp_path, generated)):
        if isinstance(loaded, ContentError):
            continue
        try:
            compiled = compiler.compile(loaded)
        except ContentError:
            continue
        rules.append(
            ScheduledRule(
                id=f"gen-{n}", title=f"generated {n}", level="low", tags=(), index=events_index, interval=1,
                lookback=30, max_alerts=1000, content_hash=f"{n}", source=f"gen:{n}",
                query=(compiled.dsl or {})["query"],
            )
        )  # fmt: skip
    assert len(rules) >= 120
    now = time.time()
    index_events(
        es, events_index, [(f"g{i}", {**e, "@timestamp": iso(now - 20 + i * 0.1)}) for i, e in enumerate(events)]
    )
    got = _both(det_settings, es, content, rules, now)
    search, fetched = got["search"][0], got["fetch"][0]
    assert {r: v.hits for r, v in fetched.runs.items()} == {r: v.hits for r, v in search.runs.items()}
    assert set(fetched.created) == set(search.created) and len(search.created) >= 200
    assert fetched.requests.msearch == 0  # every generated rule was evaluated in process


def test_windows_late_events_exceptions_caps_and_gaps_are_the_same_on_both_paths(
    es: Elasticsearch,
    events_index: str,
    det_settings: Settings,
    content: Path,
    write_rule: Callable[..., str],
) -> None:
    ids = [write_rule(name=f"m{n}", max_alerts=3 if n == 0 else 1000) for n in range(10)]
    rules, _ = load_scheduled_rules(det_settings)
    now = time.time()
    docs = [(f"e{i}", event(i, now - 20 + i, user="svc-backup" if i % 4 == 0 else "alice")) for i in range(12)]
    docs += [("old", event("old", now - 320))]  # outside the first window: found by the gap fill only
    index_events(es, events_index, docs)
    exception = {"status": "approved", "rule_id": ids[1], "field": "user.name", "values": ["SVC-*"]}
    paths = ("search", "fetch")
    stores = {p: SQLiteStore(content / "state" / f"{p}.sqlite3") for p in paths}
    detectors = {
        p: Detector(det_settings.model_copy(update={"detection_path": p}), stores[p], es, lambda _id: None)
        for p in paths
    }
    reports: dict[str, list[CycleReport]] = {p: [] for p in paths}

    def step(at: float) -> None:
        for p in paths:
            reports[p].append(detectors[p].run(rules, at))

    try:
        for p in paths:
            stores[p].create("exceptions", "x1", exception)
        step(now)
        # A late event (inside the look-back), then a cycle far behind (a gap, filled by the search path).
        index_events(es, events_index, [("late", event("late", now - 2))])
        step(now + 1)
        for p in paths:
            old = {rid: stores[p].get("checkpoints", rid) for rid in ids}
            stores[p].put_many(
                "checkpoints", {rid: {**rec.doc, "end": iso(now - 300)} for rid, rec in old.items() if rec}
            )
        step(now + 2)
    finally:
        for s in stores.values():
            s.close()
    results = {p: _created(reports[p]) for p in paths}
    hits = {p: [{r: v.hits for r, v in rep.runs.items()} for rep in reports[p]] for p in paths}
    assert reports["search"][0].runs[ids[0]].capped == 9  # 12 matches, cap 3
    assert reports["fetch"][0].requests.msearch == 0 and reports["fetch"][0].requests.search == 1
    assert reports["fetch"][2].requests.msearch == 1  # the gap chunks: searched
    assert results["fetch"] == results["search"]
    assert hits["fetch"] == hits["search"]
    assert len(results["search"][1]) >= 9  # the late event, once per rule (rule 0: its cap first)
    assert {i for i in results["search"][2]} >= {alert_id_for_event(rid, events_index, "old") for rid in ids[1:]}


def _arrived(n: str, stamped: float, ingested: float | None) -> tuple[str, dict[str, Any]]:
    doc = event(n, stamped)
    if ingested is not None:
        doc["event"] = {**doc["event"], "ingested": iso(ingested)}
    return n, doc


def test_an_event_arriving_later_than_the_look_back_is_alerted_once_on_the_arrival_clock(
    es: Elasticsearch, events_index: str, det_settings: Settings, content: Path, write_rule: Callable[..., str]
) -> None:
    """A rule with ``soar.time_field: event.ingested`` windows events by their arrival: one stamped ten minutes ago
    that arrives now is alerted, once, on both paths; a rule on event time (the same query) does not see it."""
    arrival = write_rule("arrival", interval="1s", lookback="5s", time_field="event.ingested")
    stamped = write_rule("stamped", interval="1s", lookback="5s")
    now = time.time()
    docs = [
        _arrived("fresh", now - 3, now - 2.5),
        _arrived("late", now - 600, now - 2),  # a shipper that was offline: stamped long ago, arriving now
        _arrived("unstamped", now - 3, None),  # no event.ingested: its @timestamp stands in
        _arrived("long-gone", now - 600, now - 590),  # arrived long ago: in neither window
    ]
    index_events(es, events_index, docs)
    rules, errors = load_scheduled_rules(det_settings)
    assert not errors and {r.id: r.time_field for r in rules} == {arrival: "event.ingested", stamped: "@timestamp"}
    got = _both(det_settings, es, content, rules, now, runs=3)
    search, fetched = _created(got["search"]), _created(got["fetch"])
    assert fetched == search  # the same alerts, cycle by cycle; the overlapping cycles create none twice
    assert search[1] == search[2] == set()
    expected = {alert_id_for_event(arrival, events_index, n) for n in ("fresh", "late", "unstamped")}
    expected |= {alert_id_for_event(stamped, events_index, n) for n in ("fresh", "unstamped")}
    assert search[0] == expected


def test_a_gap_on_the_arrival_clock_is_filled_with_what_arrived_meanwhile(
    es: Elasticsearch, events_index: str, det_settings: Settings, content: Path, write_rule: Callable[..., str]
) -> None:
    """An outage on the arrival clock: events that arrived during it (stamped whenever) are alerted once it is
    filled, on both paths (the gap chunks are searched; the windows are the rule's clock)."""
    rule_id = write_rule(interval="1s", lookback="5s", time_field="event.ingested")
    now = time.time()
    docs = [_arrived(f"g{i}", now - 3000 - 60 * i, now - 590 + 30 * i) for i in range(15)]  # stamped long before
    index_events(es, events_index, docs)
    rules, _ = load_scheduled_rules(det_settings)
    out: dict[str, set[str]] = {}
    for path in ("search", "fetch"):
        store = SQLiteStore(content / "state" / f"gap-{path}.sqlite3")
        try:
            detector = Detector(det_settings.model_copy(update={"detection_path": path}), store, es, lambda _id: None)
            detector.run(rules, now - 600)  # the last cycle before the outage
            report = detector.run(rules, now)
            assert report.runs[rule_id].gap is not None
            out[path] = {a.id for a in store.find("alerts", limit=100)}
            assert [g.doc["status"] for g in store.find("gaps")] == ["filled"]
        finally:
            store.close()
    assert out["search"] == out["fetch"] == {alert_id_for_event(rule_id, events_index, f"g{i}") for i in range(15)}
