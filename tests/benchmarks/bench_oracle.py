"""Sigma semantics property benchmark (not a test): generated rules on each engine against the oracle.

Each seed generates ECS events and Sigma rules (tests/unit/detection/oracle_gen.py: every modifier of
the specification, wildcards and escapes, regex specials, Windows dashes, non-ASCII letters, keywords,
``1 of``/``all of``/``not``). The embedded engine and Elasticsearch (a throwaway index with the
official ECS mappings, one bulk load, one ``_msearch``) are compared with the reference evaluator
(soar.detection.oracle). Printed per seed: rules generated, compared, refused at their line, rule x event
decisions compared, disagreements (goal: 0), and where the time went. No timing is asserted.

Run: ``python -m tests.benchmarks.bench_oracle [RULES [EVENTS]]`` (default 500 rules x 150 events,
seeds 1-3; Elasticsearch rows need ``scripts/services.sh up es``).
"""

from __future__ import annotations

import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

from soar.config import load_settings
from tests.unit.detection.oracle_gen import BatchResult, run_batch

SEEDS = (1, 2, 3)


def _client() -> Any:
    from soar.connections import check_elasticsearch, elasticsearch_client

    settings = load_settings()
    try:
        check_elasticsearch(settings)
    except Exception as exc:  # Elasticsearch down: the embedded rows still stand
        print(f"(elasticsearch skipped: {type(exc).__name__}: {exc})")
        return None
    return elasticsearch_client(settings, request_timeout=60)


def main(argv: list[str]) -> int:
    rules = int(argv[0]) if argv else 500
    events = int(argv[1]) if len(argv) > 1 else 150
    es = _client()
    results: list[tuple[int, BatchResult]] = []
    for seed in SEEDS:
        index = f"soar-bench-oracle-{uuid.uuid4().hex[:8]}"
        with tempfile.TemporaryDirectory() as tmp:
            try:
                results.append((seed, run_batch(Path(tmp), seed, events, rules, es=es, index=index)))
            finally:
                if es is not None:
                    es.options(ignore_status=404).indices.delete(index=index)
    engines = "embedded + elasticsearch" if es is not None else "embedded"
    print(f"engines compared with the oracle: {engines}")
    header = f"{'seed':>4} {'rules':>6} {'events':>6} {'compared':>8} {'refused':>7} {'matched':>7} {'pairs':>8}"
    print(header + f" {'disagree':>8} {'oracle s':>8} {'compile s':>9} {'embedded s':>10} {'es s':>6}")
    for seed, r in results:
        es_s = f"{r.seconds['elasticsearch']:6.2f}" if "elasticsearch" in r.seconds else f"{'-':>6}"
        print(
            f"{seed:4} {r.rules:6} {r.events:6} {r.compared:8} {r.refused:7} {r.matched:7} {r.pairs:8}"
            f" {len(r.disagreements):8} {r.seconds['oracle']:8.2f} {r.seconds['compile']:9.2f}"
            f" {r.seconds['embedded']:10.2f} {es_s}"
        )
    total = sum(len(r.disagreements) for _, r in results)
    print(f"disagreements: {total} (goal 0); 'matched': compared rules matching some events but not all")
    for _, r in results:
        for text in r.disagreements[:3]:
            print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
