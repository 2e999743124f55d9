"""SSH to inventory hosts with paramiko: pinned host keys, scoped keys, bastions, timeouts.

Every connection is scoped to the action: host keys come only from the pinned
known_hosts file or the inventory, whose pin replaces known_hosts for its host (see
:mod:`soar.hosts.known_hosts`; an unpinned key is refused, nothing is ever added or
saved), the key comes only from the inventory (no agent, no ``~/.ssh``). Hosts
behind a bastion are reached through a ``direct-tcpip`` channel of the bastion's
own connection. :class:`ConnectionPool` keeps one connection per host for a run
and is safe to share between threads.
"""

from __future__ import annotations

import contextlib
import select
import shlex
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paramiko
from paramiko.pkey import UnknownKeyType

from soar.hosts.errors import AuthenticationFailed, ConnectionLost, HostKeyRejected, HostUnreachable, SSHError
from soar.hosts.inventory import Host, Inventory
from soar.hosts.known_hosts import KnownHostsProblem, KnownKey, Trust, parse_pin, read_known_hosts, trust_for

READ_CHUNK = 65536
MAX_OUTPUT = 16 * 1024 * 1024
KEEPALIVE_SECONDS = 15
WAKE_SECONDS = 0.1  # upper bound of a wait; exit-status alone does not wake the pipe (EOF follows it)


@dataclass(frozen=True)
class SSHOptions:
    """Timeouts and retry policy, from the settings."""

    known_hosts: Path | None = None
    connect_timeout: float = 10.0
    command_timeout: float = 60.0
    attempts: int = 3
    backoff: float = 0.5  # seconds before the 2nd attempt; doubles each time


@dataclass
class CommandResult:
    """What one command did; on timeout the output read so far is kept."""

    argv: tuple[str, ...]
    exit_status: int | None
    stdout: str
    stderr: str
    timed_out: bool = False
    lost: bool = False
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.exit_status == 0 and not self.timed_out and not self.lost


@dataclass
class Credentials:
    """Who to log in as. A password is only used by tests of account locking."""

    user: str
    key: Path | None = None
    password: str | None = field(default=None, repr=False)


_KEY_CACHE: dict[Path, paramiko.PKey] = {}
_KEY_LOCK = threading.Lock()


def _private_key(path: Path, host: str) -> paramiko.PKey:
    with _KEY_LOCK:
        if path not in _KEY_CACHE:
            try:
                _KEY_CACHE[path] = paramiko.PKey.from_path(path)
            except (OSError, paramiko.SSHException) as exc:
                raise AuthenticationFailed(host, f"cannot load the private key {path}: {type(exc).__name__}") from None
        return _KEY_CACHE[path]


def _host_key_name(host: Host) -> str:
    return host.address if host.port == 22 else f"[{host.address}]:{host.port}"


def _pkey(known: KnownKey) -> paramiko.PKey | None:
    try:
        return paramiko.PKey.from_type_string(known.key_type, known.blob)
    except (ValueError, TypeError, paramiko.SSHException, UnknownKeyType):
        return None


def host_trust(host: Host, known_hosts: Path | None) -> Trust:
    """The keys accepted for ``host``: its inventory pin (which replaces known_hosts), else known_hosts'."""
    pin: KnownKey | None = None
    if host.host_key:
        try:
            pin = parse_pin(host.host_key)
        except ValueError:
            pin = None
        if pin is None or _pkey(pin) is None:
            raise HostKeyRejected(host.name, "the inventory's host_key is not '<type> <base64>'")
    try:
        text = read_known_hosts(known_hosts) if known_hosts is not None else ""
        trust = trust_for(_host_key_name(host), known_hosts, text, pin)
    except KnownHostsProblem as exc:
        raise HostKeyRejected(host.name, str(exc)) from None
    revoked = trust.revoked_entry(pin.blob) if pin is not None else None
    if revoked is not None:
        raise HostKeyRejected(host.name, f"the inventory's host_key is marked @revoked in {revoked.where}; refusing")
    return trust


