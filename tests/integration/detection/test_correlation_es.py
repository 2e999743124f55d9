"""Correlations over Elasticsearch searches give the same matches as on the embedded store, at the window edges."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from elasticsearch import Elasticsearch

from soar.detection import CorrelationMatch, Rule, RuleSet, compile_rule, evaluate_correlation, load_rules
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


def matches_on_both_engines(
    es: Elasticsearch, index: str, store: EventStore, ruleset: RuleSet, rule: Rule
) -> list[CorrelationMatch]:
    """The correlation's matches on Elasticsearch, asserted equal to the embedded store's (same events, ids as refs)."""
    on_es = compile_rule(rule, target="elasticsearch", ruleset=ruleset).correlation
    on_db = compile_rule(rule, target="embedded", ruleset=ruleset).correlation
    assert on_es is not None and on_db is not None
    es_matches = evaluate_correlation(on_es, correlation_events(es, index, on_es))
    db_matches = evaluate_correlation(on_db, db_correlation_events(store, on_db))
    as_es = [(m.group, m.start, m.end, m.value, tuple(int(r) for r in m.refs)) for m in es_matches]
    assert as_es == [(m.group, m.start, m.end, m.value, m.refs) for m in db_matches], rule.title
    return es_matches


def agreed_matches(
    es: Elasticsearch, index: str, rules: Path, events: Sequence[Mapping[str, Any]]
) -> dict[str, list[CorrelationMatch]]:
    """Title -> matches of every correlation in ``rules`` over ``events`` (ids = positions), both engines agreeing."""
    create_events_index(es, index)
    bulk_index(es, index, [(str(i), e) for i, e in enumerate(events)])
    ruleset = load_rules([rules])
    ruleset.raise_first()
    with EventStore() as store:
        store.insert(events)
        return {
            rule.title: matches_on_both_engines(es, index, store, ruleset, rule)
            for rule in ruleset.rules
            if rule.kind == "correlation"
        }


def test_correlations_agree_between_engines(es: Elasticsearch, es_index: str, tmp_path: Path) -> None:
    found = agreed_matches(es, es_index, write(tmp_path / "c.yml", CORRELATIONS), EVENTS)
    results = {title: [m.group["source.ip"] for m in matches] for title, matches in found.items()}
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


EDGE_CORRELATIONS = {
    "temporal": "type: temporal\n  rules: [t_ssh_success, t_ssh_failure]",
    "value_count": "type: value_count\n  rules: [t_ssh_failure]\n  condition: {gte: 3, field: User}",
    "value_sum": "type: value_sum\n  rules: [t_ssh_failure]\n  condition: {gte: 100, field: source.port}",
    "value_avg": "type: value_avg\n  rules: [t_ssh_failure]\n  condition: {lte: 45, field: source.port}",
}


def _edge_events() -> list[dict[str, object]]:
    def event(at: int, outcome: str, ip: str, user: str = "root", port: int | None = None) -> dict[str, object]:
        out = auth_event(_at(at), outcome, ip, user=user)
        if port is not None:
            out["source"] = {"ip": ip, "port": port}
        return out

    return [
        event(0, "success", "192.0.2.1"),  # temporal, unordered: the success first, the failure 59 s later
        event(59, "failure", "192.0.2.1"),
        event(0, "success", "192.0.2.2"),  # ... 61 s later: outside
        event(61, "failure", "192.0.2.2"),
        *(event(at, "failure", "192.0.2.3", user=u) for at, u in ((0, "a"), (30, "B"), (59, "c"))),  # 3 users in 59 s
        *(event(at, "failure", "192.0.2.4", user=u) for at, u in ((0, "a"), (30, "b"), (61, "c"))),  # ... in 61 s
        *(event(at, "failure", "192.0.2.5", user="a", port=p) for at, p in ((0, 40), (59, 60))),  # sum 100 in 59 s
        *(event(at, "failure", "192.0.2.6", user="a", port=p) for at, p in ((0, 40), (61, 60))),  # ... in 61 s
    ]


def test_temporal_value_count_sum_and_avg_at_the_window_edges_agree_between_engines(
    es: Elasticsearch, es_index: str, tmp_path: Path
) -> None:
    bases = CORRELATIONS.split("---\n")[:2]  # t_ssh_failure and t_ssh_success
    docs = bases + [
        f"title: {kind}\nid: 55555555-0000-4000-8000-0000000001e{n}\nstatus: test\ncorrelation:\n  {body}\n"
        "  group-by: [SourceIp]\n  timespan: 1m\nlevel: high\n"
        for n, (kind, body) in enumerate(EDGE_CORRELATIONS.items())
    ]
    rules = write(tmp_path / "edges.yml", "---\n".join(docs))
    found = {
        title: [(m.group["source.ip"], m.value, tuple(int(r) for r in m.refs)) for m in matches]
        for title, matches in agreed_matches(es, es_index, rules, _edge_events()).items()
    }
    assert found == {
        "temporal": [("192.0.2.1", 2.0, (0, 1))],
        "value_count": [("192.0.2.3", 3.0, (4, 5, 6))],  # user names compare case-insensitively
        "value_sum": [("192.0.2.5", 100.0, (10, 11))],
        # lte 45: the only window averaging 45 or less is 192.0.2.6's first (its second port is 61 s later);
        # events with no port have no average and never match.
        "value_avg": [("192.0.2.6", 40.0, (12,))],
    }
