"""The compiled query DSL evaluated in process (soar.detection.dsl_match) means what the oracle means.

Generated rules (tests/unit/detection/oracle_gen.py) are compiled for Elasticsearch and evaluated by the
in-process evaluator; its hits must be the oracle's (which tests/integration/detection/test_oracle_es.py
holds equal to Elasticsearch on the ECS mappings). Named cases pin what Elasticsearch does and the oracle
does not model (``ignore_above``) and the bool rules Elasticsearch applies.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from soar.detection import load_rules
from soar.detection._compile import Compiler
from soar.detection.dsl_match import (
    Anchor,
    Unsupported,
    anchor_holds,
    anchors,
    compile_query,
    flat_event,
    matches,
)
from soar.errors import ContentError
from soar.scheduler import fetch
from soar.scheduler.planning import Window
from soar.scheduler.rules import ScheduledRule
from soar.scheduler.search import Job
from tests.unit.detection import oracle_gen as gen


def _batch(directory: Path, seed: int, n_events: int, n_rules: int) -> tuple[int, int, list[str]]:
    draw = gen.RandomDraw(seed)
    events = [gen.event(draw) for _ in range(n_events)]
    generated = [gen.rule(draw, events) for _ in range(n_rules)]
    compiler = Compiler("elasticsearch", [str(gen.pipeline_file(directory))])
    loaded = gen.load_generated(directory, generated)
    flats = [flat_event(e) for e in events]
    compared = matched = anchored = within = 0
    matched_by: dict[fetch.RuleKey, tuple[Any, list[int]]] = {}
    disagreements: list[str] = []
    for n, rule in enumerate(loaded):
        want = gen.oracle_hits(generated[n].detection, events)
        if want is None or isinstance(rule, ContentError):
            continue
        try:
            compiled = compiler.compile(rule)
        except ContentError:
            continue
        query = (compiled.dsl or {})["query"]
        try:
            predicate = compile_query(query)
        except Unsupported as exc:
            disagreements.append(f"unsupported: {exc}\n{gen.show(generated[n].detection)}")
            continue
        have = [i for i, f in enumerate(flats) if predicate(f)]
        matched_by[(str(n), "h")] = (anchors(query), have)
        # The rule's anchors are a necessary condition: every event it matches holds one of them.
        found = anchors(query)
        if found is not None:
            within += any(a.within for a in found)
            for i in have:
                if not any(anchor_holds(a, flats[i]) for a in found):
                    disagreements.append(
                        f"anchors {sorted(found)} miss matched event {i}\n{gen.show(generated[n].detection)}"
                    )
            anchored += 1
        compared += 1
        matched += 0 < len(want) < n_events
        if have != want:
            disagreements.append(
                f"dsl_match={have} oracle={want} (seed {seed}, rule {n})\n{gen.show(generated[n].detection)}"
            )
    assert anchored >= 10 and within >= 3, (anchored, within, compared)  # the anchor check is not vacuous
    # The fetch path's rule index (exact values looked up, literals found in one pass) loses no match either.
    index = fetch._AnchorIndex({key: found for key, (found, _) in matched_by.items()})
    candidates = [index.candidates(f) for f in flats]
    for key, (_, have) in matched_by.items():
        disagreements += [f"rule {key[0]} not a candidate for event {i}" for i in have if key not in candidates[i]]
    return compared, matched, disagreements


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_evaluator_agrees_with_the_oracle_on_generated_rules(tmp_path: Path, seed: int) -> None:
    compared, matched, disagreements = _batch(tmp_path, seed, n_events=60, n_rules=250)
    assert disagreements == []
    assert compared >= 150 and matched >= 50  # not vacuous


def test_the_pack_compiles_to_clauses_the_evaluator_defines() -> None:
    """Every shipped rule can take the fetch path (none falls back to the search path for its query)."""
    rules_dir = Path(__file__).resolve().parents[3] / "rules"
    ruleset = load_rules([rules_dir])
    compiler = Compiler("elasticsearch")
    unsupported = []
    for rule in ruleset.rules:
        if rule.kind == "correlation":
            continue
        try:
            compiled = compiler.compile(rule)
        except ContentError:
            continue
        try:
            compile_query((compiled.dsl or {})["query"])
        except Unsupported as exc:
            unsupported.append(f"{rule.path}: {exc}")
    assert unsupported == []


@pytest.mark.parametrize(
    ("query", "event", "expected"),
    [
        # ignore_above: Elasticsearch indexes no keyword longer than 1,024 characters (user.name), none at all
        ({"exists": {"field": "user.name"}}, {"user": {"name": "a" * 1025}}, False),
        ({"prefix": {"user.name": "a"}}, {"user": {"name": "a" * 1024}}, True),
        # process.command_line is `wildcard` in ECS (keyword here, no ignore_above)
        (
            {"wildcard": {"process.command_line": {"value": "*evil"}}},
            {"process": {"command_line": "a" * 2000 + "evil"}},
            True,
        ),
        # case_insensitive folds ASCII only
        ({"term": {"user.name": {"value": "ROOT", "case_insensitive": True}}}, {"user": {"name": "root"}}, True),
        ({"term": {"user.name": {"value": "É", "case_insensitive": True}}}, {"user": {"name": "é"}}, False),
        ({"term": {"user.name": "ROOT"}}, {"user": {"name": "root"}}, False),
        # wildcard: \\ escapes, ? is one character
        ({"wildcard": {"process.name": {"value": "a\\*?"}}}, {"process": {"name": "a*b"}}, True),
        ({"wildcard": {"process.name": {"value": "a\\*?"}}}, {"process": {"name": "axb"}}, False),
        # regexp is anchored; Lucene's . matches a newline
        ({"regexp": {"process.name": {"value": "b.", "flags": "ALL"}}}, {"process": {"name": "ab\n"}}, False),
        ({"regexp": {"process.name": {"value": ".*b.", "flags": "ALL"}}}, {"process": {"name": "ab\n"}}, True),
        # ip: CIDR term, addresses however written
        ({"term": {"source.ip": "10.0.0.0/8"}}, {"source": {"ip": "10.2.3.4"}}, True),
        ({"term": {"source.ip": "2001:db8::1"}}, {"source": {"ip": "2001:DB8:0::1"}}, True),
        # numbers: a string of digits is the number
        ({"range": {"process.pid": {"gte": 100}}}, {"process": {"pid": "120"}}, True),
        ({"term": {"process.pid": 7}}, {"process": {"pid": 8}}, False),
        # keyword fields hold numbers and booleans as text
        ({"term": {"custom.flag": "true"}}, {"custom": {"flag": True}}, True),
        # match_phrase: words in order within one value
        ({"match_phrase": {"message": "Failed password"}}, {"message": "sshd: failed  PASSWORD for x"}, True),
        ({"match_phrase": {"message": "password failed"}}, {"message": ["failed", "password failed x"]}, True),
        ({"match_phrase": {"message": "failed password"}}, {"message": ["failed", "password"]}, False),
        # bool: should is optional beside a filter (no minimum_should_match), required alone
        ({"bool": {"filter": [{"exists": {"field": "a"}}], "should": [{"term": {"b": "x"}}]}}, {"a": "1"}, True),
        ({"bool": {"should": [{"term": {"b": "x"}}]}}, {"a": "1"}, False),
        (
            {"bool": {"should": [{"term": {"b": "x"}}, {"term": {"a": "1"}}], "minimum_should_match": 2}},
            {"a": "1", "b": "x"},
            True,
        ),
        ({"bool": {"must_not": [{"term": {"a": "1"}}]}}, {"a": ["2", "1"]}, False),
        # dotted and nested keys are one field
        ({"terms": {"process.args": ["-c", "x"]}}, {"process.args": ["sh", "-c"]}, True),
        ({"term": {"process.parent.name": "sh"}}, {"process": {"parent.name": "sh"}}, True),
    ],
)
def test_elasticsearch_meaning(query: dict[str, Any], event: dict[str, Any], expected: bool) -> None:
    assert matches(query, event) is expected


def test_anchors_name_what_every_match_needs() -> None:
    pack = {
        "bool": {
            "should": [
                {"bool": {"filter": [{"term": {"event.category": "process"}}, {"term": {"user.name": "Root"}}]}},
                {"bool": {"filter": [{"term": {"event.dataset": "x"}}, {"terms": {"user.name": ["a", "B"]}}]}},
            ]
        }
    }
    # the rarer anchor of each branch (not a log source's event.* field), unioned, folded
    assert anchors(pack) == {Anchor("user.name", "root"), Anchor("user.name", "a"), Anchor("user.name", "b")}
    assert anchors({"wildcard": {"process.name": {"value": "*x"}}}) is None  # too short a literal to look for
    # a wildcard's longest literal (escapes read), folded, inside the value; preferred to a log source's field
    contains = {"wildcard": {"process.command_line": {"value": "*bash -i*/dev/tc\\*p*"}}}
    assert anchors(contains) == {Anchor("process.command_line", "/dev/tc*p", within=True)}
    in_source = {"bool": {"filter": [{"term": {"event.category": "process"}}, contains]}}
    assert anchors(in_source) == anchors(contains)
    assert anchors({"prefix": {"file.path": "/ETC/cron"}}) == {Anchor("file.path", "/etc/cron", within=True)}
    assert anchors({"bool": {"must_not": [{"term": {"user.name": "x"}}]}}) is None
    # a should beside a filter is optional: only the filter anchors
    assert anchors({"bool": {"filter": [{"term": {"a": "1"}}], "should": [{"term": {"b": "2"}}]}}) == {Anchor("a", "1")}
    assert anchors({"term": {"process.pid": 5}}) is None  # numbers are matched, not anchored


def test_what_it_does_not_define_is_refused() -> None:
    for query in (
        {"query_string": {"query": "a:b"}},
        {"regexp": {"a": {"value": "x", "case_insensitive": True}}},
        {"wildcard": {"source.ip": {"value": "10.*"}}},
        {"bool": {"should": [{"term": {"a": "x"}}], "minimum_should_match": "50%"}},
    ):
        with pytest.raises(Unsupported):
            compile_query(query)


# -- the fetch path's pure parts ---------------------------------------------------------------------------


def _rule(n: int, query: dict[str, Any] | None = None, index: str = "logs") -> ScheduledRule:
    return ScheduledRule(
        id=f"r{n}",
        title=f"r{n}",
        level="high",
        tags=(),
        index=index,
        interval=5,
        lookback=10,
        max_alerts=10,
        content_hash=f"h{n}",
        source="x:1",
        query=query if query is not None else {"term": {"user.name": f"u{n}"}},
    )


def test_which_jobs_the_fetch_path_takes() -> None:
    window = Window(0, 10)
    assert fetch.fetchable(Job(_rule(1), window, 10))
    assert not fetch.fetchable(Job(_rule(1), window, 10, gap_id="g"))  # gap chunks: searched
    assert not fetch.fetchable(Job(_rule(1), window, 10, part="base"))  # correlation parts: searched


def test_auto_fetches_when_many_rules_share_a_window_of_few_events() -> None:
    fetch.reset()
    window = Window(0, 10)
    few = [Job(_rule(n), window, 10) for n in range(fetch.MIN_RULES - 1)]
    many = [Job(_rule(n), window, 10) for n in range(fetch.MIN_RULES)]
    assert not fetch.choose("auto", "logs", few, window)
    assert fetch.choose("auto", "logs", many, window)  # not measured yet: measure by fetching
    assert fetch.choose("fetch", "logs", few, window) and not fetch.choose("search", "logs", many, window)
    fetch.MEMO.indices["logs"] = fetch._IndexState(events_per_second=fetch.MAX_EVENTS / 5)
    assert fetch.choose("auto", "logs", many, Window(0, 5))
    assert not fetch.choose("auto", "logs", many, Window(0, 6))  # measured: too many events for one read
    fetch.MEMO.indices["logs"] = fetch._IndexState(events_per_second=1.0, search_until_cycle=fetch.MEMO.cycle + 1)
    assert not fetch.choose("auto", "logs", many, window)  # overflowed lately: searched for a while
    fetch.reset()


def test_a_rule_the_evaluator_cannot_run_stays_on_the_search_path() -> None:
    fetch.reset()
    assert fetch.predicate(_rule(1, {"query_string": {"query": "x"}}), []) is None
    assert fetch.predicate(_rule(2), []) is not None
    # exceptions become part of the rule's predicate, as must_not clauses of its search
    excepted = fetch.predicate(
        _rule(3, {"exists": {"field": "user.name"}}),
        [{"status": "approved", "rule_id": "r3", "field": "user.name", "values": ["svc-*"]}],
    )
    assert excepted is not None
    assert excepted(flat_event({"user": {"name": "alice"}})) and not excepted(flat_event({"user": {"name": "SVC-x"}}))
    fetch.reset()
