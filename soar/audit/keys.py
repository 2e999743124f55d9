"""The audit chain's key and its checkpoint: both kept outside the store they protect.

- **Key.** ``audit_hmac_key`` when configured; otherwise ``<state_dir>/audit/hmac.key``, generated
  on the first append (32 random bytes as hex; file 0600 in a 0700 folder, created atomically so
  racing processes end up with one key). The key is never printed or logged. Verification never
  generates one: without a key it can only check the links, not the contents ("unkeyed").
- **Checkpoint.** Append-only JSON lines (file 0600), by default ``<state_dir>/audit/checkpoint.log``
  (``audit_checkpoint_file``): ``{"at", "store", "seq", "hash", "mac"}``, the mac an HMAC over the
  store's identity, the entry count and the last hash. A process writes one after every
  ``audit_checkpoint_every`` appends, ``audit_checkpoint_interval`` seconds after an append not yet
  checkpointed (a timer), and at exit — never a store round trip.
- **A copy elsewhere.** With ``audit_checkpoint_syslog`` (a Unix datagram socket such as ``/dev/log``, or
  ``host:port`` for UDP) every checkpoint line is also sent to syslog as ``soar-audit-checkpoint: {json}``
  (facility authpriv), so a log collector keeps a copy an attacker on this host cannot rewrite.
  ``soar audit verify --checkpoints FILE`` reads such a collected file (other lines are skipped) beside
  the local one: deleting the local file then hides nothing.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from soar.alerts import utcnow_iso
from soar.config import Settings
from soar.errors import ConfigError
from soar.private import private_dir

KEY_FILE = "hmac.key"
CHECKPOINT_FILE = "checkpoint.log"
SYSLOG_TAG = "soar-audit-checkpoint"
SYSLOG_PRI = 10 * 8 + 5  # facility authpriv, severity notice (RFC 3164)

_lock = threading.Lock()
_keys: dict[str, bytes] = {}


def audit_dir(settings: Settings) -> Path:
    return settings.state_dir / "audit"


def key_path(settings: Settings) -> Path:
    return audit_dir(settings) / KEY_FILE


def checkpoint_path(settings: Settings) -> Path:
    return settings.audit_checkpoint_file or audit_dir(settings) / CHECKPOINT_FILE


def configured_key(settings: Settings) -> bytes | None:
    if settings.audit_hmac_key is None:
        return None
    value = settings.audit_hmac_key.get_secret_value()
    return value.encode() if value else None


def chain_key(settings: Settings, *, create: bool) -> bytes | None:
    """The key the chain is sealed with: the configured one, else the state directory's (made if ``create``)."""
    key = configured_key(settings)
    if key is not None:
        return key
    path = key_path(settings)
    cache = str(path.absolute())
    cached = _keys.get(cache)
    if cached is not None:
        return cached
    with _lock:
        key = _read_key(path)
        if key is None and create:
            key = _create_key(path)
        if key is not None:
            _keys[cache] = key
        return key


def sealing_key(settings: Settings) -> bytes:
    """The key appends seal with: the configured one, else the state directory's, generated on first use."""
    key = chain_key(settings, create=True)
    assert key is not None
    return key


def generated_keys() -> list[str]:
    """The generated keys this process has loaded (for redaction; they are secrets like any other)."""
    return [k.decode() for k in _keys.values()]


def _read_key(path: Path) -> bytes | None:
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the audit HMAC key: {type(exc).__name__}") from None
    if not text:
        raise ConfigError(f"{path}: the audit HMAC key file is empty")
    return text.encode()


