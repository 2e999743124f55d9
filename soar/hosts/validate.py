"""Strict patterns for every argument that reaches a host.

Alert data is attacker-controlled. Each value is checked against a narrow pattern
(and parsed where a parser exists) before any connection is made; the responders
check the same patterns again on the host. A refusal is an InputError naming the
parameter and the value.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable

from soar.errors import InputError

# POSIX portable user names as shadow-utils accepts them by default, no leading dash.
USER_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
PORT_RE = re.compile(r"^[0-9]{1,5}$")
FILE_PATH_RE = re.compile(r"^/[A-Za-z0-9._/+-]{0,4095}$")
EXE_PATH_RE = FILE_PATH_RE
MAX_PID = 4194304  # Linux pid_max ceiling


def _refuse(param: str, value: object, why: str) -> InputError:
    shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "...'"
    return InputError(f"parameter {param}: {shown} {why}")


def user_name(value: str, param: str = "user") -> str:
    if not isinstance(value, str) or not USER_RE.fullmatch(value):
        raise _refuse(param, value, "is not a valid user name ([a-z_][a-z0-9_-]{0,31})")
    return value


def ip_address(value: str, param: str = "ip") -> str:
    """A single IPv4 or IPv6 address, in its canonical text form."""
    if not isinstance(value, str) or not re.fullmatch(r"[0-9A-Fa-f:.]{2,45}", value):
        raise _refuse(param, value, "is not an IP address")
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise _refuse(param, value, "is not an IP address") from None


def ip_or_cidr(value: str, param: str = "ip") -> str:
    """An address or a network (host bits must be zero), canonical text form."""
    if not isinstance(value, str) or not re.fullmatch(r"[0-9A-Fa-f:.]{2,45}(/[0-9]{1,3})?", value):
        raise _refuse(param, value, "is not an IP address or CIDR")
    try:
        if "/" in value:
            return str(ipaddress.ip_network(value, strict=True))
        return str(ipaddress.ip_address(value))
    except ValueError as exc:
        raise _refuse(param, value, f"is not an IP address or CIDR ({exc})") from None


MAX_RANGE_NETWORKS = 16


def ip_networks(value: str, param: str = "ip", *, max_networks: int = MAX_RANGE_NETWORKS) -> list[str]:
    """What one address parameter covers, as canonical addresses or CIDRs: an address, a CIDR, or a
    ``first-last`` range (split into the fewest CIDRs, at most ``max_networks`` of them).

    Policy judges ranges by overlap; this is what lets an approved range be blocked as approved.
    """
    if not isinstance(value, str) or "-" not in value:
        net = ipaddress.ip_network(ip_or_cidr(value, param), strict=False)
        return [str(net.network_address) if net.num_addresses == 1 else str(net)]
    first_text, _, last_text = value.partition("-")
    first, last = ip_address(first_text.strip(), param), ip_address(last_text.strip(), param)
    low, high = ipaddress.ip_address(first), ipaddress.ip_address(last)
    if low.version != high.version:
        raise _refuse(param, value, "mixes IPv4 and IPv6 ends")
    if int(low) > int(high):
        raise _refuse(param, value, "is a range whose first address is after its last")
    nets: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = list(
        ipaddress.summarize_address_range(low, high)  # type: ignore[misc,unused-ignore]  # same version: checked
    )
    if len(nets) > max_networks:
        raise _refuse(param, value, f"is a range of {len(nets)} networks; at most {max_networks} (give a CIDR)")
    return [str(n.network_address) if n.num_addresses == 1 else str(n) for n in nets]


def endpoint(value: str, param: str = "endpoint") -> str:
    """``ip:port`` (IPv4) or ``[ip6]:port``, as used for log-shipping endpoints."""
    if not isinstance(value, str):
        raise _refuse(param, value, "is not ip:port")
    m = re.fullmatch(r"\[([0-9A-Fa-f:]+)\]:([0-9]{1,5})|([0-9.]+):([0-9]{1,5})", value)
    if not m:
        raise _refuse(param, value, "is not ip:port")
    host = m.group(1) or m.group(3)
    port = int(m.group(2) or m.group(4))
    if not 0 < port < 65536:
        raise _refuse(param, value, "has a port outside 1-65535")
    addr = ip_address(host, param)
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


def pid(value: int | str, param: str = "pid") -> int:
    text = str(value)
    if not re.fullmatch(r"[0-9]{1,7}", text):
        raise _refuse(param, value, "is not a process id")
    number = int(text)
    if number <= 1 or number > MAX_PID:
        raise _refuse(param, value, "is not a process id that may be killed (2..4194304)")
    return number


def absolute_path(value: str, param: str = "path") -> str:
    if not isinstance(value, str) or not FILE_PATH_RE.fullmatch(value) or "/../" in value + "/":
        raise _refuse(param, value, "is not an absolute path of [A-Za-z0-9._/+-] without '..'")
    return value


def seconds(value: int, param: str, *, low: int = 1, high: int = 30 * 86400) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _refuse(param, value, f"must be whole seconds in {low}..{high}")
    return value


VALIDATORS: dict[str, Callable[..., object]] = {
    "user": user_name,
    "ip": ip_address,
    "cidr": ip_or_cidr,
    "endpoint": endpoint,
    "pid": pid,
    "path": absolute_path,
}
