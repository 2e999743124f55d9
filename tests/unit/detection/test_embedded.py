"""The embedded engine matches Sigma semantics (tests/integration/detection checks Elasticsearch agrees)."""

from __future__ import annotations

from pathlib import Path

import pytest

from soar.detection import compile_rule, load_rules
from soar.detection.embedded import EventStore, flatten, parse_timestamp
from tests.unit.detection.helpers import write
from tests.unit.detection.semantics import CASES, Case


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_semantics_on_embedded(tmp_path: Path, case: Case) -> None:
    ruleset = load_rules([write(tmp_path / "r.yml", case.rule())])
    ruleset.raise_first()
    compiled = compile_rule(ruleset.rules[0], target="embedded")
    with EventStore() as store:
        store.insert(case.events)
        assert store.search(compiled) == case.expected


def test_flatten_keeps_arrays_and_dotted_names() -> None:
    flat = flatten({"process": {"args": ["a", "b"], "parent": {"name": "x"}}, "tags": ["t"], "user.name": "u"})
    assert flat == {"process.args": ["a", "b"], "process.parent.name": "x", "tags": ["t"], "user.name": "u"}


def test_flatten_merges_lists_of_objects() -> None:
    assert flatten({"related": [{"ip": "1.1.1.1"}, {"ip": "2.2.2.2"}]}) == {"related.ip": ["1.1.1.1", "2.2.2.2"]}


def test_timestamps() -> None:
    assert parse_timestamp("1970-01-01T00:00:01.500Z") == 1.5
    assert parse_timestamp("1970-01-01T01:00:00+01:00") == 0.0
    assert parse_timestamp("not a date") is None


def test_store_on_disk_keeps_ids_across_inserts(tmp_path: Path) -> None:
    with EventStore(tmp_path / "events.sqlite") as store:
        assert store.insert([{"a": 1}, {"a": 2}]) == [0, 1]
    with EventStore(tmp_path / "events.sqlite") as store:
        assert store.insert([{"a": 3}]) == [2]
        assert store.count() == 3
        assert store.events([2, 0]) == [{"a": 3}, {"a": 1}]


UNPORTABLE = [
    *(
        ("CommandLine|re", pattern, r"which Elasticsearch \(Lucene RegExp\) does not support")
        for pattern in ("(?:curl|wget)", "\\bnc\\b", "a.*?b", "(a)\\1")
    ),
    ("process.args|cidr", "10.0.0.0/8", r"\|cidr on 'process\.args': only ip fields of ECS"),
    ("User|fieldref", "user.effective.name", r"'\|fieldref' \(comparing two fields\) is not supported"),
]


@pytest.mark.parametrize("target", ["embedded", "elasticsearch"])
@pytest.mark.parametrize(("key", "value", "message"), UNPORTABLE, ids=[f"{k} {v}" for k, v, _ in UNPORTABLE])
def test_what_one_engine_cannot_mean_fails_on_both(
    tmp_path: Path, target: str, key: str, value: str, message: str
) -> None:
    from soar.errors import ContentError
    from tests.unit.detection.helpers import rule_yaml

    text = rule_yaml({"sel": {key: value}, "condition": "sel"})
    ruleset = load_rules([write(tmp_path / "r.yml", text)])
    ruleset.raise_first()
    line = next(i for i, s in enumerate(text.splitlines(), 1) if key in s)
    with pytest.raises(ContentError, match=message) as info:
        compile_rule(ruleset.rules[0], target=target)
    assert str(info.value).startswith(f"{tmp_path / 'r.yml'}:{line}:")
