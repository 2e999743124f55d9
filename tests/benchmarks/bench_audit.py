"""Audit chain and review benchmark (not a test): a table of ours vs the anchor, as ratios.

- Appending N audit entries with ``soar.audit.record`` (hash chain, HMAC, redaction,
  create-only on the next sequence id) against the anchor: the same documents written with
  a plain ``Store.create`` — a best-effort audit stream with no chain. Goal: ≤ 3× the anchor.
- Verifying the whole chain (every hash recomputed) against reading the same entries back
  (the anchor). Goal: ≤ 2× the read.
- Period metrics over 10 N synthetic incidents (pure): goal ≤ 5 s for 10,000 on 2 shared cores.

Both the embedded SQLite store and Elasticsearch (when it is up) are measured.
Run: ``python -m tests.benchmarks.bench_audit [N]``.
"""

from __future__ import annotations

import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from soar.audit import iter_entries, record, verify
from soar.config import load_settings
from soar.review.metrics import period_metrics
from soar.store import Store
from soar.store.sqlite import SQLiteStore


def timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def bench_store(name: str, make: Callable[[], Store], n: int, rows: list[tuple[str, str, float, float]]) -> None:
    settings = load_settings(audit_hmac_key="bench-key-0123456789")
    chained, plain = make(), make()

    def append() -> None:
        for i in range(n):
            record(chained, actor="automation", action="step", target=f"run-{i}", details={"i": i}, settings=settings)

    def anchor_append() -> None:
        for i in range(n):
            plain.create("audit", f"{i:012d}", {"actor": "automation", "action": "step", "details": {"i": i}})

    ours, anchor = timed(append), timed(anchor_append)
    rows.append((f"{name}: append {n}", "plain create", ours, anchor))
    ok: list[bool] = []
    ours = timed(lambda: ok.append(verify(chained, settings).ok))
    anchor = timed(lambda: list(iter_entries(chained)))
    assert ok == [True]
    rows.append((f"{name}: verify {n}", "read back", ours, anchor))


def synthetic(n: int) -> dict[str, list[dict[str, Any]]]:
    base = datetime(2026, 11, 1, tzinfo=UTC)
    alerts, runs = [], []
    for i in range(n):
        t = base + timedelta(minutes=i)
        iso = t.isoformat().replace("+00:00", "Z")
        alerts.append({"id": f"a{i}", "@timestamp": iso, "first_event_time": iso, "rule": {"id": f"r{i % 40}"}})
        done = (t + timedelta(seconds=30)).isoformat().replace("+00:00", "Z")
        runs.append(
            {
                "id": f"run{i}",
                "playbook": {"name": "block-ssh"},
                "alert_id": f"a{i}",
                "status": "succeeded",
                "created_at": iso,
                "finished_at": done,
                "steps": {
                    "block": {
                        "uses": "hosts.block_ip",
                        "status": "succeeded",
                        "started_at": iso,
                        "finished_at": done,
                        "instances": [{"key": "ip", "status": "succeeded", "result": {"ok": True, "verified": True}}],
                    }
                },
            }
        )
    return {"alerts": alerts, "runs": runs, "approvals": [], "verdicts": []}


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    rows: list[tuple[str, str, float, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        k = iter(range(10))
        bench_store("sqlite", lambda: SQLiteStore(Path(tmp) / f"s{next(k)}.sqlite3"), n, rows)
    try:
        from soar.connections import elasticsearch_client
        from soar.store.elastic import ElasticsearchStore

        client = elasticsearch_client(load_settings(), request_timeout=60)
        prefixes: list[str] = []

        def make_es() -> Store:
            prefixes.append(f"soar-bench-{uuid.uuid4().hex[:8]}")
            return ElasticsearchStore(client, prefixes[-1])

        try:
            bench_store("elasticsearch", make_es, max(n // 5, 50), rows)
        finally:
            for p in prefixes:
                client.options(ignore_status=404).indices.delete(index=f"{p}-state-*")
                client.options(ignore_status=404).indices.delete_index_template(name=f"{p}-state")
    except Exception as exc:  # Elasticsearch down: the embedded rows still stand
        print(f"(elasticsearch skipped: {type(exc).__name__}: {exc})")
    data = synthetic(10 * n)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    metrics_s = timed(lambda: period_metrics(**data, start=start, end=start + timedelta(days=60)))  # type: ignore[arg-type]
    print(f"{'measure':34} {'anchor':14} {'ours s':>9} {'anchor s':>9} {'ratio':>7}")
    for label, anchor_name, ours, anchor in rows:
        print(f"{label:34} {anchor_name:14} {ours:9.3f} {anchor:9.3f} {ours / anchor:6.2f}x")
    print(f"{'metrics over ' + str(10 * n) + ' incidents':34} {'(goal 5 s)':14} {metrics_s:9.3f}")


if __name__ == "__main__":
    main()
