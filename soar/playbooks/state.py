"""A run held under its lease, and what one advance tells its caller to do next."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Literal

from soar.clock import iso
from soar.playbooks import events
from soar.playbooks.records import RUNS, audit
from soar.playbooks.runtime import RunResources, Runtime
from soar.records import Lease, Run
from soar.store import Record

LEASE_MARGIN = 5.0  # how far past a holder's latest write its lease reaches (and past an attempt's timeout)


@dataclass(frozen=True)
class Next:
    """What the caller should do after one advance."""

    kind: Literal["continue", "retry", "paused", "done", "busy"]
    delay: float = 0.0


class HeldRun:
    """The run held under its lease, as its typed record; every save is an optimistic write that renews the lease.

    A Conflict on save means another worker took the run over (the lease ran out): ``advance`` stands down.

    ``lock`` serialises the record between the threads of a parallel for_each batch: whoever changes
    ``record`` (an instance of it included) or saves, publishes or extends the lease holds it.
    """

    def __init__(self, rt: Runtime, rec: Record, owner: str, record: Run | None = None) -> None:
        self.rt = rt
        self.record = record if record is not None else Run.from_doc(rec.doc, rec.id)
        self.version = rec.version
        self.owner = owner
        self.lock = threading.RLock()
        self.resources = RunResources(rt.store)  # what its actions open; ``advance`` lends it the runtime's for the run

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def dry_run(self) -> bool:
        """Whether what runs now only plans: a run started dry stays a plan; the setting can still force one."""
        return bool(self.record.dry_run) or self.rt.settings.response_dry_run

    def tick(self) -> int:
        """The run's next event number (saved with the run's next write)."""
        with self.lock:
            return self.record.tick()

    def audit(self, action: str, details: dict[str, Any], *, dry_run: bool | None = None) -> None:
        """An audit entry of this run, saying whether it was a dry run and after which of the run's events."""
        with self.lock:
            dry = self.dry_run if dry_run is None else dry_run
            stamped = {**details, "dry_run": dry, "run_seq": self.record.seq or 0}
        audit(self.rt.store, self.rt.settings, action, self.id, stamped)

    def save(self) -> None:
        with self.lock:
            if self._lease_until():  # a holder still writing is alive: its lease stays ahead of its records
                self.extend_lease(LEASE_MARGIN)
            self.record.updated_at = self.now_iso()
            self.version = self.rt.store.update(RUNS, self.id, self.record.to_doc(), version=self.version).version

    def reload(self, rec: Record) -> None:
        """Follow the stored run (after a write by someone else)."""
        with self.lock:
            self.record, self.version = Run.from_doc(rec.doc, rec.id), rec.version

    def extend_lease(self, seconds: float) -> None:
        """Hold the run ``seconds`` more, never less than already promised (to another attempt of the batch)."""
        with self.lock:
            self.record.lease = Lease(self.owner, max(self._lease_until(), self.rt.clock.now() + seconds))

    def now_iso(self) -> str:
        """The runtime clock's now, as the run's records write it."""
        return iso(self.rt.clock)

    def holds_lease(self) -> bool:
        return self.record.lease is not None and self.record.lease.owner == self.owner

    def _lease_until(self) -> float:
        lease = self.record.lease
        return lease.until if lease is not None and lease.owner == self.owner else 0.0

    def publish(self, event_type: events.EventType, **extra: Any) -> None:
        with self.lock:  # in order, as one at a time would (eager mode calls the notifier right here)
            events.publish(self.rt.settings, self.id, events.run_event(event_type, self.record, **extra))
