"""A run held under its lease, and what one advance tells its caller to do next."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Literal

from soar.alerts import utcnow_iso
from soar.playbooks import events, outcomes
from soar.playbooks.records import RUNS, audit
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

    @property
    def dry_run(self) -> bool:
        """Whether what runs now only plans: a run started dry stays a plan; the setting can still force one."""
        return bool(self.doc.get("dry_run")) or self.rt.settings.response_dry_run

    def tick(self) -> int:
        """The run's next event number (saved with the run's next write)."""
        with self.lock:
            return outcomes.tick(self.doc)

    def audit(self, action: str, details: dict[str, Any], *, dry_run: bool | None = None) -> None:
        """An audit entry of this run, saying whether it was a dry run and after which of the run's events."""
        with self.lock:
            dry = self.dry_run if dry_run is None else dry_run
            stamped = {**details, "dry_run": dry, "run_seq": int(self.doc.get("seq") or 0)}
        audit(self.rt.store, self.rt.settings, action, self.id, stamped)

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