def pinned_keys(host: Host, trust: Trust) -> paramiko.HostKeys:
    """paramiko's view of the accepted keys, revoked ones left out."""
    keys = paramiko.HostKeys()
    for known in trust.accepted:
        if trust.revoked_entry(known.blob) is not None:
            continue
        key = _pkey(known)
        if key is not None:  # else a key type paramiko cannot check (OpenSSH skips those too)
            keys.add(_host_key_name(host), known.key_type, key)
    return keys


class _RefuseUnpinned(paramiko.MissingHostKeyPolicy):
    """No key of the presented type is pinned: refuse, saying whether the key is revoked."""

    def __init__(self, host: Host, trust: Trust) -> None:
        self.host = host
        self.trust = trust

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        raise _refusal(self.host, self.trust, key) or HostKeyRejected(
            self.host.name, f"no pinned host key for {_host_key_name(self.host)}; refusing"
        )


def _refusal(host: Host, trust: Trust, key: paramiko.PKey) -> HostKeyRejected | None:
    """The refusal of a revoked presented key, naming where it is revoked; None if it is not revoked."""
    revoked = trust.revoked_entry(key.asbytes())
    if revoked is None:
        return None
    return HostKeyRejected(
        host.name, f"presented host key {key.fingerprint} which is marked @revoked in {revoked.where}; refusing"
    )


class Session:
    """One authenticated connection to one host."""

    def __init__(self, host: Host, client: paramiko.SSHClient, options: SSHOptions) -> None:
        self.host = host
        self.client = client
        self.options = options
        # sshd refuses channels beyond MaxSessions (default 10); queue instead of failing under fan-out
        self._slots = threading.BoundedSemaphore(host.max_sessions)

    @property
    def transport(self) -> paramiko.Transport:
        transport = self.client.get_transport()
        if transport is None or not transport.is_active():
            raise ConnectionLost(self.host.name, "the SSH connection is closed")
        return transport

    @property
    def alive(self) -> bool:
        transport = self.client.get_transport()
        return transport is not None and transport.is_active()

    def run(self, argv: Sequence[str], stdin: bytes | None = None, timeout: float | None = None) -> CommandResult:
        """Run ``argv`` (quoted for the remote shell), feed ``stdin`` and close it, collect everything."""
        with self._slots:
            return self._run(argv, stdin, timeout)

    def _run(self, argv: Sequence[str], stdin: bytes | None, timeout: float | None) -> CommandResult:
        limit = self.options.command_timeout if timeout is None else timeout
        started = time.monotonic()
        try:
            channel = self.transport.open_session(timeout=self.options.connect_timeout)
            channel.exec_command(shlex.join(argv))
            if stdin:
                channel.sendall(stdin)
            channel.shutdown_write()
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise ConnectionLost(self.host.name, f"cannot start a command: {type(exc).__name__}") from None
        out, err = bytearray(), bytearray()
        timed_out = False
        try:
            while True:
                busy = False
                if channel.recv_ready():
                    out += channel.recv(READ_CHUNK)
                    busy = True
                if channel.recv_stderr_ready():
                    err += channel.recv_stderr(READ_CHUNK)
                    busy = True
                if busy:
                    if len(out) + len(err) > MAX_OUTPUT:
                        break
                    continue
                # sshd may send exit-status before the last output: done only at EOF (or close) with both
                done = channel.closed or (channel.exit_status_ready() and channel.eof_received)
                if done:
                    if not (channel.recv_ready() or channel.recv_stderr_ready()):
                        break
                    continue
                left = limit - (time.monotonic() - started)
                if left <= 0:
                    timed_out = True
                    break
                # sleep until output, EOF or close arrives (the channel's pipe), not in a polling loop:
                # fifty hosts' channels polling every few ms cost the controller more CPU than the SSH work
                select.select([channel], [], [], min(left, WAKE_SECONDS))
        except (paramiko.SSHException, OSError, EOFError):
            pass
        status: int | None = channel.exit_status if channel.exit_status_ready() else None
        lost = status is None and not timed_out
        if status == -1:  # the channel closed without an exit status: the connection dropped
            status, lost = None, True
        channel.close()
        return CommandResult(
            argv=tuple(argv),
            exit_status=status,
            stdout=out.decode("utf-8", "replace"),
            stderr=err.decode("utf-8", "replace"),
            timed_out=timed_out,
            lost=lost,
            seconds=time.monotonic() - started,
        )

    def close(self) -> None:
        # the connection (or the bastion carrying it) may already be gone
        with contextlib.suppress(paramiko.SSHException, OSError, EOFError):
            self.client.close()


