"""A run held under its lease, and what one advance tells its caller to do next."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Literal

from soar.alerts import utcnow_iso
from soar.playbooks import events
from soar.playbooks.records import RUNS
from soar.playbooks.runtime import Runtime
from soar.store import Record

LEASE_MARGIN = 5.0  # how far past a holder's latest write its lease reaches (and past an attempt's timeout)


@dataclass(frozen=True)
class Next:
    """What the caller should do after one advance."""

    kind: Literal["continue", "retry", "paused", "done", "busy"]
    delay: float = 0.0


class HeldRun:
    """The run document held under its lease; every save is an optimistic write that renews the lease.

    A Conflict on save means another worker took the run over (the lease ran out): ``advance`` stands down.

    ``lock`` serialises the document between the threads of a parallel for_each batch: whoever
    changes ``doc`` (an instance of it included) or saves, publishes or extends the lease holds it.
    """

    def __init__(self, rt: Runtime, rec: Record, owner: str) -> None:
        self.rt = rt
        self.doc = rec.doc
        self.version = rec.version
        self.owner = owner
        self.lock = threading.RLock()

    @property
    def id(self) -> str:
        return str(self.doc["id"])

    def save(self) -> None:
        with self.lock:
            if self._lease_until():  # a holder still writing is alive: its lease stays ahead of its records
                self.extend_lease(LEASE_MARGIN)
            self.doc["updated_at"] = utcnow_iso()
            self.version = self.rt.store.update(RUNS, self.id, self.doc, version=self.version).version

    def extend_lease(self, seconds: float) -> None:
        """Hold the run ``seconds`` more, never less than already promised (to another attempt of the batch)."""
        with self.lock:
            self.doc["lease"] = {"owner": self.owner, "until": max(self._lease_until(), time.time() + seconds)}

    def _lease_until(self) -> float:
        lease = self.doc.get("lease")
        return float(lease["until"]) if lease and lease.get("owner") == self.owner else 0.0

    def publish(self, event_type: events.EventType, **extra: Any) -> None:
        with self.lock:  # in order, as one at a time would (eager mode calls the notifier right here)
            events.publish(self.rt.settings, self.id, events.make_event(event_type, self.doc, **extra))
