"""Time as a port: the engine asks a ``Clock`` for now and for a wait, never ``time`` itself.

``SystemClock`` is the wall clock. ``FakeClock`` is a clock a test moves: ``sleep`` advances it at
once, so a retry's backoff, a lease running out or an approval's deadline pass without waiting on the
wall clock. Both give the time as epoch seconds (``now``) and as the ISO text records carry (``iso``),
from the same reading, so a record's timestamps and the engine's comparisons agree.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Epoch seconds."""
        ...

    def sleep(self, seconds: float) -> None: ...


def iso(clock: Clock) -> str:
    """The clock's now as records write it (``2026-12-06T20:11:19.123Z``)."""
    return datetime.fromtimestamp(clock.now(), UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class SystemClock:
    """The wall clock."""

    def now(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class FakeClock:
    """A clock that moves only when told (``advance``) or slept on; safe to share between threads."""

    def __init__(self, start: float | None = None) -> None:
        self._now = time.time() if start is None else start
        self._lock = threading.Lock()
        self.slept: list[float] = []  # every wait asked for, in order: what a test asserts instead of timing

    def now(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += max(0.0, seconds)

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.slept.append(seconds)
            self._now += max(0.0, seconds)


SYSTEM = SystemClock()