# what paramiko says when the server accepted TCP but did not complete the handshake in time
_HANDSHAKE_TIMEOUTS = frozenset({"No existing session", "Negotiation timed out.", "Error reading SSH protocol banner"})
_AUTH_TIMEOUT = "Authentication timeout."  # paramiko's AuthenticationException when auth_timeout passes


def _connect_once(host: Host, creds: Credentials, options: SSHOptions, via: Session | None) -> Session:
    if creds.key is None and creds.password is None:
        # paramiko would say "no authentication methods available" after the handshake, on every retry
        raise AuthenticationFailed(
            host.name, f"no key to log in as {creds.user}: set key in the inventory (no agent, no ~/.ssh keys)"
        )
    sock: Any = None
    if via is not None:
        try:
            sock = via.transport.open_channel(
                "direct-tcpip", (host.address, host.port), ("127.0.0.1", 0), timeout=options.connect_timeout
            )
        except paramiko.ChannelException as exc:
            raise HostUnreachable(
                host.name, f"bastion {via.host.name} cannot reach {host.address}:{host.port} ({exc.text})"
            ) from None
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise HostUnreachable(host.name, f"via bastion {via.host.name}: {type(exc).__name__}") from None
    else:
        try:
            sock = socket.create_connection((host.address, host.port), timeout=options.connect_timeout)
        except OSError as exc:
            what = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or type(exc).__name__)
            raise HostUnreachable(host.name, f"cannot connect to {host.address}:{host.port}: {what}") from None
        # small request/response packets: without this, Nagle + delayed ACK add ~40 ms to every command
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    trust = host_trust(host, options.known_hosts)
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(_RefuseUnpinned(host, trust))  # never AutoAddPolicy: nothing is learnt
    for hostname, entry in pinned_keys(host, trust).items():
        for keytype, key in entry.items():
            client.get_host_keys().add(hostname, keytype, key)
    pkey = _private_key(creds.key, host.name) if creds.key is not None else None
    try:
        client.connect(
            host.address,
            port=host.port,
            username=creds.user,
            pkey=pkey,
            password=creds.password,
            sock=sock,
            timeout=options.connect_timeout,
            banner_timeout=options.connect_timeout,
            auth_timeout=options.connect_timeout,
            channel_timeout=options.connect_timeout,
            allow_agent=False,
            look_for_keys=False,
        )
    except HostKeyRejected:  # from _RefuseUnpinned
        client.close()
        raise
    except paramiko.BadHostKeyException as exc:
        client.close()
        revoked = _refusal(host, trust, exc.key)
        if revoked is not None:
            raise revoked from None
        fingerprint = exc.key.fingerprint
        raise HostKeyRejected(
            host.name,
            f"presented host key {fingerprint} which differs from the pinned key; refusing (possible interception)",
        ) from None
    except paramiko.AuthenticationException as exc:
        client.close()
        if str(exc) == _AUTH_TIMEOUT:
            # the host never answered (sshd stuck in PAM, a directory lookup): not a refusal of our key
            raise HostUnreachable(
                host.name, f"no answer to authentication as {creds.user} within {options.connect_timeout:g} s"
            ) from None
        raise AuthenticationFailed(host.name, f"authentication as {creds.user} was refused") from None
    except paramiko.SSHException as exc:
        client.close()
        if str(exc) in _HANDSHAKE_TIMEOUTS:
            # which of paramiko's timers fires first decides the wording; the cause is one
            raise HostUnreachable(
                host.name, f"no SSH handshake within {options.connect_timeout:g} s from {host.address}:{host.port}"
            ) from None
        raise HostUnreachable(host.name, f"SSH handshake failed: {type(exc).__name__}: {exc}") from None
    except (OSError, EOFError) as exc:
        client.close()
        what = "timed out" if isinstance(exc, socket.timeout | TimeoutError) else type(exc).__name__
        raise HostUnreachable(host.name, f"cannot connect to {host.address}:{host.port}: {what}") from None
    transport = client.get_transport()
    if transport is not None:
        transport.set_keepalive(KEEPALIVE_SECONDS)  # a pooled connection that silently died is noticed
    return Session(host, client, options)


