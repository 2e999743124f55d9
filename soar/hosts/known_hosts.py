"""Which host keys soar accepts for a host: the inventory's pin, else the known_hosts file, minus revoked keys.

soar reads known_hosts itself (paramiko's parser mistakes marker lines for host names and
fails on them):

- a plain line lists keys of the hosts its patterns match (plain names, ``[name]:port``,
  hashed ``|1|salt|hash`` names, ``*``/``?`` wildcards and ``!`` negations, as OpenSSH reads them);
- ``@revoked`` marks a key that is never accepted, for any host, even when another line (or the
  inventory) pins it;
- ``@cert-authority`` is refused for the hosts it matches: soar trusts pinned host keys only, not
  certificates, so it says so instead of failing to recognise the host's key.

An inventory ``host_key`` replaces every known_hosts key of its host (another key type listed there
is not accepted); revoked keys still apply to it.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import hashlib
import hmac
from dataclasses import dataclass, field
from pathlib import Path

REVOKED = "@revoked"
CERT_AUTHORITY = "@cert-authority"


@dataclass(frozen=True)
class KnownKey:
    """One key line of a known_hosts file (or the inventory's pin)."""

    key_type: str
    blob: bytes
    where: str  # "known_hosts:12" or "the inventory's host_key"
    marker: str | None = None


@dataclass(frozen=True)
class Trust:
    """The keys accepted for one host name and the keys refused as revoked."""

    accepted: tuple[KnownKey, ...]
    revoked: dict[bytes, KnownKey] = field(default_factory=dict)

    def revoked_entry(self, blob: bytes) -> KnownKey | None:
        return self.revoked.get(blob)


class KnownHostsProblem(Exception):
    """known_hosts cannot be used for this host; the message names the file and line."""


@dataclass(frozen=True)
class _Line:
    number: int
    marker: str | None
    patterns: str
    key_type: str
    key_text: str


def _lines(text: str) -> list[_Line]:
    out: list[_Line] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split()
        marker = fields.pop(0) if fields[0].startswith("@") else None
        if len(fields) < 3:
            continue  # not a key line (OpenSSH skips it too)
        out.append(_Line(number, marker, fields[0], fields[1], fields[2]))
    return out


def _matches_one(pattern: str, name: str) -> bool:
    if pattern.startswith("|1|"):
        try:
            _, _, salt, digest = pattern.split("|", 3)
            mac = hmac.new(base64.b64decode(salt), name.encode(), hashlib.sha1).digest()
            return hmac.compare_digest(base64.b64encode(mac).decode(), digest)
        except (ValueError, binascii.Error):
            return False
    # OpenSSH patterns know only * and ?: anything fnmatch would read as a class is literal
    return fnmatch.fnmatchcase(name.lower(), pattern.lower().replace("[", "[[]"))


def host_matches(patterns: str, name: str) -> bool:
    """Does a known_hosts host field (comma-separated patterns) name ``name``? A negated match wins."""
    matched = False
    for pattern in patterns.split(","):
        if pattern.startswith("!"):
            if _matches_one(pattern[1:], name):
                return False
        elif _matches_one(pattern, name):
            matched = True
    return matched


def _decode(line: _Line, path: Path) -> KnownKey:
    try:
        blob = base64.b64decode(line.key_text, validate=True)
    except binascii.Error:
        raise KnownHostsProblem(f"{path}:{line.number}: the key is not base64") from None
    return KnownKey(line.key_type, blob, f"{path}:{line.number}", line.marker)


def read_known_hosts(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise KnownHostsProblem(f"cannot read known_hosts {path}: {exc.strerror}") from None


def trust_for(name: str, known_hosts: Path | None, text: str, pin: KnownKey | None) -> Trust:
    """The keys to accept for the host named ``name`` in known_hosts (``[address]:port`` off port 22).

    ``text`` is the file's content (``""`` without a file). Raises KnownHostsProblem for a
    ``@cert-authority`` or unknown marker that applies to the host, or an undecodable key of it.
    """
    path = known_hosts or Path("known_hosts")
    accepted: list[KnownKey] = [pin] if pin is not None else []
    revoked: dict[bytes, KnownKey] = {}
    for line in _lines(text):
        if line.marker == REVOKED:
            key = _decode(line, path)
            revoked.setdefault(key.blob, key)
            continue
        if pin is not None or not host_matches(line.patterns, name):
            continue  # the inventory's pin replaces every line of its host
        if line.marker == CERT_AUTHORITY:
            raise KnownHostsProblem(
                f"{path}:{line.number}: @cert-authority is not supported for {name}: soar accepts pinned host"
                " keys only; list the host's own key, or set host_key in the inventory"
            )
        if line.marker is not None:
            raise KnownHostsProblem(f"{path}:{line.number}: unknown marker {line.marker!r} for {name}")
        accepted.append(_decode(line, path))
    return Trust(tuple(accepted), revoked)


def parse_pin(host_key: str) -> KnownKey:
    """The inventory's ``host_key: "<type> <base64>"``; ValueError if it is not that."""
    parts = host_key.split()
    if len(parts) < 2:
        raise ValueError("not '<type> <base64>'")
    try:
        blob = base64.b64decode(parts[1], validate=True)
    except binascii.Error:
        raise ValueError("not '<type> <base64>'") from None
    return KnownKey(parts[0], blob, "the inventory's host_key")
