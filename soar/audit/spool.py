"""Audit entries the engine could not append because the state store was out of reach, kept until it is back.

The engine never lets an audit failure half-run a containment, so an entry that found the store down used
to be lost with one error line (seen: ``playbook.run_started`` of runs started during an outage). Here such
an entry is appended to a spool file in the state directory (0600, one JSON line, fsynced, under a lock) with
the time it happened, and :func:`replay` appends the spooled entries to the chain in the order they were
spooled once the store answers again (a worker that finds the store back, the scheduler's chore). A replayed
entry says so: its details carry ``occurred_at`` (when it happened) and ``spooled: true``, since its place in
the chain is when it could be written. Secrets are redacted before the entry touches the disk.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from soar.alerts import utcnow_iso
from soar.audit.redact import configured_secrets, redact
from soar.config import Settings
from soar.store import Store

log = logging.getLogger(__name__)

SPOOL = "audit-spool.jsonl"


def spool_path(settings: Settings) -> Path:
    return settings.state_dir / SPOOL


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def spool(settings: Settings, *, actor: str, action: str, target: str | None, details: dict[str, Any]) -> None:
    """Keep one entry for the chain until the store answers (redacted, with the time it happened)."""
    secrets = configured_secrets(settings)
    entry = {
        "occurred_at": utcnow_iso(),
        "actor": redact(str(actor), secrets),
        "action": str(action),
        "target": None if target is None else redact(str(target), secrets),
        "details": redact(details, secrets),
    }
    path = spool_path(settings)
    line = json.dumps(entry, sort_keys=True, default=str) + "\n"
    with _locked(path):
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)


def pending(settings: Settings) -> int:
    """How many entries wait in the spool."""
    try:
        return sum(1 for line in spool_path(settings).read_text(encoding="utf-8").splitlines() if line.strip())
    except FileNotFoundError:
        return 0


def replay(store: Store, settings: Settings) -> int:
    """Append the spooled entries to the chain, oldest first; each leaves the spool once it is in the chain.
    Stops at the first that cannot be written (the store went away again); returns how many were appended."""
    from soar.audit.chain import record

    path = spool_path(settings)
    if not path.exists():
        return 0
    done = 0
    with _locked(path):
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        try:
            for n, line in enumerate(lines):
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    log.error("%s line %d is not an audit entry; kept aside in %s.bad", path, n + 1, path)
                    with path.with_name(f"{path.name}.bad").open("a", encoding="utf-8") as bad:
                        bad.write(line + "\n")
                    done += 1
                    _rewrite(path, lines[done:])
                    continue
                details = {**entry.get("details", {}), "occurred_at": entry["occurred_at"], "spooled": True}
                record(
                    store,
                    actor=entry["actor"],
                    action=entry["action"],
                    target=entry.get("target"),
                    details=details,
                    settings=settings,
                )
                done += 1
                _rewrite(path, lines[done:])  # only a crash between the append and this rewrite repeats one entry
        except Exception as exc:
            log.warning("audit spool: %d entries wait for the store (%s)", len(lines) - done, exc)
    if done:
        log.info("audit spool: %d entries appended to the chain after the store came back", done)
    return done


def _rewrite(path: Path, lines: list[str]) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, "".join(line + "\n" for line in lines).encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    tmp.replace(path)
