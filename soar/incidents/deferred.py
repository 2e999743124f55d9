"""Attaching alerts to incidents off detection's path, for a process with no playbook engine to hand them to.

A worker attaches each alert it handles (``soar.tasks.playbooks.handle_alert``), after its runs start. A
detector with no engine (a bare scheduler, the detection benchmark) attached them inside its cycle: on the
Elasticsearch store that is about eight requests and 0.25–0.5 s an alert, so a burst of alerts made every
cycle late (measured: at two alerts a second, 500 rules completed no cycle). Here they queue for one
background thread per store instead; :meth:`Attacher.drain` waits for it (shutdown, tests). Attaching is
order-free and idempotent (:mod:`soar.incidents.attach`), so the thread changes when, never what. An alert
still queued when the process dies is attached by the next one's :func:`sweep` at start: the alerts of the
last incident window that no incident holds.
"""

from __future__ import annotations

import logging
import queue
import threading
from datetime import UTC, datetime, timedelta

from soar.config import Settings
from soar.incidents.attach import MEMBERS, attach_quietly
from soar.records.alert import KIND as ALERTS
from soar.store import Range, Store

log = logging.getLogger(__name__)

SWEEP_LIMIT = 10_000  # alerts a start-up sweep looks at


class Attacher:
    """One background thread attaching queued alert ids to their incidents, in arrival order."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self.queue: queue.Queue[str] = queue.Queue()
        self.thread = threading.Thread(target=self._run, name="soar-incidents", daemon=True)
        self.thread.start()

    def put(self, alert_id: str) -> None:
        self.queue.put(alert_id)

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until every alert queued so far is attached (or given up on); False if ``timeout`` ran out."""
        done = threading.Event()

        def wait() -> None:
            self.queue.join()
            done.set()

        threading.Thread(target=wait, name="soar-incidents-drain", daemon=True).start()
        return done.wait(timeout)

    def _run(self) -> None:
        while True:
            alert_id = self.queue.get()
            try:
                attach_quietly(self.store, self.settings, alert_id)  # logs its own failure, never raises
            finally:
                self.queue.task_done()


_lock = threading.Lock()
_attachers: dict[int, Attacher] = {}


def attacher_for(store: Store, settings: Settings) -> Attacher:
    """The process's attacher for this store (one thread per store object)."""
    with _lock:
        found = _attachers.get(id(store))
        if found is None or found.store is not store:
            found = _attachers[id(store)] = Attacher(store, settings)
        return found


def sweep(store: Store, settings: Settings, now: datetime | None = None) -> int:
    """Attach the alerts of the last incident window that no incident holds (a process died with them queued)."""
    now = now or datetime.now(UTC)
    since = (now - timedelta(seconds=settings.incident_window)).isoformat().replace("+00:00", "Z")
    recent = [r.id for r in store.find(ALERTS, {"@timestamp": Range(gte=since)}, limit=SWEEP_LIMIT)]
    held: set[str] = set()
    for start in range(0, len(recent), 500):
        chunk = recent[start : start + 500]
        held |= {str(r.doc.get("alert_id")) for r in store.find(MEMBERS, {"alert_id": chunk}, limit=len(chunk))}
    missing = [a for a in recent if a not in held]
    for alert_id in missing:
        attach_quietly(store, settings, alert_id)
    if missing:
        log.info("attached %d alerts no incident held (queued when a process stopped)", len(missing))
    return len(missing)
