"""Correlations over Elasticsearch searches give the same matches as on the embedded store, at the window edges."""

from __future__ import annotations

from pathlib import Path

from elasticsearch import Elasticsearch

from soar.detection import compile_rule, evaluate_correlation, load_rules
from soar.detection.elastic import bulk_index, correlation_events, create_events_index
from soar.detection.embedded import EventStore
from soar.detection.embedded import correlation_events as db_correlation_events
from tests.unit.detection.helpers import auth_event, write
from tests.unit.detection.test_correlate import CORRELATIONS, _at

EVENTS = [
    auth_event(_at(0), "failure", "203.0.113.5"),
    auth_event(_at(30), "failure", "203.0.113.5"),
    auth_event(_at(59), "failure", "203.0.113.5"),  # 59 s after the first: inside the 1m window
    auth_event(_at(60), "success", "203.0.113.5"),
    auth_event(_at(0), "failure", "198.51.100.7"),
    auth_event(_at(30), "failure", "198.51.100.7"),
    auth_event(_at(61), "failure", "198.51.100.7"),  # 61 s: outside
    auth_event(_at(122), "success", "198.51.100.7"),
    auth_event(_at(10), "success", "198.51.100.9"),  # success before the failure: not ordered
    auth_event(_at(20), "failure", "198.51.100.9"),
]


def test_correlations_agree_between_engines(es: Elasticsearch, es_index: str, tmp_path: Path) -> None:
    create_events_index(es, es_index)
    bulk_index(es, es_index, [(str(i), e) for i, e in enumerate(EVENTS)])
    ruleset = load_rules([write(tmp_path / "c.yml", CORRELATIONS)])
    ruleset.raise_first()
    results = {}
    for rule in ruleset.rules[2:]:
        on_es = compile_rule(rule, target="elasticsearch", ruleset=ruleset).correlation
        on_db = compile_rule(rule, target="embedded", ruleset=ruleset).correlation
        assert on_es is not None and on_db is not None
        es_matches = evaluate_correlation(on_es, correlation_events(es, es_index, on_es))
        with EventStore() as store:
            store.insert(EVENTS)
            db_matches = evaluate_correlation(on_db, db_correlation_events(store, on_db))
        as_es = [(m.group, m.start, m.end, m.value, tuple(int(r) for r in m.refs)) for m in es_matches]
        as_db = [(m.group, m.start, m.end, m.value, m.refs) for m in db_matches]
        assert as_es == as_db
        results[rule.title] = [m.group["source.ip"] for m in es_matches]
    assert results == {"Brute force": ["203.0.113.5"], "Success after failures": ["203.0.113.5"]}


def test_time_range_and_group_prefilter_limit_what_is_fetched(es: Elasticsearch, es_index: str, tmp_path: Path) -> None:
    create_events_index(es, es_index)
    bulk_index(es, es_index, [(str(i), e) for i, e in enumerate(EVENTS)])
    ruleset = load_rules([write(tmp_path / "c.yml", CORRELATIONS)])
    spec = compile_rule(ruleset.rules[2], target="elasticsearch", ruleset=ruleset).correlation
    assert spec is not None
    # A composite aggregation first: only groups with >= 3 failures in the range are fetched (not 198.51.100.9).
    everything = correlation_events(es, es_index, spec)
    assert sorted(int(e.ref) for e in everything) == [0, 1, 2, 4, 5, 6]
    # From 30 s on, no source has 3 failures: nothing is fetched, nothing matches.
    assert correlation_events(es, es_index, spec, time_range=(_at(30), _at(3600))) == []
    # The temporal rule has no such shortcut and fetches its base rules' events in the range.
    ordered = compile_rule(ruleset.rules[3], target="elasticsearch", ruleset=ruleset).correlation
    assert ordered is not None
    late = correlation_events(es, es_index, ordered, time_range=(_at(30), _at(3600)))
    assert sorted(int(e.ref) for e in late) == [1, 2, 3, 5, 6, 7]


def test_aliases_and_chained_correlations_agree_between_engines(
    es: Elasticsearch, es_index: str, tmp_path: Path
) -> None:
    from tests.unit.detection.test_correlate_aliases_chained import (
        ALIAS_EVENTS,
        CHAINED_EVENTS,
        compiled,
        embedded_matches,
    )

    events = [*ALIAS_EVENTS, *CHAINED_EVENTS]
    create_events_index(es, es_index)
    bulk_index(es, es_index, [(str(i), e) for i, e in enumerate(events)])
    on_es, on_db = compiled(tmp_path, "elasticsearch"), compiled(tmp_path / "db", "embedded")
    found = {}
    for title in ("Login then a connection back to the same address", "Login after a brute force"):
        spec = on_es[title].correlation
        assert spec is not None
        es_matches = evaluate_correlation(spec, correlation_events(es, es_index, spec))
        as_es = [(next(iter(m.group.values())), tuple(int(r) for r in m.refs)) for m in es_matches]
        assert as_es == embedded_matches(on_db[title], events)
        found[title] = as_es
    n = len(ALIAS_EVENTS)
    assert found == {
        "Login then a connection back to the same address": [("198.51.100.7", (2, 3)), ("203.0.113.5", (0, 1))],
        "Login after a brute force": [("203.0.113.5", (n, n + 1, n + 2, n + 3))],
    }


def test_a_chained_correlation_in_a_time_range_reaches_back_for_its_inner_windows(
    es: Elasticsearch, es_index: str, tmp_path: Path
) -> None:
    from tests.unit.detection.test_correlate_aliases_chained import CHAINED_EVENTS, compiled

    create_events_index(es, es_index)
    bulk_index(es, es_index, [(str(i), e) for i, e in enumerate(CHAINED_EVENTS)])
    spec = compiled(tmp_path, "elasticsearch")["Login after a brute force"].correlation
    assert spec is not None
    # From 40 s on: the brute force ends at 40 s, but its failures at 0 and 20 s lie before the range.
    matches = evaluate_correlation(spec, correlation_events(es, es_index, spec, time_range=(_at(40), _at(3600))))
    assert [(m.group["source.ip"], sorted(int(r) for r in m.refs)) for m in matches] == [("203.0.113.5", [0, 1, 2, 3])]
    # From 41 s on, the brute force ended before the range: not an event of this range.
    assert evaluate_correlation(spec, correlation_events(es, es_index, spec, time_range=(_at(41), _at(3600)))) == []
