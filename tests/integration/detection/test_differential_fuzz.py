"""Differential fuzzing: random values with Sigma's special characters, random modifiers — both engines agree.

Deterministic (fixed seeds): every run checks the same few hundred rule × event pairs.
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import Elasticsearch

from soar.detection import compile_rule, load_rules
from soar.detection.elastic import bulk_index, create_events_index, search_rules
from soar.detection.embedded import EventStore
from tests.unit.detection.helpers import process_event, rule_yaml, write

ALPHABET = ["a", "B", "c", "D", "é", "É", " ", "/", "\\", "-", ".", "|", "'", '"', "%", "_", ":", "(", ")"]
MODIFIERS = ["", "|contains", "|startswith", "|endswith", "|contains|all", "|cased", "|contains|cased"]


def _word(rng: random.Random, low: int = 1, high: int = 4) -> str:
    return "".join(rng.choice(ALPHABET) for _ in range(rng.randint(low, high)))


def _events(rng: random.Random, count: int) -> list[dict[str, Any]]:
    events = []
    for _ in range(count):
        line = " ".join(_word(rng, 1, 6) for _ in range(rng.randint(1, 4)))
        event = process_event(line.strip() or "x")
        event["process"]["args"] = [_word(rng) for _ in range(rng.randint(1, 3))]
        events.append(event)
    return events


def _value(rng: random.Random, events: list[dict[str, Any]]) -> str:
    """Mostly a piece of a real command line (so rules do match), sometimes with a wildcard in it."""
    source = rng.choice(events)["process"]["command_line"]
    start = rng.randrange(len(source))
    piece = source[start : start + rng.randint(1, 5)] or "a"
    if rng.random() < 0.3:
        at = rng.randrange(len(piece) + 1)
        piece = piece[:at] + rng.choice(["*", "?"]) + piece[at:]
    if rng.random() < 0.5:
        piece = piece.swapcase()
    return piece


def _regex(rng: random.Random, events: list[dict[str, Any]]) -> str:
    """Two literal pieces of a real command line with something portable between them."""
    first, second = (_value(rng, events).replace("*", "").replace("?", "") for _ in range(2))
    middle = rng.choice([".*", ".", "[a-z]*", "\\s?", ".+"])
    return re.escape(first) + middle + re.escape(second)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_rules_agree_on_random_events(es: Elasticsearch, es_index: str, tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    events = _events(rng, 60)
    create_events_index(es, es_index)
    bulk_index(es, es_index, [(str(i), e) for i, e in enumerate(events)])
    compiled_es, compiled_db = [], []
    for n in range(30):
        modifier = rng.choice([*MODIFIERS, "|re", "keywords"])
        field = rng.choice(["CommandLine", "process.args"])
        values: Any = [_value(rng, events) for _ in range(rng.randint(1, 2))]
        if modifier == "|re":
            values = [_regex(rng, events)]
        if "|all" not in modifier and len(values) == 1:
            values = values[0]
        if modifier == "keywords":
            words = values if isinstance(values, list) else [values]
            detection: dict[str, Any] = {"keywords": [w.replace("*", "").replace("?", "") or "a" for w in words]}
            detection["condition"] = "keywords"
        else:
            detection = {"sel": {f"{field}{modifier}": values}, "condition": "sel"}
        path = write(tmp_path / f"r{seed}_{n}.yml", rule_yaml(detection))
        (rule,) = load_rules([path]).rules
        compiled_es.append(compile_rule(rule, target="elasticsearch"))
        compiled_db.append(compile_rule(rule, target="embedded"))
    hits = search_rules(es, es_index, compiled_es, size=len(events), source=False)
    disagreements = []
    matched_any = 0
    with EventStore() as store:
        store.insert(events)
        for on_es_rule, db_rule in zip(compiled_es, compiled_db, strict=True):
            on_es = sorted(int(h["_id"]) for h in hits[on_es_rule.rule_id])
            on_db = store.search(db_rule)
            matched_any += bool(on_db)
            if on_es != on_db:
                text = Path(on_es_rule.path).read_text()
                disagreements.append(f"{on_es_rule.query!r}: es={on_es} embedded={on_db}\n{text}")
    assert disagreements == []
    assert matched_any >= 5  # the generator does make rules that match


CORRELATION_KINDS = [
    ("event_count", "{gte: 3}"),
    ("event_count", "{gt: 2}"),
    ("value_count", "{gte: 3, field: user.name}"),
    ("temporal", None),
    ("temporal_ordered", None),
]


@pytest.mark.parametrize("seed", [1, 2])
def test_random_correlations_agree(es: Elasticsearch, es_index: str, tmp_path: Path, seed: int) -> None:
    from datetime import UTC, datetime, timedelta

    from tests.integration.detection.test_correlation_es import agreed_matches
    from tests.unit.detection.helpers import auth_event

    rng = random.Random(seed)
    t0 = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
    events = [
        auth_event(
            (t0 + timedelta(seconds=rng.randint(0, 900))).isoformat().replace("+00:00", "Z"),
            rng.choice(["failure", "failure", "success"]),
            rng.choice(["203.0.113.5", "198.51.100.7", "192.0.2.1"]),
            user=rng.choice(["root", "ROOT", "admin", "deploy", "oracle"]),
            host=rng.choice(["bastion", "BASTION", "db-1"]),
        )
        for _ in range(80)
    ]
    base = """\
title: f
id: 77777777-0000-4000-8000-00000000000{n}
name: fz_{outcome}
status: test
logsource: {{product: linux, service: sshd}}
detection:
  sel: {{event.outcome: {outcome}}}
  condition: sel
level: low
"""
    docs = [base.format(n=1, outcome="failure"), base.format(n=2, outcome="success")]
    for i, (kind, condition) in enumerate(CORRELATION_KINDS):
        rules = "[fz_failure]" if kind in ("event_count", "value_count") else "[fz_failure, fz_success]"
        docs.append(
            f"title: c{i}\nid: 77777777-0000-4000-8000-0000000001{i}0\nstatus: test\ncorrelation:\n"
            f"  type: {kind}\n  rules: {rules}\n  group-by: [SourceIp, host.name]\n"
            f"  timespan: {rng.choice([60, 120, 300])}s\n"
            + (f"  condition: {condition}\n" if condition else "")
            + "level: high\n"
        )
    found = agreed_matches(es, es_index, write(tmp_path / "c.yml", "---\n".join(docs)), events)
    assert len(found) == len(CORRELATION_KINDS)
    assert sum(len(matches) for matches in found.values()) > 0
