"""``soar rules test`` on Elasticsearch: every match of a large events file (as on the embedded engine), and
events or fixtures Elasticsearch rejects named at their file:line."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from elasticsearch import Elasticsearch

from soar.detection import load_rules, match_events, run_fixture_tests
from soar.detection.elastic import MAX_HITS
from soar.errors import InputError
from tests.unit.detection.helpers import process_event, rule_yaml, run_cli, write


def test_more_matches_than_a_search_window_are_all_reported(es: Elasticsearch, tmp_path: Path) -> None:
    every_other = write(tmp_path / "curl.yml", rule_yaml({"sel": {"CommandLine|contains": "curl"}, "condition": "sel"}))
    events = [process_event("curl -s http://x" if i % 2 else "ls -l") for i in range(2 * MAX_HITS + 100)]
    ruleset = load_rules([every_other])
    before = set(es.indices.get(index="soar-test-large-*", allow_no_indices=True).body)
    on_es, errors = match_events(ruleset, events, engine="elasticsearch", es=es, index_prefix="soar-test-large")
    assert errors == []
    assert set(es.indices.get(index="soar-test-large-*", allow_no_indices=True).body) <= before
    (row,) = on_es
    assert row["matched_events"] == list(range(1, len(events), 2))  # 10,050 of them, not the first 10,000
    on_db, _ = match_events(ruleset, events, engine="embedded")
    assert on_db == on_es


def test_an_event_elasticsearch_rejects_is_named_at_its_file_line(
    es: Elasticsearch, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    rules = write(tmp_path / "curl.yml", rule_yaml({"sel": {"CommandLine|contains": "curl"}, "condition": "sel"}))
    pid = '{"process": {"pid": "not a number"}}'  # process.pid is a long in the events template
    events = write(tmp_path / "events.json", f'[\n  {{"process": {{"pid": 1}}}},\n\n    {pid}\n]\n')
    env = {"SOAR_STATE_DIR": str(tmp_path / "s"), "SOAR_INDEX_PREFIX": "soar-test"}
    out = run_cli(
        capsys, monkeypatch, "rules", "test", str(rules), "--events", str(events), "-e", "elasticsearch", env=env
    )
    assert out.returncode == 1
    assert out.stderr.startswith(f"error: {events}:4:5: event 1: Elasticsearch rejected it: ")
    assert "[process.pid]" in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_a_fixture_elasticsearch_rejects_is_named_at_its_file_line(es: Elasticsearch, tmp_path: Path) -> None:
    rules = write(tmp_path / "curl.yml", rule_yaml({"sel": {"CommandLine|contains": "curl"}, "condition": "sel"}))
    good, bad = process_event("curl x | sh"), {**process_event("ls"), "process": "ls"}
    fixtures = write(tmp_path / "curl.tests.yml", yaml.safe_dump({"should_match": [good], "should_not_match": [bad]}))
    line = next(n for n, text in enumerate(fixtures.read_text().splitlines(), 1) if text == "should_not_match:") + 1
    with pytest.raises(InputError) as caught:
        run_fixture_tests(load_rules([rules]), engine="elasticsearch", es=es, index_prefix="soar-test-fixtures")
    assert str(caught.value).startswith(f"{fixtures}:{line}:")
    assert "Elasticsearch rejected it: " in str(caught.value)
