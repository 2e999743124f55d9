"""Per-target locks: two runs never act on the same host or account at once.

Redis (``SET key owner NX PX``) when a broker is configured; the store's
create-only write in the embedded (eager) mode, where there may be no Redis.
The owner is the run id, so a run resuming after a crash re-enters its own locks. An action still
running past its timeout is not the run any more: its locks pass to it (:func:`hold_while_alive`), so
neither a retry of the same run nor another run acts on the target until its thread has stopped.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Sequence
from typing import Any, Protocol

from soar.clock import SYSTEM, Clock
from soar.config import Settings
from soar.dispatch import dispatcher_for
from soar.store import Conflict, Store

PREFIX = "soar:lock:"
LOCKS = "locks"

log = logging.getLogger("soar.playbooks")

_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end
"""
_TRANSFER = """
if redis.call('get', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('set', KEYS[1], ARGV[2], 'PX', ARGV[3])
"""


class Locks(Protocol):
    def acquire(self, keys: Sequence[str], owner: str, ttl: float) -> bool: ...

    def release(self, keys: Sequence[str], owner: str) -> None: ...

    def transfer(self, keys: Sequence[str], owner: str, to: str, ttl: float) -> None:
        """Give the locks ``owner`` holds to ``to`` (for ``ttl``); one it no longer holds stays as it is."""
        ...


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

    def transfer(self, keys: Sequence[str], owner: str, to: str, ttl: float) -> None:
        for key in keys:
            self.client.eval(_TRANSFER, 1, PREFIX + key, owner, to, int(ttl * 1000))


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

    def transfer(self, keys: Sequence[str], owner: str, to: str, ttl: float) -> None:
        for key in keys:
            self.store.mutate(
                LOCKS,
                key,
                lambda doc: {"owner": to, "until": self.clock.now() + ttl} if doc.get("owner") == owner else None,
                retries=3,
            )


def hold_while_alive(locks: Locks, keys: Sequence[str], owner: str, thread: threading.Thread, ttl: float) -> None:
    """The target locks of an action that outlived its timeout: they pass from the run to the action's thread,
    renewed while it runs and released when it ends (with its process, they run out after ``ttl``)."""
    stray = f"{owner}:stray:{uuid.uuid4().hex[:8]}"
    locks.transfer(keys, owner, stray, ttl)

    def keep() -> None:
        while True:
            thread.join(ttl / 3)
            try:
                if not thread.is_alive():
                    locks.release(keys, stray)
                    return
                if not locks.acquire(keys, stray, ttl):
                    log.warning("the locks of %s's timed-out action were lost while it still runs", owner)
            except Exception as exc:  # the store or Redis away for a moment: tried again at the next renewal
                log.warning("the locks of %s's timed-out action: %s", owner, exc)

    threading.Thread(target=keep, name="soar-stray-locks", daemon=True).start()


def open_locks(settings: Settings, store: Store, clock: Clock = SYSTEM) -> Locks:
    if dispatcher_for(settings).in_process:  # no worker shares them: the store holds them
        return StoreLocks(store, clock)
    from soar.connections import redis_client

    return RedisLocks(redis_client(settings))
