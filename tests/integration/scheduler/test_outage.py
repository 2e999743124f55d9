"""Elasticsearch unreachable mid-stream (a cut TCP proxy, not the shared server): gap recorded, then filled, 0 missed.

Two faults: refused (the proxy closed: connections refused, open ones reset) and black-holed (connections
accepted, nothing ever answered). A black hole costs a tick at most its request budget
(``Settings.cycle_request_timeout``, sized to the detection interval), so ticks go on at that pace through it.

Under CI=true the hardest case (Elasticsearch store, black hole) lasts 60 s, as the issue asks, the others
15 s (the whole suite must stay well under 30 minutes); locally ``TEST_ES_OUTAGE_SECONDS`` (default 8).
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

import pytest
from elasticsearch import Elasticsearch

from soar.config import Settings, load_settings
from soar.connections import elasticsearch_client
from soar.scheduler.cycle import Detector
from soar.scheduler.loop import MemoryLeases, Scheduler
from soar.scheduler.planning import parse_time
from soar.scheduler.service import run_rule_ids
from soar.scheduler.state import CHECKPOINTS, GAPS
from soar.store import Store
from soar.store.elastic import ElasticsearchStore
from soar.store.sqlite import SQLiteStore
from tests.integration.scheduler.conftest import wait_for
from tests.integration.scheduler.proxy import CuttableProxy
from tests.integration.scheduler.streaming import EventStream
from tests.services import IN_CI

LONG_OUTAGE = 60.0 if IN_CI else float(os.environ.get("TEST_ES_OUTAGE_SECONDS", "8"))
SHORT_OUTAGE = 15.0 if IN_CI else LONG_OUTAGE


def _outage_seconds(backend: str, fault: str) -> float:
    return LONG_OUTAGE if (backend, fault) == ("elasticsearch", "black hole") else SHORT_OUTAGE


def alerted_event_ids(store: Store) -> list[str]:
    return [e for r in store.find("alerts", limit=100_000) for e in r.doc["event_ids"]]


@pytest.mark.parametrize("fault", ["refused", "black hole"])
@pytest.mark.parametrize("backend", ["sqlite", "elasticsearch"])
def test_outage_is_recorded_as_a_gap_and_filled(
    es: Elasticsearch,
    events_index: str,
    content: Path,
    store: SQLiteStore,
    write_rule: Callable[..., str],
    service_settings: Settings,
    backend: str,
    fault: str,
) -> None:
    """With the Elasticsearch store (production) the outage takes the store away too: nothing is
    written while it lasts, and the gap is recorded when it ends (the checkpoint is as old as the outage)."""
    outage_seconds = _outage_seconds(backend, fault)
    rule_id = write_rule(interval="1s", lookback="5s")
    target = urlparse(service_settings.elasticsearch_url)
    proxy = CuttableProxy(target.hostname or "127.0.0.1", target.port or 9200).start()
    settings = load_settings(
        content_root=content,
        state_dir=content / "state",
        events_index=events_index,
        elasticsearch_url=proxy.url,
        elasticsearch_timeout=10.0,  # what interactive commands wait; a cycle's requests wait their budget
        celery_eager=True,
        detection_interval=1.0,
        detection_ingest_delay=1.0,
        detection_min_gap=2.0,  # the outage is short locally: still a gap
    )
    assert settings.cycle_request_timeout == 3.0
    settings = settings.for_cycles()  # as the scheduler's and the workers' clients are built (soar.scheduler.runtime)
    client = elasticsearch_client(settings)
    prefix = f"soar-test-{uuid.uuid4().hex[:10]}"
    # The scheduler's store goes through the proxy; the test reads the same store directly.
    sched_store: Store = store if backend == "sqlite" else ElasticsearchStore(client, prefix)
    view: Store = store if backend == "sqlite" else ElasticsearchStore(es, prefix)
    detector = Detector(settings, sched_store, client, lambda _id: None)
    leases = MemoryLeases()

    def send(ids: list[str]) -> None:
        try:
            run_rule_ids(settings, detector, ids)
        finally:
            leases.release(ids)

    stop = threading.Event()
    scheduler = Scheduler(settings, sched_store, leases, send)
    loop = threading.Thread(target=scheduler.run_forever, args=(stop, 0.5), daemon=True)
    loop.start()
    try:
        with EventStream(es, events_index) as stream:
            assert wait_for(lambda: len(alerted_event_ids(view)) >= 4, 20), "no alerts before the outage"
            assert wait_for(lambda: view.get(CHECKPOINTS, rule_id) is not None, 10)
            before = view.get(CHECKPOINTS, rule_id)
            assert before is not None
            if fault == "refused":
                proxy.cut()
            else:
                proxy.black_hole()
            cut_at, ticks = time.time(), scheduler.ticks
            time.sleep(outage_seconds)
            # a hung request costs a tick its budget, not more: the ticks go on (before: 10 s and no end to it)
            budget = settings.elasticsearch_timeout + 1.0  # one request's timeout, then the tick's pause
            assert scheduler.ticks - ticks >= int(outage_seconds // budget), (scheduler.ticks, ticks)
            if backend == "sqlite":  # the store is up: the failing runs are recorded
                ck = view.get(CHECKPOINTS, rule_id)
                assert ck is not None and ck.doc["error_kind"] in ("unavailable", "timeout"), ck
            if fault == "refused":
                proxy.restore()
            else:
                proxy.restore_hole()
            time.sleep(3)
        assert not stream.errors
        expected = sorted(stream.ids)
        assert wait_for(lambda: sorted(alerted_event_ids(view)) == expected, 30), set(expected) - set(
            alerted_event_ids(view)
        )
        gaps = view.find(GAPS, {"rule_id": rule_id})
        assert gaps, "the outage was not recorded as a gap"
        assert wait_for(lambda: all(g.doc["status"] == "filled" for g in view.find(GAPS)), 10)
        # One outage, one gap: extended cycle by cycle, not one per failed cycle (a cycle late after it is its own).
        outage = [g.doc for g in view.find(GAPS) if (parse_time(g.doc["start"]) or 0.0) < cut_at]
        assert len(outage) == 1, outage
        assert outage[0]["seconds"] >= outage_seconds - 2
    finally:
        stop.set()
        loop.join(timeout=15)
        client.close()
        proxy.close()
    ids = alerted_event_ids(view)
    assert len(ids) == len(set(ids)) == len(expected)  # 0 missed, 0 duplicate
    after = view.get(CHECKPOINTS, rule_id)
    assert after is not None and after.doc["alerts_total"] == view.count("alerts")  # counted exactly once each
    assert (parse_time(after.doc["end"]) or 0.0) >= (parse_time(before.doc["end"]) or 0.0)
