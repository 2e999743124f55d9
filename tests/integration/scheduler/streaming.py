"""A steady stream of matching events into Elasticsearch, some of them late, for reliability tests."""

from __future__ import annotations

import threading
import time

from elasticsearch import Elasticsearch

from tests.integration.scheduler.conftest import event


class EventStream:
    """Index one matching event every ``period`` seconds; every ``late_every``-th is stamped ``late_by`` s ago."""

    def __init__(
        self, es: Elasticsearch, index: str, *, period: float = 0.25, late_every: int = 5, late_by: float = 4.0
    ) -> None:
        self.es, self.index, self.period, self.late_every, self.late_by = es, index, period, late_every, late_by
        self.ids: list[str] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> EventStream:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            now = time.time()
            ts = now - self.late_by if self.late_every and n % self.late_every == self.late_every - 1 else now
            doc_id = f"s{n:05d}"
            try:
                self.es.index(index=self.index, id=doc_id, document=event(doc_id, ts), refresh=True)
                self.ids.append(doc_id)
            except Exception as exc:  # reported by the test, never silently lost
                self.errors.append(f"{doc_id}: {exc}")
            n += 1
            self._stop.wait(self.period)
