"""A long-running process's own view of its dependencies: one log line per change, capped backoff, heartbeat.

A scheduler or worker that starts while Elasticsearch or Redis is down must not exit or log a line
per tick: it says once that a dependency is down (and why), once when it is back (and after how
long), waits with capped exponential backoff and jitter, and keeps a heartbeat file that a
supervisor reads (``soar services check --process NAME``; docker-compose healthchecks) plus, under
systemd, ``READY=1`` / ``WATCHDOG=1`` on ``$NOTIFY_SOCKET``. Pure but for the clock, the log, the file
and the socket, all injectable.
"""

from __future__ import annotations

import json
import logging
import os
import random
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from soar.private import private_dir, write_private
from soar.urls import mask_url

log = logging.getLogger("soar.liveness")

T = TypeVar("T")
REMIND_EVERY = 300.0
_lock = threading.RLock()  # while a dependency stays down, one reminder line every 5 minutes


def backoff(attempt: int, *, base: float = 0.5, cap: float = 30.0, rng: Callable[[], float] = random.random) -> float:
    """Seconds before retry ``attempt`` (0-based): doubling from ``base`` up to ``cap``, with jitter in [½, 1]."""
    return float(min(cap, base * (2.0 ** min(attempt, 30))) * (0.5 + rng() / 2))


def reason(exc: BaseException) -> str:
    """One line saying why, with any URL's password masked."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return mask_url(f"{type(exc).__name__}: {text}" if text else type(exc).__name__)[:300]


@dataclass
class Dependency:
    """Up or down, since when: logs only on a change (and a reminder every ``REMIND_EVERY`` s while down)."""

    name: str
    clock: Callable[[], float] = time.monotonic
    logger: logging.Logger = field(default=log)
    down_since: float | None = None
    last_reason: str = ""
    _reminded: float = 0.0

    @property
    def up(self) -> bool:
        return self.down_since is None

    def ok(self) -> None:
        with _lock:
            if self.down_since is not None:
                self.logger.warning("%s is back after %.0f s", self.name, self.clock() - self.down_since)
                self.down_since = None
                self.last_reason = ""

    def failed(self, exc: BaseException) -> None:
        with _lock:
            now = self.clock()
            self.last_reason = reason(exc)
            if self.down_since is None:
                self.down_since = self._reminded = now
                self.logger.warning("%s is down: %s (retrying; one line when it is back)", self.name, self.last_reason)
            elif now - self._reminded >= REMIND_EVERY:
                self._reminded = now
                self.logger.warning(
                    "%s still down after %.0f s: %s", self.name, now - self.down_since, self.last_reason
                )

    def to_dict(self) -> dict[str, Any]:
        return {
            "up": self.up,
            "down_for": None if self.up else round(self.clock() - (self.down_since or 0), 1),
            "reason": self.last_reason or None,
        }


_shared: dict[str, Dependency] = {}


def shared(name: str) -> Dependency:
    """The process's one view of a dependency: every part of it waiting on the same one logs through it once."""
    with _lock:
        return _shared.setdefault(name, Dependency(name))


def store_dependency(settings: Any) -> Dependency:
    return shared(f"the state store ({settings.store})")


def wait_for(
    attempt: Callable[[], T],
    dependency: Dependency,
    stop: threading.Event,
    *,
    cap: float = 30.0,
    on_wait: Callable[[], None] | None = None,
) -> T | None:
    """``attempt()`` until it succeeds (its value) or ``stop`` is set (None), backing off between tries."""
    n = 0
    while not stop.is_set():
        try:
            value = attempt()
        except Exception as exc:  # the dependency is down: say it once, wait, try again
            dependency.failed(exc)
            if on_wait is not None:
                on_wait()
            stop.wait(backoff(n, cap=cap))
            n += 1
            continue
        dependency.ok()
        return value
    return None


def sd_notify(message: str) -> bool:
    """Tell systemd (``Type=notify``, ``WatchdogSec=``) ``READY=1`` / ``WATCHDOG=1``; False when not under it."""
    address = os.environ.get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):  # an abstract socket
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(message.encode(), address)
    except OSError:
        return False
    return True


def heartbeat_path(state_dir: Path, process: str, host: str | None = None) -> Path:
    """One file per process kind and host: replicas sharing a state volume (compose) do not overwrite each other."""
    return state_dir / "run" / f"{process}@{host or socket.gethostname()}.json"


@dataclass
class Heartbeat:
    """The process's liveness and readiness, in a file a supervisor reads and on systemd's socket."""

    process: str
    path: Path
    clock: Callable[[], float] = time.time
    ready: bool = False
    started: float = field(default_factory=time.time)
    _told_ready: bool = False

    def beat(self, *, ready: bool, dependencies: list[Dependency]) -> None:
        self.ready = ready
        doc = {
            "process": self.process,
            "pid": os.getpid(),
            "ready": ready,
            "started_at": self.started,
            "beat_at": self.clock(),
            "dependencies": {d.name: d.to_dict() for d in dependencies},
        }
        private_dir(self.path.parent)
        fresh = self.path.with_name(f".{self.path.name}.{os.getpid()}.{threading.get_ident()}")
        fresh.unlink(missing_ok=True)
        write_private(fresh, json.dumps(doc, sort_keys=True).encode())
        fresh.replace(self.path)  # a reader sees the old beat or the new one, never half of one
        if ready and not self._told_ready:
            self._told_ready = sd_notify("READY=1")
        sd_notify("WATCHDOG=1")


def read_heartbeat(path: Path, *, max_age: float, now: float | None = None) -> tuple[bool, str]:
    """(healthy, why) from a heartbeat file: fresh (``max_age`` s) and ready."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return False, f"no heartbeat at {path} (is the process running with this state_dir?)"
    except (OSError, ValueError) as exc:
        return False, f"{path}: unreadable heartbeat ({type(exc).__name__})"
    age = (time.time() if now is None else now) - float(doc.get("beat_at", 0))
    if age > max_age:
        return False, f"{doc.get('process')}: last heartbeat {age:.0f} s ago (over {max_age:.0f} s)"
    down = {k: v for k, v in (doc.get("dependencies") or {}).items() if not v.get("up")}
    if not doc.get("ready"):
        why = "; ".join(f"{k} down for {v.get('down_for')} s: {v.get('reason')}" for k, v in down.items())
        return False, f"{doc.get('process')}: alive, not ready ({why or 'starting'})"
    return True, f"{doc.get('process')}: ready (pid {doc.get('pid')}, heartbeat {age:.0f} s ago)"
