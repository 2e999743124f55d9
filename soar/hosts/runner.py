"""What an action uses to act on hosts within one run: inventory, connection pool, responders.

One :class:`HostRunner` per run, kept in ``ActionContext.resources`` so every
action of the run reuses the same connections. Nothing connects until an action
runs a responder, so refusals (unknown host, bad argument) never touch the network.
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from soar.actions.model import ActionContext, PlannedCommand
from soar.config import Settings
from soar.hosts.errors import ConnectionLost
from soar.hosts.inventory import Host, Inventory, load_inventory
from soar.hosts.responders import Outcome, Responder, load_responder, run_responder
from soar.hosts.transport import ConnectionPool, SSHOptions

RESOURCE_KEY = "soar.hosts.runner"
_RESOURCE_LOCK = threading.Lock()
T = TypeVar("T")
R = TypeVar("R")


def ssh_options(settings: Settings) -> SSHOptions:
    return SSHOptions(
        known_hosts=settings.ssh_known_hosts,
        connect_timeout=settings.ssh_connect_timeout,
        command_timeout=settings.ssh_command_timeout,
    )


class HostRunner:
    def __init__(self, settings: Settings, inventory: Inventory, options: SSHOptions | None = None) -> None:
        self.settings = settings
        self.inventory = inventory
        self.pool = ConnectionPool(inventory, options or ssh_options(settings))
        self._responders: dict[str, Responder] = {}

    @classmethod
    def for_context(cls, ctx: ActionContext) -> HostRunner:
        """The run's runner, created on first use (the inventory is read once per run)."""
        with _RESOURCE_LOCK:
            runner = ctx.resources.get(RESOURCE_KEY)
            if not isinstance(runner, HostRunner):
                runner = cls(ctx.settings, load_inventory(ctx.settings.inventory_path))
                ctx.resources[RESOURCE_KEY] = runner
            return runner

    def responder(self, name: str) -> Responder:
        if name not in self._responders:
            self._responders[name] = load_responder(self.settings, name)
        return self._responders[name]

    def plan(self, host: Host, name: str, mode: str, args: list[str]) -> PlannedCommand:
        return self.responder(name).command(host, mode, args)

    def run(self, host: Host, name: str, mode: str, args: list[str], *, fresh: bool = False) -> Outcome:
        """Run a responder mode; ``fresh`` uses a new connection (proof the path works now) and closes it."""
        if not fresh:
            try:
                return run_responder(self.pool.session(host), self.responder(name), mode, args)
            except ConnectionLost:
                # a pooled connection that died since its last use (the command never started): reconnect once
                self.pool.discard(host)
                return run_responder(self.pool.session(host), self.responder(name), mode, args)
        session = self.pool.fresh(host)
        try:
            return run_responder(session, self.responder(name), mode, args)
        finally:
            session.close()

    def probe_host(self, host: Host) -> Host | None:
        return self.inventory.get(host.probe) if host.probe else None

    def management_addresses(self, host: Host) -> list[str]:
        """What isolation must keep open: the inventory's management list and every bastion on the path."""
        out = list(host.management)
        for hop in self.inventory.chain(host)[:-1]:
            for value in (hop.address, *hop.aliases):
                try:
                    out.append(str(ipaddress.ip_address(value)))
                except ValueError:
                    continue  # a name, not an address
        return list(dict.fromkeys(out))

    def close(self) -> None:
        self.pool.close()


def in_parallel(func: Callable[[T], R], items: Iterable[T], max_workers: int = 16) -> list[R]:
    """Apply ``func`` to every item on a thread pool (SSH is I/O bound); results in input order."""
    items = list(items)
    if not items:
        return []
    with ThreadPoolExecutor(max_workers=min(max_workers, len(items)), thread_name_prefix="soar-hosts") as ex:
        return list(ex.map(func, items))
