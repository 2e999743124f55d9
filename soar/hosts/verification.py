"""Verification closes the loop: after ``apply``, prove the effect, from the host and from outside.

The host's own ``verify`` runs after a *new* connection along the management path
reached its sshd; where the inventory names a probe host, that peer tries a new TCP
connection to the host (expected to go unanswered after a containment, to succeed
after its release). The two run at the same time.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from soar.hosts.errors import SSHError
from soar.hosts.inventory import Host
from soar.hosts.responders import Outcome
from soar.hosts.runner import HostRunner

# A peer's new connection that gets no answer for this long was dropped: the kernel answers a SYN within
# milliseconds on a management LAN whatever the load of sshd. Only a probe expected to fail waits it out.
PROBE_DROP_SECONDS = 1
PROBE_REACH_SECONDS = 3  # a probe expected to connect returns as soon as it does


def probe_args(host: Host, expect_reachable: bool) -> list[str]:
    return [host.address, str(host.port), str(PROBE_REACH_SECONDS if expect_reachable else PROBE_DROP_SECONDS)]


def probe(runner: HostRunner, host: Host, expect_reachable: bool) -> tuple[bool, dict[str, Any]]:
    """From the host's probe peer, try a new TCP connection to its SSH port."""
    peer = runner.probe_host(host)
    if peer is None:
        return True, {"skipped": "no probe host in the inventory"}
    try:
        out = runner.run(peer, "probe", "check", probe_args(host, expect_reachable))
    except SSHError as exc:
        return False, {"from": peer.name, "error": str(exc)}
    reachable = out.fields.get("reachable")
    ok = out.ok and reachable == ("yes" if expect_reachable else "no")
    detail: dict[str, Any] = {"from": peer.name, "to": f"{host.address}:{host.port}", "reachable": reachable}
    detail["expected"] = "yes" if expect_reachable else "no"
    if not out.ok:
        detail["error"] = out.describe()
    return ok, detail


def fresh_verify(runner: HostRunner, host: Host, name: str, args: list[str]) -> tuple[Outcome | None, dict[str, Any]]:
    """A new connection along the management path reaches sshd, then ``verify`` reports the host's state."""
    try:
        banner = runner.pool.banner(host)
    except SSHError as exc:
        return None, {"management_path": f"failed: {exc}"}
    try:
        out = runner.run(host, name, "verify", args)
    except SSHError as exc:
        return None, {"management_path": f"failed: {exc}", "banner": banner}
    if out.result.lost or out.result.timed_out:
        runner.pool.discard(host)
        return None, {"management_path": f"failed: verify {out.describe()}", "banner": banner}
    return out, {"management_path": "ok", "banner": banner, "state": out.fields, "verify_exit": out.status}


Probe = Callable[[], tuple[bool, dict[str, Any]]]


def verify_and_probe(
    runner: HostRunner, host: Host, name: str, args: list[str], probe: Probe
) -> tuple[Outcome | None, dict[str, Any], bool]:
    """The host's own ``verify`` along the management path and the peer's probe, at the same time.

    They are independent checks; run one after the other, the probe's wait for a dropped connection
    would add to every host's containment.
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="soar-probe") as pool:
        probed = pool.submit(probe)
        check, verification = fresh_verify(runner, host, name, args)
        probe_ok, verification["peer_probe"] = probed.result()
    return check, verification, probe_ok


def probe_from_blocked(runner: HostRunner, target: Host, blocked: str, expect: bool) -> tuple[bool, dict[str, Any]]:
    peer = runner.probe_host(target)
    if peer is None or ipaddress.ip_address(peer.address) not in ipaddress.ip_network(blocked, strict=False):
        return True, {"skipped": "the probe host is not inside the blocked range"}
    return probe(runner, target, expect_reachable=expect)
