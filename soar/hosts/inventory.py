"""The inventory: which hosts exist, how to reach them, and what must never be cut.

A YAML file with ``defaults`` and ``hosts`` (name → entry). An alert field resolves
to exactly one host by its name, an alias or its address, compared exactly; no
match or several matches refuse the action before anything connects.

    defaults: {user: soar, key: keys/soar, sudo: true, bastion: bastion-1,
               management: [10.0.0.2], log_endpoints: ["10.0.0.9:9200"],
               protected_accounts: [soar], probe: canary-1}
    hosts:
      web1: {address: 10.0.1.11, aliases: [web1.prod], labels: {env: prod, role: web,
             criticality: high, owner: web-team}, host_key: "ssh-ed25519 AAAA..."}
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from soar import _yaml
from soar.errors import ContentError, InputError, SourceLocation
from soar.hosts import validate

LABELS = ("env", "role", "criticality", "owner")
HOST_KEYS = {
    "address",
    "port",
    "user",
    "key",
    "sudo",
    "bastion",
    "aliases",
    "labels",
    "management",
    "log_endpoints",
    "protected_accounts",
    "probe",
    "host_key",
    "max_sessions",
}
DEFAULT_KEYS = HOST_KEYS - {"address", "aliases", "host_key"}


class UnknownHost(InputError):
    """No inventory host matches the value an action was given."""


class AmbiguousHost(InputError):
    """More than one inventory host matches; acting on all of them is never the answer."""


@dataclass(frozen=True)
class Host:
    """One inventory host, defaults applied."""

    name: str
    address: str
    port: int = 22
    user: str = "root"
    key: Path | None = None
    sudo: bool = False
    bastion: str | None = None
    aliases: tuple[str, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    management: tuple[str, ...] = ()
    log_endpoints: tuple[str, ...] = ()
    protected_accounts: tuple[str, ...] = ()
    probe: str | None = None
    host_key: str | None = None
    max_sessions: int = 8  # concurrent commands on one connection; keep below the host's sshd MaxSessions
    source: SourceLocation | None = None

    def summary(self) -> dict[str, Any]:
        return {"name": self.name, "address": self.address, "labels": dict(self.labels)}


def _canonical(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return value.strip().lower().rstrip(".")


@dataclass(frozen=True)
class Inventory:
    hosts: Mapping[str, Host]
    path: Path | None = None

    def __iter__(self) -> Iterator[Host]:
        return iter(self.hosts.values())

    def __len__(self) -> int:
        return len(self.hosts)

    def get(self, name: str) -> Host:
        try:
            return self.hosts[name]
        except KeyError:
            raise UnknownHost(f"host {name!r} is not in the inventory {self.path or ''}".rstrip()) from None

    def resolve(self, value: str, param: str = "host") -> Host:
        """Exactly one host whose name, alias or address equals ``value``; otherwise refuse."""
        if not isinstance(value, str) or not value.strip():
            raise UnknownHost(f"parameter {param}: empty host")
        wanted = _canonical(value)
        matches = [
            h
            for h in self.hosts.values()
            if wanted in {_canonical(h.name), _canonical(h.address), *(_canonical(a) for a in h.aliases)}
        ]
        if not matches:
            raise UnknownHost(
                f"parameter {param}: {value!r} matches no host in the inventory {self.path or ''}".rstrip()
            )
        if len(matches) > 1:
            names = ", ".join(sorted(h.name for h in matches))
            raise AmbiguousHost(f"parameter {param}: {value!r} matches {len(matches)} hosts ({names}); refusing")
        return matches[0]

    def chain(self, host: Host) -> list[Host]:
        """The bastions to jump through, outermost first, then the host itself."""
        out = [host]
        seen = {host.name}
        while out[0].bastion:
            jump = self.get(out[0].bastion)
            if jump.name in seen:
                raise ContentError(f"bastion loop through {jump.name}", jump.source)
            seen.add(jump.name)
            out.insert(0, jump)
        return out


# -- loading ---------------------------------------------------------------------------------------------------


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def _plain(node: yaml.Node) -> Any:
    return yaml.SafeLoader(yaml.serialize(node)).get_single_data()


def _mapping(node: yaml.Node, what: str, path: Path) -> list[tuple[str, yaml.Node, int]]:
    if not isinstance(node, yaml.MappingNode):
        raise ContentError(f"{what} must be a mapping", SourceLocation(path, _line(node)))
    out = []
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            raise ContentError(f"{what}: keys must be strings", SourceLocation(path, _line(key_node)))
        out.append((str(key_node.value), value_node, _line(key_node)))
    return out


def _entry(raw: dict[str, Any], name: str, where: SourceLocation, base: Path) -> Host:
    def fail(why: str) -> ContentError:
        return ContentError(f"host {name}: {why}", where)

    def strings(key: str) -> tuple[str, ...]:
        value = raw.get(key) or []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise fail(f"{key} must be a list of strings")
        return tuple(value)

    try:
        address = validate.ip_address(str(raw.get("address", "")), "address")
        management = tuple(validate.ip_or_cidr(v, "management") for v in strings("management"))
        endpoints = tuple(validate.endpoint(v, "log_endpoints") for v in strings("log_endpoints"))
        protected = tuple(validate.user_name(v, "protected_accounts") for v in strings("protected_accounts"))
        user = validate.user_name(str(raw.get("user", "root")), "user")
    except InputError as exc:
        raise fail(exc.message) from None
    port = raw.get("port", 22)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise fail("port must be 1-65535")
    max_sessions = raw.get("max_sessions", 8)
    if isinstance(max_sessions, bool) or not isinstance(max_sessions, int) or not 0 < max_sessions <= 1000:
        raise fail("max_sessions must be 1-1000")
    labels = raw.get("labels") or {}
    if not isinstance(labels, dict) or not all(isinstance(v, str | int) for v in labels.values()):
        raise fail(f"labels must be a mapping of strings ({', '.join(LABELS)})")
    key = raw.get("key")
    if key is not None and not isinstance(key, str):
        raise fail("key must be a path to a private key file")
    key_path = None if key is None else (Path(key) if Path(key).is_absolute() else base / key)
    for ref in ("bastion", "probe", "host_key"):
        if raw.get(ref) is not None and not isinstance(raw[ref], str):
            raise fail(f"{ref} must be a string")
    return Host(
        name=name,
        address=address,
        port=port,
        user=user,
        key=key_path,
        sudo=bool(raw.get("sudo", False)),
        bastion=raw.get("bastion"),
        aliases=strings("aliases"),
        labels={str(k): str(v) for k, v in labels.items()},
        management=management,
        log_endpoints=endpoints,
        protected_accounts=protected,
        probe=raw.get("probe"),
        host_key=raw.get("host_key"),
        max_sessions=max_sessions,
        source=where,
    )


def load_inventory(path: Path) -> Inventory:
    """Parse and check an inventory file; every problem is a ContentError at file:line."""
    try:
        text = _yaml.read_text(path)  # over 1 MiB: refused before reading
    except OSError as exc:
        raise ContentError(f"cannot read inventory: {exc.strerror}", SourceLocation(path)) from None
    try:
        root = _yaml.compose(text)  # an alias is refused at its line, before it expands
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise ContentError(f"not valid YAML: {getattr(exc, 'problem', exc)}", SourceLocation(path, line)) from None
    if root is None:
        raise ContentError("the inventory is empty", SourceLocation(path))
    defaults: dict[str, Any] = {}
    hosts_node: yaml.Node | None = None
    for key, node, line in _mapping(root, "the inventory", path):
        if key == "defaults":
            for dkey, dnode, dline in _mapping(node, "defaults", path):
                if dkey not in DEFAULT_KEYS:
                    raise ContentError(f"defaults: unknown key {dkey!r}", SourceLocation(path, dline))
                defaults[dkey] = _plain(dnode)
        elif key == "hosts":
            hosts_node = node
        else:
            raise ContentError(f"unknown top-level key {key!r} (expected defaults, hosts)", SourceLocation(path, line))
    if hosts_node is None:
        raise ContentError("no hosts: section", SourceLocation(path, 1))
    hosts: dict[str, Host] = {}
    for name, node, line in _mapping(hosts_node, "hosts", path):
        where = SourceLocation(path, line)
        raw = dict(defaults)
        for hkey, hnode, hline in _mapping(node, f"host {name}", path):
            if hkey not in HOST_KEYS:
                raise ContentError(f"host {name}: unknown key {hkey!r}", SourceLocation(path, hline))
            raw[hkey] = _plain(hnode)
        if name in hosts:
            raise ContentError(f"host {name} is defined twice", where)
        if raw.get("bastion") == name:
            raw["bastion"] = None  # a bastion reached through the defaults is reached directly
        if raw.get("probe") == name:
            raw["probe"] = None
        hosts[name] = _entry(raw, name, where, path.parent)
    for host in hosts.values():
        for ref in ("bastion", "probe"):
            target = getattr(host, ref)
            if target is not None and target not in hosts:
                raise ContentError(f"host {host.name}: {ref} {target!r} is not in the inventory", host.source)
    inventory = Inventory(hosts, path)
    for host in hosts.values():
        inventory.chain(host)
    return inventory