def connect(
    host: Host,
    creds: Credentials,
    options: SSHOptions,
    via: Session | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Session:
    """Connect with retries and exponential backoff on unreachable hosts only."""
    delay = options.backoff
    for attempt in range(1, options.attempts + 1):
        try:
            return _connect_once(host, creds, options, via)
        except HostUnreachable as exc:
            if attempt == options.attempts:
                raise HostUnreachable(host.name, f"{exc.reason} (after {attempt} attempts)") from None
            sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")  # pragma: no cover


def host_credentials(host: Host) -> Credentials:
    return Credentials(user=host.user, key=host.key)


class ConnectionPool:
    """One connection per host (bastions included) for the length of a run; thread-safe."""

    def __init__(self, inventory: Inventory, options: SSHOptions) -> None:
        self.inventory = inventory
        self.options = options
        self._sessions: dict[str, Session] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self.connects = 0

    def _lock(self, name: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(name, threading.Lock())

    def session(self, host: Host) -> Session:
        with self._lock(host.name):
            existing = self._sessions.get(host.name)
            if existing is not None and existing.alive:
                return existing
            via = self.session(self.inventory.get(host.bastion)) if host.bastion else None
            session = connect(host, host_credentials(host), self.options, via)
            with self._guard:
                self.connects += 1
            self._sessions[host.name] = session
            return session

    def fresh(self, host: Host, creds: Credentials | None = None) -> Session:
        """A new connection that is not pooled: proves the path works *now* (used by verification)."""
        via = self.session(self.inventory.get(host.bastion)) if host.bastion else None
        return connect(host, creds or host_credentials(host), self.options, via)

    def banner(self, host: Host) -> str:
        """Open a *new* TCP connection to the host's SSH port along its management path and read the banner.

        Cheaper than a full login and enough to prove the path still carries new connections.
        """
        timeout = self.options.connect_timeout
        try:
            if host.bastion:
                via = self.session(self.inventory.get(host.bastion)).transport
                sock: Any = via.open_channel(
                    "direct-tcpip", (host.address, host.port), ("127.0.0.1", 0), timeout=timeout
                )
            else:
                sock = socket.create_connection((host.address, host.port), timeout=timeout)
            try:
                sock.settimeout(timeout)
                data = b""
                while b"\n" not in data and len(data) < 256:
                    chunk = sock.recv(256)
                    if not chunk:
                        break
                    data += chunk
            finally:
                sock.close()
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise HostUnreachable(host.name, f"no new connection to {host.address}:{host.port}: {exc}") from None
        line = data.split(b"\n", 1)[0].decode("ascii", "replace").strip()
        if not line.startswith("SSH-"):
            raise HostUnreachable(host.name, f"{host.address}:{host.port} answered without an SSH banner")
        return line

    def discard(self, host: Host) -> None:
        with self._guard:
            session = self._sessions.pop(host.name, None)
        if session is not None:
            session.close()

    def close(self) -> None:
        with self._guard:
            sessions = list(self._sessions.values())
            self._sessions.clear()
        for session in reversed(sessions):
            session.close()


__all__ = [
    "CommandResult",
    "ConnectionPool",
    "Credentials",
    "SSHError",
    "SSHOptions",
    "Session",
    "connect",
]
