"""Elasticsearch (an index with the official ECS mappings), the embedded engine and the oracle agree.

One generated batch per seed (tests/unit/detection/oracle_gen.py): the events are indexed once, every
generated rule is searched in one ``_msearch``, and each engine's hits must be the oracle's, or the rule
refused at its line. Deterministic: the same rules and events on every run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from elasticsearch import Elasticsearch

from soar.detection import load_rules
from soar.detection._compile import Compiler
from soar.detection.elastic import bulk_index, create_events_index, search_rules
from soar.errors import ContentError
from tests.unit.detection.helpers import rule_yaml, write
from tests.unit.detection.oracle_gen import nest, oracle_hits, pipeline_file, run_batch
from tests.unit.detection.test_oracle import REGRESSIONS


@pytest.mark.parametrize("seed", [1, 2])
def test_elasticsearch_and_embedded_agree_with_the_oracle(
    es: Elasticsearch, es_index: str, tmp_path: Path, seed: int
) -> None:
    result = run_batch(tmp_path, seed, n_events=100, n_rules=300, es=es, index=es_index)
    assert result.disagreements == []
    assert result.compared >= 200  # most generated rules compile on both engines
    assert result.matched >= 100  # and many match some events but not all: the comparison is not vacuous


@pytest.mark.parametrize(
    ("detection", "events", "expected"), [r[1:] for r in REGRESSIONS], ids=[r[0] for r in REGRESSIONS]
)
def test_regression_on_elasticsearch(
    es: Elasticsearch,
    es_index: str,
    tmp_path: Path,
    detection: dict[str, Any],
    events: list[dict[str, Any]],
    expected: Any,
) -> None:
    compiler = Compiler("elasticsearch", [str(pipeline_file(tmp_path))])
    write(tmp_path / "r.yml", rule_yaml(detection))
    ruleset = load_rules([tmp_path / "r.yml"])
    try:
        ruleset.raise_first()
        compiled = compiler.compile(ruleset.rules[0])
    except ContentError as exc:
        assert isinstance(expected, str), exc
        assert expected in exc.message
        return
    assert not isinstance(expected, str), f"Elasticsearch compiled what the embedded engine refuses: {compiled.dsl}"
    create_events_index(es, es_index)
    bulk_index(es, es_index, [(str(i), e) for i, e in enumerate(events)])
    hits = search_rules(es, es_index, [compiled], size=len(events), source=False)
    assert sorted(int(h["_id"]) for h in hits[compiled.rule_id]) == expected


def test_a_value_over_ignore_above_is_seen_by_the_scheduler(es: Elasticsearch, es_index: str, tmp_path: Path) -> None:
    """ECS keywords have ``ignore_above: 1024``: Elasticsearch indexes no longer value, so a padded argument
    escapes a plain search. The scheduler's source judges such documents (``_ignored``) in process with
    Sigma's meaning (soar.scheduler.overlong), so it finds what the oracle finds."""
    import time

    from soar.scheduler.planning import Window, iso
    from soar.scheduler.rules import ScheduledRule
    from soar.scheduler.search import Job, RequestCounter
    from soar.scheduler.sources import ElasticsearchSource

    detection = {"sel": {"process.args|endswith": "evil"}, "condition": "sel"}
    now = time.time()
    events = [nest({"process.args": ["a" * 1100 + "evil"], "@timestamp": iso(now - 1)})]
    write(tmp_path / "r.yml", rule_yaml(detection))
    compiled = Compiler("elasticsearch", [str(pipeline_file(tmp_path))]).compile(
        load_rules([tmp_path / "r.yml"]).rules[0]
    )
    create_events_index(es, es_index)
    bulk_index(es, es_index, [("0", events[0])])
    plain = search_rules(es, es_index, [compiled], size=5, source=False)
    assert plain[compiled.rule_id] == []  # Elasticsearch alone does not see it
    rule = ScheduledRule(
        id=compiled.rule_id, title="t", level="low", tags=(), index=es_index, interval=1, lookback=30,
        max_alerts=10, content_hash="1", source="r.yml:1", query=(compiled.dsl or {})["query"],
    )  # fmt: skip
    job = Job(rule, Window(now - 30, now + 1), limit=10)
    results = ElasticsearchSource(es).search([job], [], RequestCounter(), page_size=100, batch_size=50)
    assert [int(h["_id"]) for h in results[0].hits] == oracle_hits(detection, events) == [0]
