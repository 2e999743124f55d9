"""The shipped rule pack: every rule passes its fixtures on real Elasticsearch and on the embedded engine,
and for every fixture event of every rule both engines agree on which rules match it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from elasticsearch import Elasticsearch

from soar.detection import load_fixtures, load_rules, match_events, run_fixture_tests
from soar.detection._ecs import LOWER_CASE_FIELDS, field_type
from soar.detection._fixtures import building_blocks
from tests.conftest import REPO_ROOT
from tests.fleet import fleet_data_stream
from tests.unit.detection.helpers import run_cli

RULES = REPO_ROOT / "rules"


@pytest.fixture(scope="module")
def pack() -> Any:
    ruleset = load_rules([RULES])
    assert ruleset.errors == [], [str(e) for e in ruleset.errors]
    assert len(ruleset.rules) >= 30, "the shipped pack should have at least 30 rules"
    return ruleset


def _failures(results: list[Any]) -> list[str]:
    return [f"{r.rule_id} {r.title}: {'; '.join(r.failures)}" for r in results if not r.passed]


def test_pack_passes_on_embedded(pack: Any) -> None:
    results = run_fixture_tests(pack, engine="embedded")
    assert len(results) == len(pack.rules)
    assert _failures(results) == []


def test_pack_passes_on_elasticsearch(pack: Any, es: Elasticsearch) -> None:
    before = set(es.indices.get(index="soar-test-fixtures-*", allow_no_indices=True).body)
    results = run_fixture_tests(pack, engine="elasticsearch", es=es, index_prefix="soar-test-fixtures")
    assert len(results) == len(pack.rules)
    assert _failures(results) == []
    after = set(es.indices.get(index="soar-test-fixtures-*", allow_no_indices=True).body)
    assert after <= before  # the throwaway index is gone


def test_every_rule_has_fixtures_on_both_sides(pack: Any) -> None:
    through = building_blocks(pack)
    for rule in pack.rules:
        if rule.id in through:
            continue
        kinds = {f.kind for f in load_fixtures(rule)}
        assert kinds == {"should_match", "should_not_match"}, rule.path


def test_engines_agree_on_every_fixture_event_of_every_rule(pack: Any, es: Elasticsearch) -> None:
    through = building_blocks(pack)
    events = [
        event
        for rule in pack.rules
        if rule.id not in through
        for fixture in load_fixtures(rule)
        for event in fixture.events
    ]
    plain = type(pack)(rules=[r for r in pack.rules if r.kind == "rule"])
    on_db, db_errors = match_events(plain, events, engine="embedded")
    on_es, es_errors = match_events(plain, events, engine="elasticsearch", es=es, index_prefix="soar-test-diff")
    assert db_errors == es_errors == []
    differ = [
        f"{a['id']} {a['title']}: embedded={a['matched_events']} elasticsearch={b['matched_events']}"
        for a, b in zip(on_db, on_es, strict=True)
        if a["matched_events"] != b["matched_events"]
    ]
    assert differ == []
    assert sum(len(r["matched_events"]) for r in on_db) > 0


@pytest.mark.parametrize("engine", ["elasticsearch", "embedded"])
def test_cli_rules_test_over_the_pack(
    pack: Any,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    es: Elasticsearch,
    engine: str,
) -> None:
    out = run_cli(
        capsys,
        monkeypatch,
        "rules",
        "test",
        str(RULES),
        "--engine",
        engine,
        env={"SOAR_STATE_DIR": str(tmp_path), "SOAR_INDEX_PREFIX": "soar-test"},
    )
    assert out.returncode == 0, out.stdout + out.stderr
    # on the embedded engine, soar's own rule types (*.soar.yml) are tested with the Sigma rules
    own = len(list(RULES.rglob("*.soar.tests.yml"))) if engine == "embedded" else 0
    assert f"{len(pack.rules) + own} passed, 0 failed ({engine})" in out.stderr
    assert out.stdout.count("PASS  ") == len(pack.rules) + own


def _recase(value: Any, flip: Any, path: str = "") -> Any:
    """Every string with its case changed, except dates (their case is part of their syntax) and the fields ECS
    defines in lower case (event.category, event.dataset, …: shippers never write another case; matched exactly)."""
    if isinstance(value, dict):
        return {k: _recase(v, flip, f"{path}{k}.") for k, v in value.items()}
    if isinstance(value, list):
        return [_recase(v, flip, path) for v in value]
    name = path.rstrip(".")
    if isinstance(value, str) and field_type(name) != "date" and name not in LOWER_CASE_FIELDS:
        return flip(value)
    return value


@pytest.mark.parametrize("flip", [str.upper, str.swapcase], ids=["upper", "swapcase"])
def test_should_match_events_with_their_case_changed_still_match_on_ecs_mappings(
    pack: Any, es: Elasticsearch, flip: Any
) -> None:
    """Real logs change case (/USR/BIN/CURL, ROOT, EXEC:): on an index mapped with the official ECS mappings
    (case-sensitive keywords, no template of soar's) a case-insensitive rule still fires, on both engines.
    Rules with |cased or |re are left out: their values keep their case on purpose."""
    through = building_blocks(pack)
    rules = [
        r
        for r in pack.rules
        if r.kind == "rule" and r.id not in through and not any(m in r.path.read_text() for m in ("|cased", "|re"))
    ]
    assert len(rules) > 30
    events: list[dict[str, Any]] = []
    expected: dict[str, list[int]] = {}
    for rule in rules:
        for fixture in load_fixtures(rule):
            if fixture.kind == "should_match":
                for event in fixture.events:
                    expected.setdefault(rule.id, []).append(len(events))
                    events.append(_recase(event, flip))
    subset = type(pack)(rules=rules)
    for engine in ("embedded", "elasticsearch"):
        results, errors = match_events(subset, events, engine=engine, es=es, index_prefix="soar-test-recase")
        assert errors == []
        missed = [
            f"{r['title']}: missed {sorted(set(expected[r['id']]) - set(r['matched_events']))}"
            for r in results
            if not set(expected[r["id"]]) <= set(r["matched_events"])
        ]
        assert missed == [], engine


def test_pack_passes_on_a_data_stream_mapped_as_fleet_maps_it(pack: Any, es: Elasticsearch) -> None:
    """The shipped rules on a logs-* data stream whose template is Fleet's, not soar's (priority 200, ECS)."""
    stream = fleet_data_stream(es, "soartest.pack")
    mapping = next(iter(es.indices.get_mapping(index=stream).body.values()))["mappings"]
    assert mapping["properties"]["process"]["properties"]["command_line"]["type"] == "keyword"  # wildcard here
    assert "normalizer" not in mapping["properties"]["process"]["properties"]["command_line"]
    results = run_fixture_tests(pack, engine="elasticsearch", es=es, into=stream)
    assert _failures(results) == []
    assert len(results) == len(pack.rules)
    assert es.count(index=stream)["count"] == 0  # the fixtures are gone again
