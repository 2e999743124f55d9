"""On the real Elasticsearch: merged alternatives match exactly what one clause per value matched.

The compiler searches the values of one ``OR`` on a keyword field together (one ``terms``, one ``regexp``
with ``[aA]`` classes per shape). These tests index awkward values (mixed case, regexp operators, non-ASCII
letters a regexp's own ``case_insensitive`` would fold) and compare the hits of both forms, and of the
embedded engine for the same Sigma rule.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import Elasticsearch
from sigma.types import SigmaString

from soar.detection import _dsl, compile_rule, load_rules
from soar.detection._dsl import merge_alternatives, string_clause
from soar.detection.elastic import bulk_index, create_events_index
from soar.detection.embedded import EventStore
from tests.unit.detection.helpers import process_event, rule_yaml, write

VALUES = [
    "a+b", "A+B", "aab", "x.y", "X.Y", "xzy", "[x]", "[X]", "x", "@a", "#b", "~c", "<d>", '"e"', "A&B",
    "a\\b", "a b", "Mixed Case", "mixed case", "MIXED CASEs", "k", "K", "\u212a", "s", "S", "\u017f", "É", "é",
    "/usr/bin/Sudo", "/usr/bin/sudo", "/tmp/evil.SH", "/tmp/evil.sh~", "1", "12", "/1/", "@", "#", "~", "<", '"',
]  # fmt: skip
PATTERNS = [
    *VALUES[:22],
    "k", "s", "é", "/usr/bin/sudo", "@", "#", "~", "<", '"', "/1/", "12",
    "a+*", "X.*", "[x*", "*Sudo", "*.sh", "*.SH~", "*s", "*k", "*B*", "*+*", "*case*", "*e\"*", "*<d*",
    "/usr/*", "/TMP/*", "*/1/*", "1*",
]  # fmt: skip
FIELDS = ("process.executable", "process.name", "user.name", "file.path")  # keyword in ECS


@pytest.fixture
def indexed(es: Elasticsearch, es_index: str) -> Iterator[str]:
    create_events_index(es, es_index)
    docs = [(str(i), {field: value for field in FIELDS}) for i, value in enumerate(VALUES)]
    bulk_index(es, es_index, docs)
    yield es_index


def hits(es: Elasticsearch, index: str, query: dict[str, Any]) -> list[str]:
    found = es.search(index=index, query=query, size=len(VALUES) + 1, source=False)["hits"]["hits"]
    return sorted(VALUES[int(h["_id"])] for h in found)


def _kinds(clauses: list[dict[str, Any]]) -> set[str]:
    return {next(iter(c)) for c in clauses}


@pytest.mark.parametrize("field", FIELDS)
def test_merged_alternatives_match_what_one_clause_per_value_matched(
    es: Elasticsearch, indexed: str, field: str
) -> None:
    groups = {
        "exact": [p for p in PATTERNS if "*" not in p],
        "prefix": [p for p in PATTERNS if p.endswith("*") and "*" not in p[:-1]],
        "suffix": [p for p in PATTERNS if p.startswith("*") and "*" not in p[1:]],
        "contains": [p for p in PATTERNS if len(p) > 2 and p[0] == p[-1] == "*" and "*" not in p[1:-1]],
        "all": PATTERNS,
    }
    for name, patterns in groups.items():
        per_value = [string_clause(field, SigmaString(p), True) for p in patterns]
        merged = merge_alternatives(per_value)
        assert "regexp" in _kinds(merged), name  # the new form is what is tested
        if name in ("exact", "all"):
            assert "terms" in _kinds(merged), name  # values without letters
        old = hits(es, indexed, {"bool": {"should": per_value}})
        new = hits(es, indexed, {"bool": {"should": merged}})
        assert new == old, name
        assert old  # the values do match something
        for value in patterns:  # and each value on its own: the same documents as its own clause
            alone = [string_clause(field, SigmaString(value), True)]
            assert hits(es, indexed, {"bool": {"should": merge_alternatives(alone + alone)}}) == hits(
                es, indexed, {"bool": {"should": alone}}
            ), value


def test_a_rule_with_value_lists_matches_the_same_events_merged_unmerged_and_embedded(
    es: Elasticsearch, es_index: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = [process_event("x", executable=f"/opt/{v}") for v in VALUES] + [
        process_event("x", executable=v) for v in VALUES
    ]
    detection = {
        "exact": {"Image": [f"/opt/{v}" for v in VALUES[:12]]},
        "ends": {"Image|endswith": ["+B", ".y", "]", "~c", "Case", "\u212a", "é", "/1/", "Sudo"]},
        "starts": {"Image|startswith": ["/opt/A", "/opt/[", "/OPT/@", "/usr/BIN/", "/opt/\u017f", "/opt/1"]},
        "has": {"Image|contains": ["+", "x.", "& ", '"', "Ed c", "/S", "a\\b"]},
        "condition": "1 of them",
    }
    rule = load_rules([write(tmp_path / "lists.yml", rule_yaml(detection))])
    rule.raise_first()
    merged = compile_rule(rule.rules[0], target="elasticsearch").dsl
    assert merged is not None and "regexp" in json.dumps(merged)
    monkeypatch.setattr(_dsl, "merge_alternatives", lambda clauses: clauses)
    per_value = compile_rule(rule.rules[0], target="elasticsearch").dsl
    monkeypatch.undo()
    assert per_value is not None and "regexp" not in json.dumps(per_value)
    create_events_index(es, es_index)
    bulk_index(es, es_index, [(str(i), e) for i, e in enumerate(events)])

    def ids(query: dict[str, Any]) -> list[int]:
        found = es.search(index=es_index, query=query, size=len(events), source=False)["hits"]["hits"]
        return sorted(int(h["_id"]) for h in found)

    on_es = ids(merged["query"])
    assert on_es == ids(per_value["query"])
    with EventStore() as store:
        store.insert(events)
        assert store.search(compile_rule(rule.rules[0], target="embedded")) == on_es
    assert 0 < len(on_es) < len(events)
