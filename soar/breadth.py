"""How much a value covers: address specs for the policy, exception values for the feedback guard.

Alert data is attacker-controlled, so a value is judged by what it covers, never by how it reads:

- an address spec (``10.0.0.7``, ``10.0.0.0/8``, ``10.0.0.1-10.0.0.9``, ``::ffff:10.0.0.7``) is a
  list of networks; IPv4-mapped IPv6 (``::ffff:0:0/96``) is read as the IPv4 networks it maps, so
  ``::ffff:10.0.0.7`` is inside ``10.0.0.0/8`` and ``::ffff:0:0/96`` is every IPv4 address. IPv6 forms
  that carry an IPv4 address — 6to4 (``2002:AABB:CCDD::/48`` is ``A.B.C.D``, RFC 3056) and the NAT64
  well-known prefix (``64:ff9b::A.B.C.D``, RFC 6052) — also cover the IPv4 networks they embed, so
  ``2002:0a00::/24`` overlaps ``10.0.0.0/8`` and ``64:ff9b::/96`` reaches every IPv4 address;
- an exception value is judged by what the matchers do with it (``soar.scheduler.query.value_clause``
  and its embedded twin ``soar.scheduler.sources``): a CIDR matches its network on an ``ip`` field, a
  value with ``*`` or ``?`` is a wildcard. A wildcard-only value (``*``, ``?*``, ``**``) matches every
  value, and so does a character-class-only one on a glob matcher (``[!~]*``): they are refused, as
  are networks wider than ``/8`` (IPv4) or ``/16`` (IPv6).
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")
SIX_TO_FOUR = ipaddress.IPv6Network("2002::/16")  # RFC 3056: bits 16-47 are the IPv4 address
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052 well-known prefix: the last 32 bits
EVERY_V4 = ipaddress.IPv4Network("0.0.0.0/0")
MAX_SPEC = 200  # characters: longer is never an address spec

# Exceptions on networks wider than these prefixes would except (almost) every address.
EXCEPTION_MIN_PREFIX = {4: 8, 6: 16}

_CLASS = re.compile(r"\[!?\]?[^\]]*\]")  # a glob character class, as fnmatch reads it


def _unmap(net: Network) -> Network:
    """An IPv4-mapped IPv6 network as the IPv4 network it maps (other networks unchanged)."""
    if isinstance(net, ipaddress.IPv6Network) and net.prefixlen >= 96 and net.subnet_of(MAPPED):
        return ipaddress.IPv4Network((int(net.network_address) & 0xFFFFFFFF, net.prefixlen - 96))
    return net


def _embedded_v4(net: Network) -> list[Network]:
    """The IPv4 networks an IPv6 network reaches through 6to4 or NAT64 (kept beside the IPv6 network)."""
    if not isinstance(net, ipaddress.IPv6Network):
        return []
    if net.subnet_of(NAT64):
        return [ipaddress.IPv4Network((int(net.network_address) & 0xFFFFFFFF, net.prefixlen - 96))]
    if net.subnet_of(SIX_TO_FOUR):
        bits = min(net.prefixlen, 48) - 16
        v4 = (int(net.network_address) >> 80) & 0xFFFFFFFF
        return [ipaddress.IPv4Network((v4 >> (32 - bits) << (32 - bits) if bits else 0, bits))]
    if NAT64.subnet_of(net) or SIX_TO_FOUR.subnet_of(net):
        return [EVERY_V4]  # a network holding a whole translation prefix reaches every IPv4 address
    return []


def parse_spec(value: str) -> list[Network]:
    """The networks an address, CIDR or ``first-last`` range covers; ValueError naming the value."""
    text = value.strip() if isinstance(value, str) else ""
    bad = ValueError(f"{value!r} is not an IP address, CIDR or range")
    if not text or len(text) > MAX_SPEC:
        raise bad
    try:
        if "-" in text:
            first_text, _, last_text = text.partition("-")
            first, last = ipaddress.ip_address(first_text.strip()), ipaddress.ip_address(last_text.strip())
            if first.version != last.version or int(first) > int(last):
                raise bad
            nets: list[Network] = list(ipaddress.summarize_address_range(first, last))
        else:
            nets = [ipaddress.ip_network(text, strict=False)]
    except (ValueError, TypeError):
        raise bad from None
    out = [_unmap(n) for n in nets]
    return [*out, *(v4 for n in out for v4 in _embedded_v4(n))]


def covers_everything(net: Network) -> bool:
    """``0.0.0.0/0``, ``::/0``, and any IPv6 network containing every IPv4-mapped address."""
    return net.prefixlen == 0 or (isinstance(net, ipaddress.IPv6Network) and MAPPED.subnet_of(net))


def addresses(nets: list[Network], version: int) -> int:
    """How many addresses of one IP version the networks cover (ranges may give several networks)."""
    return sum(n.num_addresses for n in nets if n.version == version)


def exception_value_problem(value: str) -> str | None:
    """Why an exception value would except (almost) every event, or None when it is narrow enough."""
    text = unicodedata.normalize("NFKC", value).strip()
    if "/" in text:
        try:
            net = _unmap(ipaddress.ip_network(text, strict=False))
        except ValueError:
            net = None
        if net is not None:
            floor = EXCEPTION_MIN_PREFIX[net.version]
            if covers_everything(net) or net.prefixlen < floor:
                return (
                    f"the value {value!r} is the network {net} and would except (almost) every address: "
                    f"exceptions on networks are at most /{EXCEPTION_MIN_PREFIX[4]} (IPv4) or "
                    f"/{EXCEPTION_MIN_PREFIX[6]} (IPv6) wide"
                )
    if any(c in text for c in "*?["):
        literal = _CLASS.sub("", text).replace("*", "").replace("?", "").replace("\\", "").strip()
        if not literal:
            return (
                f"the value {value!r} would except every event: a pattern needs literal characters "
                "besides wildcards (*, ?) and character classes ([...])"
            )
    return None
