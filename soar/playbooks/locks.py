"""Per-target locks: two runs never act on the same host or account at once.

Redis (``SET key owner NX PX``) when a broker is configured; the store's
create-only write in the embedded (eager) mode, where there may be no Redis.
The owner is the run id, so a run resuming after a crash re-enters its own locks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from soar.clock import SYSTEM, Clock
from soar.config import Settings
from soar.dispatch import dispatcher_for
from soar.store import Conflict, Store

PREFIX = "soar:lock:"
LOCKS = "locks"

_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end
"""


class Locks(Protocol):
    def acquire(self, keys: Sequence[str], owner: str, ttl: float) -> bool: ...

    def release(self, keys: Sequence[str], owner: str) -> None: ...


class RedisLocks:
    def __init__(self, client: Any) -> None:
        self.client = client

    def acquire(self, keys: Sequence[str], owner: str, ttl: float) -> bool:
        taken: list[str] = []
        for key in sorted(set(keys)):
            name = PREFIX + key
            if self.client.set(name, owner, nx=True, px=int(ttl * 1000)):
                taken.append(key)
                continue
            current = self.client.get(name)
            if current is not None and current.decode() == owner:
                self.client.pexpire(name, int(ttl * 1000))
                taken.append(key)
                continue
            self.release(taken, owner)
            return False
        return True

    def release(self, keys: Sequence[str], owner: str) -> None:
        for key in keys:
            self.client.eval(_RELEASE, 1, PREFIX + key, owner)


class StoreLocks:
    def __init__(self, store: Store, clock: Clock = SYSTEM) -> None:
        self.store = store
        self.clock = clock

    def _take(self, key: str, owner: str, ttl: float) -> bool:
        """Take the lock if it is free, run out, or ours already (renewed); False if another holds it."""
        taken = False

        def take(doc: dict[str, Any]) -> dict[str, Any] | None:
            nonlocal taken
            now = self.clock.now()
            taken = doc.get("owner") == owner or float(doc.get("until") or 0) < now
            return {"owner": owner, "until": now + ttl} if taken else None

        try:  # a missing lock reads as a free one (never written as such: ``take`` always takes it)
            self.store.mutate(LOCKS, key, take, create=lambda: {"owner": None, "until": 0}, retries=3)
        except Conflict:  # others keep taking and renewing it: it is not ours
            return False
        return taken

    def acquire(self, keys: Sequence[str], owner: str, ttl: float) -> bool:
        taken: list[str] = []
        for key in sorted(set(keys)):
            if not self._take(key, owner, ttl):
                self.release(taken, owner)
                return False
            taken.append(key)
        return True

    def release(self, keys: Sequence[str], owner: str) -> None:
        for key in keys:
            rec = self.store.get(LOCKS, key)
            if rec is not None and rec.doc.get("owner") == owner:
                self.store.delete(LOCKS, key)


def open_locks(settings: Settings, store: Store, clock: Clock = SYSTEM) -> Locks:
    if dispatcher_for(settings).in_process:  # no worker shares them: the store holds them
        return StoreLocks(store, clock)
    from soar.connections import redis_client

    return RedisLocks(redis_client(settings))