def _create_key(path: Path) -> bytes:
    """Write a fresh key to a private temporary file, then link it into place: all or nothing, one winner."""
    try:
        private_dir(path.parent)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="ascii") as fh:
                fh.write(secrets.token_hex(32) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            with contextlib.suppress(FileExistsError):  # another process won: use its key
                os.link(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot create the audit HMAC key: {exc.strerror or exc}") from None
    key = _read_key(path)
    assert key is not None
    return key


def mac(key: bytes, *parts: object) -> str:
    return hmac.new(key, "\n".join(str(p) for p in parts).encode(), hashlib.sha256).hexdigest()


def head_mac(key: bytes, seq: int, digest: str) -> str:
    return mac(key, "soar-audit-head", seq, digest)


def store_id(store: Any) -> str:
    """Which store a checkpoint line is about: the SQLite file, or the Elasticsearch index prefix."""
    path = getattr(store, "path", None)
    if path is not None:
        return f"sqlite:{Path(path).absolute()}"
    prefix = getattr(store, "prefix", None)
    if prefix is not None:
        return f"elasticsearch:{prefix}"
    return type(store).__name__


# -- the checkpoint


@dataclass(frozen=True)
class Checkpoint:
    line: int
    at: str
    store: str
    seq: int
    hash: str
    sealed: bool  # the mac checks out with the key (False: forged, or no key to check it)
    path: str = ""  # the file it was read from


def send_syslog(address: str, line: str) -> None:
    """One RFC 3164 datagram ``<pri>soar-audit-checkpoint: line`` to a Unix socket path or ``host:port``."""
    import socket

    data = f"<{SYSLOG_PRI}>{SYSLOG_TAG}: {line}".encode()
    if address.startswith("/"):
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.send(data)
        return
    host, _, port = address.rpartition(":")
    with socket.socket(socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(data, (host.strip("[]"), int(port)))


def write_checkpoint(path: Path, key: bytes, store: str, seq: int, digest: str, syslog: str | None = None) -> None:
    at = utcnow_iso()
    line = {
        "at": at,
        "store": store,
        "seq": seq,
        "hash": digest,
        "mac": mac(key, "soar-audit-checkpoint", store, seq, digest, at),
    }
    data = (json.dumps(line, separators=(",", ":"), sort_keys=True) + "\n").encode()
    private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, data)  # one write under PIPE_BUF on an O_APPEND file: lines of processes never interleave
    finally:
        os.close(fd)
    if syslog:
        send_syslog(syslog, data.decode().rstrip("\n"))


def read_checkpoints(
    path: Path, key: bytes | None, store: str, *, collected: bool = False
) -> tuple[list[Checkpoint], list[int]]:
    """This store's checkpoint lines, and the numbers of lines that are not checkpoints at all.

    ``collected``: a file a syslog collector wrote, where checkpoints are the lines tagged
    ``soar-audit-checkpoint:`` among everything else (the others are skipped, not junk).
    """
    out: list[Checkpoint] = []
    bad: list[int] = []
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return out, bad
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the audit checkpoint: {type(exc).__name__}") from None
    for number, line in enumerate(text.splitlines(), 1):
        raw = line
        if collected:
            tag = line.find(SYSLOG_TAG + ": ")
            if tag < 0:
                continue
            raw = line[tag + len(SYSLOG_TAG) + 2 :]
        if not raw.strip():
            continue
        try:
            doc = json.loads(raw)
            at, sid, seq, digest, seal = (
                str(doc["at"]),
                str(doc["store"]),
                int(doc["seq"]),
                str(doc["hash"]),
                str(doc["mac"]),
            )
        except (ValueError, KeyError, TypeError):
            bad.append(number)
            continue
        if sid != store:
            continue
        sealed = key is not None and hmac.compare_digest(seal, mac(key, "soar-audit-checkpoint", sid, seq, digest, at))
        out.append(Checkpoint(number, at, sid, seq, digest, sealed, str(path)))
    return out, bad


@dataclass
class _Pending:
    key: bytes
    seq: int
    hash: str
    count: int
    every: int
    interval: float
    written: float
    syslog: str | None = None


_pending: dict[tuple[Path, str], _Pending] = {}
_timer: threading.Timer | None = None


def note_append(settings: Settings, store: Any, key: bytes, seq: int, digest: str) -> None:
    """Called after each append: checkpoint now if ``every`` appends or ``interval`` seconds have passed."""
    global _timer
    target = (checkpoint_path(settings), store_id(store))
    now = time.monotonic()
    with _lock:
        p = _pending.get(target)
        if p is None:
            every, interval = settings.audit_checkpoint_every, settings.audit_checkpoint_interval
            p = _pending[target] = _Pending(key, 0, "", 0, every, interval, now, settings.audit_checkpoint_syslog)
        if seq > p.seq:
            p.seq, p.hash, p.key = seq, digest, key
        p.count += 1
        due = p.count >= p.every or now - p.written >= p.interval
        if due:
            p.count, p.written = 0, now
            seq, digest = p.seq, p.hash
        syslog = p.syslog
        if not due and _timer is None:
            _timer = threading.Timer(p.interval, _on_timer)
            _timer.daemon = True
            _timer.start()
    if due:
        _write_quietly(target, key, seq, digest, syslog)


def flush_checkpoints() -> None:
    """Write a checkpoint for every store with appends not yet checkpointed (the timer and exit call this)."""
    with _lock:
        due = [(t, p.key, p.seq, p.hash, p.syslog) for t, p in _pending.items() if p.count]
        for _t, p in _pending.items():
            p.count, p.written = 0, time.monotonic()
    for target, key, seq, digest, syslog in due:
        _write_quietly(target, key, seq, digest, syslog)


def _on_timer() -> None:
    global _timer
    with _lock:
        _timer = None
    flush_checkpoints()


def _write_quietly(target: tuple[Path, str], key: bytes, seq: int, digest: str, syslog: str | None = None) -> None:
    import logging

    try:
        write_checkpoint(target[0], key, target[1], seq, digest, syslog)
    except OSError as exc:  # the entry is stored: a missing checkpoint only weakens later verification
        where = f"{target[0]} (syslog {syslog})" if syslog else str(target[0])
        logging.getLogger(__name__).warning("audit checkpoint %s not written: %s", where, exc.strerror or exc)


def _after_fork() -> None:
    """A forked child (a Celery worker process) starts with nothing pending and no timer of its own."""
    global _timer, _lock
    _lock = threading.Lock()
    _pending.clear()
    _timer = None


atexit.register(flush_checkpoints)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)
