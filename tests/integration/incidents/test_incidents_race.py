"""Exactly once on both stores: writers attaching the same alerts at once, each in its own order (two schedulers
and a webhook racing), make the incidents one writer makes alone — one live incident per group, every alert
counted once — and they are the grouping's partition of the alerts."""

from __future__ import annotations

import random
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from soar.config import Settings
from soar.incidents import KIND, MEMBERS, attach, live_id
from soar.incidents.grouping import alert_time_ms, partition
from soar.store import Store
from soar.store.elastic import ElasticsearchStore
from soar.store.sqlite import SQLiteStore

MINUTE = 60_000


@pytest.fixture(params=["sqlite", "elasticsearch"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        s: Store = SQLiteStore(tmp_path / "state.sqlite3")
        yield s
        s.close()
        return
    es = request.getfixturevalue("es")
    prefix = f"soar-test-{uuid.uuid4().hex[:10]}"
    yield ElasticsearchStore(es, prefix)
    es.options(ignore_status=404).indices.delete(index=f"{prefix}-state-*")
    es.options(ignore_status=404).indices.delete_index_template(name=f"{prefix}-state")


def _alerts(rng: random.Random, n: int) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        minute = rng.randrange(0, 240)
        host = rng.choice(["web1", "web2", None])
        out.append({
            "id": f"race{i:03d}" + "0" * 33,
            "@timestamp": f"2026-12-01T{10 + minute // 60:02d}:{minute % 60:02d}:{rng.randrange(60):02d}.000Z",
            "rule": {"id": "r", "title": "R", "level": rng.choice(["low", "high"])},
            "host": {"name": host} if host else {},
            "user": {"name": rng.choice(["bob", "eve"])},
        })  # fmt: skip
    return out


def test_racing_writers_make_each_incident_once(store: Store, settings: Settings) -> None:
    rng = random.Random(2026)
    alerts = _alerts(rng, 40)
    for a in alerts:
        store.put("alerts", a["id"], a)
    orders = [rng.sample(alerts, len(alerts)) for _ in range(4)]  # every writer attaches every alert
    errors: list[BaseException] = []
    start = threading.Barrier(len(orders))

    def writer(order: list[dict[str, Any]]) -> None:
        try:
            start.wait()
            for a in order:
                attach(store, settings, a)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(o,)) for o in orders]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors

    live = store.find(KIND, {"merged_into": None}, limit=1000)
    got = sorted(
        sorted(m.id for m in store.find(MEMBERS, {"incident_id": [r.id, *r.doc["absorbed"]]}, limit=1000)) for r in live
    )
    window = round(settings.incident_window * 1000)
    keys: dict[tuple[str, str], list[tuple[int, str]]] = {}
    for a in alerts:
        key = ("host.name", a["host"]["name"]) if a["host"] else ("user.name", a["user"]["name"])
        keys.setdefault(key, []).append((alert_time_ms(a), a["id"]))
    want = sorted(sorted(group) for points in keys.values() for group in partition(points, window))
    assert got == want  # the batch grouping, whatever the interleaving
    assert sum(r.doc["alert_count"] for r in live) == len(alerts)  # each alert counted once
    times = {a["id"]: alert_time_ms(a) for a in alerts}
    for r in live:  # each live incident's count and span are its own alerts'
        members = [times[m.id] for m in store.find(MEMBERS, {"incident_id": [r.id, *r.doc["absorbed"]]}, limit=1000)]
        assert r.doc["alert_count"] == len(members)
        assert (alert_time_ms({"@timestamp": r.doc["first_at"]}), alert_time_ms({"@timestamp": r.doc["last_at"]})) == (
            min(members), max(members),
        )  # fmt: skip
    assert all(live_id(store, store.get(MEMBERS, a["id"]).doc["incident_id"]) in {r.id for r in live} for a in alerts)  # type: ignore[union-attr]
    creations = [r.doc["target"] for r in store.find("audit", {"action": "incident.created"}, limit=1000)]
    assert len(creations) == len(set(creations))  # each incident created by one writer
