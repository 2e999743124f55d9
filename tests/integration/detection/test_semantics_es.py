"""Sigma semantics on real Elasticsearch with soar's index template, and the embedded engine agrees."""

from __future__ import annotations

from pathlib import Path

from elasticsearch import Elasticsearch

from soar.detection import compile_rule, load_rules
from soar.detection.elastic import bulk_index, create_events_index, search_rules
from soar.detection.embedded import EventStore
from tests.unit.detection.helpers import write
from tests.unit.detection.semantics import CASES


def test_every_semantics_case_matches_the_same_events_on_both_engines(
    es: Elasticsearch, es_index: str, tmp_path: Path
) -> None:
    create_events_index(es, es_index)
    docs = [(f"c{n}-{i}", event) for n, case in enumerate(CASES) for i, event in enumerate(case.events)]
    bulk_index(es, es_index, docs)
    compiled_es = []
    filters = {}
    for n, case in enumerate(CASES):
        ruleset = load_rules([write(tmp_path / f"case{n}.yml", case.rule())])
        ruleset.raise_first()
        compiled = compile_rule(ruleset.rules[0], target="elasticsearch")
        compiled_es.append(compiled)
        filters[compiled.rule_id] = [{"ids": {"values": [f"c{n}-{i}" for i in range(len(case.events))]}}]
    hits = search_rules(es, es_index, compiled_es, size=100, filters=filters, source=False)
    disagreements = []
    for n, (case, compiled) in enumerate(zip(CASES, compiled_es, strict=True)):
        on_es = sorted(int(h["_id"].split("-")[1]) for h in hits[compiled.rule_id])
        embedded_rule = compile_rule(load_rules([tmp_path / f"case{n}.yml"]).rules[0], target="embedded")
        with EventStore() as store:
            store.insert(case.events)
            on_embedded = store.search(embedded_rule)
        if not (on_es == on_embedded == case.expected):
            disagreements.append(f"{case.name}: es={on_es} embedded={on_embedded} expected={case.expected}")
    assert disagreements == []
