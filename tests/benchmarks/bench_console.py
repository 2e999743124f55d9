"""Console benchmark (not a test): the alert queue page with 100,000 alerts in the store, beside the API's list.

For each store (the embedded SQLite store; Elasticsearch when it is up) 100,000 alerts are written
(hosts web1/web2/stage1 and hosts outside the inventory, a mix of levels and statuses over 30 days),
then the queue page (``GET /console/alerts`` with a session cookie, the whole ASGI stack in process)
is requested for several filters, by an unscoped admin and by an approver scoped to env=prod,
beside the API's list endpoint (``GET /alerts?limit=50``, bearer token) as the anchor.
Goal: ≤ 300 ms p95 per page on 2 cores. Printed met/missed, never asserted.

Run: ``python -m tests.benchmarks.bench_console [N]`` (N alerts, default 100000).
"""

from __future__ import annotations

import re
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

GOAL_MS = 300.0
REQUESTS = 30
WARMUP = 3
HOSTS = ("web1", "web1", "web2", "stage1", "db9", "app7")  # db9, app7: not in the inventory (unscoped only)
LEVELS = ("low", "medium", "medium", "high", "high", "critical")
STATUSES = ("open",) * 7 + ("acknowledged",) * 2 + ("closed",)
PAGES = (
    ("queue (newest 50)", ""),
    ("status=open&level=critical", "?status=open&level=critical"),
    ("host=web2", "?host=web2"),
    ("rule=bench-rule-7&sort=severity", "?rule=bench-rule-7&sort=severity"),
    ("text q=203.0.113.77", "?q=203.0.113.77"),
)


def alerts(n: int) -> dict[str, dict[str, Any]]:
    start = datetime(2026, 11, 1, tzinfo=UTC)
    out: dict[str, dict[str, Any]] = {}
    for i in range(n):
        at = (start + timedelta(seconds=i * 26)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        alert_id = f"{uuid.UUID(int=i * 7919 + 17).hex}"
        rule, level = i % 20, LEVELS[(i // 7) % len(LEVELS)]
        out[alert_id] = {
            "id": alert_id,
            "@timestamp": at,
            "first_event_time": at,
            "rule": {
                "id": f"bench-rule-{rule}",
                "title": f"Bench rule {rule}",
                "level": LEVELS[(i // 7) % len(LEVELS)],
            },
            "severity": level,
            "risk_score": 47,
            "origin": "soar",
            "status": STATUSES[i % len(STATUSES)],
            "host": {"name": HOSTS[i % len(HOSTS)]},
            "user": {"name": f"user{i % 50}"},
            "source": {"ip": f"203.0.113.{i % 250}"},
            "events": [{"process": {"command_line": f"/usr/bin/curl http://203.0.113.{i % 250}/x"}}],
        }
    return out


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def timings(fn: Callable[[], Any]) -> list[float]:
    for _ in range(WARMUP):
        fn()
    out = []
    for _ in range(REQUESTS):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def signed_in(app: Any, token: str) -> Any:
    from fastapi.testclient import TestClient

    client = TestClient(app)
    form = client.get("/console/login").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', form)
    assert csrf, "no sign-in form"
    done = client.post("/console/login", data={"csrf": csrf.group(1), "token": token}, follow_redirects=False)
    assert done.status_code == 303, done.text
    return client


def bench_store(name: str, settings_for: Callable[[], Any], n: int, rows: list[tuple[Any, ...]]) -> None:
    from fastapi.testclient import TestClient

    from soar.api.app import create_app
    from soar.store import open_store
    from tests.integration.api.lab_content import TOKENS

    settings = settings_for()
    store = open_store(settings)
    docs = alerts(n)
    t0 = time.perf_counter()
    items = list(docs.items())
    for i in range(0, n, 5000):
        store.put_many("alerts", dict(items[i : i + 5000]))
    refresh = getattr(store, "refresh", None)
    if callable(refresh):
        refresh("alerts")
    print(f"{name}: {n} alerts written in {time.perf_counter() - t0:.1f} s", flush=True)
    app = create_app(settings)
    api = TestClient(app)
    bearer = {"Authorization": f"Bearer {TOKENS['admin']}"}
    anchor = timings(lambda: api.get("/alerts", params={"limit": 50}, headers=bearer).raise_for_status())
    for who, token in (("admin", TOKENS["admin"]), ("approver env=prod", TOKENS["approver"])):
        client = signed_in(app, token)
        for label, query in PAGES:
            got = client.get("/console/alerts" + query)
            assert got.status_code == 200, got.text[:300]
            shown = got.text.count('<tr class="alert')
            ms = timings(lambda c=client, q=query: c.get("/console/alerts" + q).raise_for_status())  # type: ignore[misc]
            p50, p95 = statistics.median(ms), percentile(ms, 0.95)
            rows.append((name, who, label, shown, p50, p95, percentile(anchor, 0.95)))
    store.close()


def main(argv: list[str] | None = None) -> int:
    from soar.config import load_settings
    from tests.integration.api.lab_content import write_content

    args = argv if argv is not None else sys.argv[1:]
    n = int(args[0]) if args else 100_000
    rows: list[tuple[Any, ...]] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "content"
        tokens = write_content(root)
        common = {"content_root": root, "api_tokens_file": tokens, "celery_eager": True}
        bench_store("sqlite", lambda: load_settings(**common, state_dir=Path(tmp) / "state"), n, rows)
        prefix = f"soar-bench-{uuid.uuid4().hex[:8]}"
        try:
            from soar.connections import elasticsearch_client

            es_settings = load_settings(
                **common, state_dir=Path(tmp) / "es", store="elasticsearch", index_prefix=prefix
            )
            client = elasticsearch_client(es_settings, request_timeout=120)
            try:
                bench_store("elasticsearch", lambda: es_settings, n, rows)
            finally:
                client.options(ignore_status=404).indices.delete(index=f"{prefix}-state-*")
                client.options(ignore_status=404).indices.delete_index_template(name=f"{prefix}-state")
        except Exception as exc:  # Elasticsearch down: the embedded rows still stand
            print(f"(elasticsearch skipped: {type(exc).__name__}: {exc})")
    print(f"\nqueue page, {n} alerts in the store; {REQUESTS} requests each; anchor: GET /alerts?limit=50 (API, p95)")
    head = ("store", "principal", "page", "rows", "p50 ms", "p95 ms", "API p95", "ratio")
    print("{:13} {:18} {:32} {:>4} {:>7} {:>7} {:>8} {:>6}  goal".format(*head))
    for store, who, label, shown, p50, p95, anchor in rows:
        verdict = "met" if p95 <= GOAL_MS else "MISSED"
        ratio = p95 / anchor if anchor else float("nan")
        print(
            f"{store:13} {who:18} {label:32} {shown:4d} {p50:7.1f} {p95:7.1f} {anchor:8.1f} {ratio:5.2f}x  "
            f"≤ {GOAL_MS:.0f} ms p95: {verdict}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
