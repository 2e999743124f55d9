"""Helpers for tests against the SSH lab (scripts/lab.sh): real namespaces, real sshd, real nftables."""

from __future__ import annotations

import fcntl
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import paramiko

from soar.hosts.inventory import Inventory
from soar.hosts.transport import Credentials, Session, SSHOptions, connect

REPO = Path(__file__).resolve().parents[3]
LAB = REPO / ".cache" / "lab"
PREFIX = "soar-lab-"


@contextmanager
def host_lock(*names: str) -> Iterator[None]:
    """Hold the lab hosts ``names`` exclusively (flock on .cache/lab/locks/<host>.lock): tests of several
    areas share the lab, and one test's release must not undo another's isolation. Sorted: no deadlock."""
    folder = LAB / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        for name in sorted(set(names)):
            fh = stack.enter_context((folder / f"{name}.lock").open("a"))
            fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def wait_for(predicate: Callable[[], bool], seconds: float) -> bool:
    """Poll ``predicate`` until it holds or ``seconds`` pass (host-side timers act on their own clock)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.25)
    return predicate()


def ns(name: str) -> str:
    return PREFIX + name


def sh_in(name: str, *argv: str, check: bool = False, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    """Run a command inside a lab host's network namespace (as root on this machine)."""
    return subprocess.run(
        ["ip", "netns", "exec", ns(name), *argv], capture_output=True, text=True, check=check, timeout=timeout
    )


def can_connect(src: str, addr: str, port: int, seconds: int = 2) -> bool:
    """Can namespace ``src`` open a new TCP connection to addr:port right now?"""
    script = 'exec 3<>"/dev/tcp/$0/$1"'
    return sh_in(src, "timeout", str(seconds), "bash", "-c", script, addr, str(port)).returncode == 0


SILENT_LISTENER = """
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(8)
print("ready", flush=True)
held = []
while True:
    held.append(s.accept()[0])  # accept, hold, never say a word
    print("accepted", flush=True)
"""


def silent_listener(name: str, addr: str, port: int) -> subprocess.Popen[str]:
    """A TCP listener in a lab host's namespace: accepts, holds, never says a word, prints ``accepted`` each time.
    The caller kills it."""
    argv = ["ip", "netns", "exec", ns(name), "/usr/bin/python3", "-c", SILENT_LISTENER, addr, str(port)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    return proc


def nft_ruleset(name: str) -> str:
    return sh_in(name, "nft", "list", "ruleset", check=True).stdout


def soar_state_dirs() -> list[str]:
    run = Path("/run/soar")
    return sorted(p.name for p in run.iterdir()) if run.is_dir() else []


def state_left(name: str) -> bool:
    """Does the host's responder state directory (keyed by its network namespace) still exist?"""
    ino = sh_in(name, "stat", "-L", "-c", "%i", "/proc/self/ns/net", check=True).stdout.strip()
    return f"net-{ino}" in soar_state_dirs()


def timers_in(name: str) -> list[str]:
    """Processes in the namespace that are soar timers (dead-man / auto-release)."""
    pids = subprocess.run(["ip", "netns", "pids", ns(name)], capture_output=True, text=True).stdout.split()
    out = []
    for pid in pids:
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "soar-timer" in cmd:
            out.append(cmd)
    return out


@dataclass
class LabUser:
    name: str
    password: str
    key_path: Path


def login(inventory: Inventory, host: str, creds: Credentials, options: SSHOptions) -> Session:
    """A login as someone else (a test user) through the host's bastion, with pinned host keys."""
    target = inventory.get(host)
    via = None
    if target.bastion:
        bastion = inventory.get(target.bastion)
        via = connect(bastion, Credentials(bastion.user, bastion.key), options)
    return connect(target, creds, options, via)


def new_key(path: Path) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "soar-test", "-f", str(path)], check=True)
    return path


@contextmanager
def ssh_server(host_key: paramiko.PKey, interface: paramiko.ServerInterface) -> Iterator[int]:
    """An in-process SSH server on 127.0.0.1 presenting ``host_key``; yields its port."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            transport = paramiko.Transport(conn)
            transport.add_server_key(host_key)
            with suppress(paramiko.SSHException, EOFError, OSError):  # a client that hung up (a refused key)
                transport.start_server(server=interface)

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield server.getsockname()[1]
    finally:
        server.close()
