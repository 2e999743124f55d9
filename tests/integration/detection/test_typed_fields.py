"""Typed fields of the events template: a value that can never match is refused at its line, on both engines.

The premise is checked on the real server first: with soar's template, ``destination.ip:10.*`` (what a
plain conversion of ``DestinationIp|startswith: '10.'`` gives) answers no hits and no error, while the
``|cidr`` the refusal suggests matches the same event on Elasticsearch and on the embedded engine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from elasticsearch import Elasticsearch

from soar.detection import compile_rule, load_rules
from soar.detection.elastic import bulk_index, create_events_index, search_rules
from soar.detection.embedded import EventStore
from soar.errors import ContentError
from tests.unit.detection.helpers import rule_yaml, write

NETWORK = {"product": "linux", "category": "network_connection"}
PROCESS = {"product": "linux", "category": "process_creation"}

EVENT: dict[str, Any] = {
    "@timestamp": "2026-11-28T10:00:00.000Z",
    "host": {"name": "web-01"},
    "event": {"category": ["network"], "type": ["start"]},
    "destination": {"ip": "10.1.2.3", "port": 4444},
    "source": {"ip": "192.168.7.9", "port": 50111},
    "process": {"executable": "/usr/bin/bash", "pid": 4242},
}


def _refusal(tmp_path: Path, name: str, detection: dict[str, Any], logsource: dict[str, str]) -> ContentError:
    path = write(tmp_path / f"{name}.yml", rule_yaml(detection, logsource=logsource))
    ruleset = load_rules([path])
    ruleset.raise_first()
    for target in ("elasticsearch", "embedded"):  # the same refusal on both engines
        with pytest.raises(ContentError) as caught:
            compile_rule(ruleset.rules[0], target=target)
    error = caught.value
    assert error.source is not None and error.source.path == path
    return error


@pytest.mark.parametrize(
    ("detection", "logsource", "says", "line_has"),
    [
        (
            {"sel": {"DestinationIp|startswith": "10."}, "condition": "sel"},
            NETWORK,
            ["destination.ip is an IP field", "use |cidr: '10.0.0.0/8'"],
            "10.",
        ),
        (
            {"sel": {"SourceIp|startswith": "192.168."}, "condition": "sel"},
            NETWORK,
            ["source.ip", "use |cidr: '192.168.0.0/16'"],
            "192.168.",
        ),
        (
            {"sel": {"DestinationIp|contains": ".66."}, "condition": "sel"},
            NETWORK,
            ["destination.ip", "use |cidr with a range"],
            ".66.",
        ),
        (
            {"sel": {"DestinationIp": "localhost"}, "condition": "sel"},
            NETWORK,
            ["'localhost' is not an IP address"],
            "localhost",
        ),
        (
            {"sel": {"DestinationIp|re": "^10\\."}, "condition": "sel"},
            NETWORK,
            ["regular expression", "use |cidr"],
            "^10",
        ),
        ({"sel": {"DestinationPort": "ssh"}, "condition": "sel"}, NETWORK, ["destination.port is a number"], "ssh"),
        ({"sel": {"ProcessId|endswith": "42"}, "condition": "sel"}, PROCESS, ["process.pid is a number"], "42"),
    ],
)
def test_a_value_its_field_type_can_never_match_is_refused_at_its_line(
    tmp_path: Path, detection: dict[str, Any], logsource: dict[str, str], says: list[str], line_has: str
) -> None:
    error = _refusal(tmp_path, "typed", detection, logsource)
    for text in says:
        assert text in error.message, error.message
    assert error.source is not None and error.source.line is not None
    line = (tmp_path / "typed.yml").read_text().splitlines()[error.source.line - 1]
    assert line_has in line, (line, error.message)


@pytest.mark.parametrize(
    "detection",
    [
        {"sel": {"DestinationIp": "10.1.2.3"}, "condition": "sel"},
        {"sel": {"DestinationIp|cidr": "10.0.0.0/8"}, "condition": "sel"},
        {"sel": {"DestinationPort": 4444}, "condition": "sel"},
        {"sel": {"DestinationPort": "4444"}, "condition": "sel"},
        {"sel": {"DestinationPort|gte": 4000}, "condition": "sel"},
        {"sel": {"Image|endswith": "/bash", "DestinationIp|exists": True}, "condition": "sel"},
    ],
)
def test_values_a_typed_field_can_match_compile_and_match_on_both_engines(
    es: Elasticsearch, es_index: str, tmp_path: Path, detection: dict[str, Any]
) -> None:
    create_events_index(es, es_index)
    bulk_index(es, es_index, [("n1", EVENT)])
    path = write(tmp_path / "ok.yml", rule_yaml(detection, logsource=NETWORK))
    rule = load_rules([path]).rules[0]
    on_es = search_rules(es, es_index, [compile_rule(rule, target="elasticsearch")], size=10, source=False)
    with EventStore() as store:
        ids = store.insert([EVENT])
        on_embedded = store.search(compile_rule(rule, target="embedded"))
    assert [h["_id"] for h in on_es[rule.id]] == ["n1"]
    assert on_embedded == ids


def test_the_query_a_plain_conversion_gives_misses_silently_on_the_real_server(
    es: Elasticsearch, es_index: str
) -> None:
    """Why the refusal exists: Elasticsearch answers a wildcard on an ip field with nothing, not an error."""
    create_events_index(es, es_index)
    bulk_index(es, es_index, [("n1", EVENT)])
    plain = es.search(
        index=es_index, query={"query_string": {"query": "destination.ip:10.*", "analyze_wildcard": True}}
    )
    cidr = es.search(index=es_index, query={"query_string": {"query": 'destination.ip:"10.0.0.0/8"'}})
    assert plain["hits"]["total"]["value"] == 0 and not plain["_shards"].get("failures")
    assert cidr["hits"]["total"]["value"] == 1
