"""Inventory: defaults, labels, exact resolution, refusals with file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from soar.errors import ContentError
from soar.hosts.inventory import AmbiguousHost, UnknownHost, load_inventory

INVENTORY = """\
defaults:
  user: soar
  key: keys/soar
  sudo: true
  bastion: jump
  management: [10.0.0.2]
  log_endpoints: ["10.0.0.9:9200"]
  protected_accounts: [soar, backup]
hosts:
  jump:
    address: 192.0.2.10
    labels: {env: prod, role: bastion, criticality: high, owner: secops}
  web1:
    address: 10.0.1.11
    aliases: [web1.prod.example, web]
    labels: {env: prod, role: web, criticality: high, owner: web-team}
  web2:
    address: 10.0.1.12
    aliases: [web]
    port: 2222
    host_key: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGJxPm22IzoAAKUZGLCkP385pCRtp2rzuffUFnPp1n72"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "inventory.yml"
    path.write_text(text)
    return path


def test_defaults_apply_and_the_bastion_is_reached_directly(tmp_path: Path) -> None:
    inv = load_inventory(write(tmp_path, INVENTORY))
    web1 = inv.get("web1")
    assert web1.user == "soar" and web1.sudo is True and web1.bastion == "jump"
    assert web1.key == tmp_path / "keys" / "soar"
    assert web1.labels == {"env": "prod", "role": "web", "criticality": "high", "owner": "web-team"}
    assert web1.protected_accounts == ("soar", "backup")
    assert web1.source is not None and web1.source.line == 13
    assert inv.get("jump").bastion is None
    assert [h.name for h in inv.chain(web1)] == ["jump", "web1"]


@pytest.mark.parametrize("value", ["web1", "WEB1", "web1.prod.example", "10.0.1.11", "web1.prod.example."])
def test_resolves_exactly_one_host(tmp_path: Path, value: str) -> None:
    assert load_inventory(write(tmp_path, INVENTORY)).resolve(value).name == "web1"


@pytest.mark.parametrize("value", ["web1.prod", "web1*", "10.0.1.1", "eb1", "10.0.1.0/24", "", "web1 "])
def test_no_partial_or_pattern_matches(tmp_path: Path, value: str) -> None:
    inv = load_inventory(write(tmp_path, INVENTORY))
    if value == "web1 ":  # surrounding spaces from an alert field are not a different host
        assert inv.resolve(value).name == "web1"
        return
    with pytest.raises(UnknownHost, match="parameter host: "):
        inv.resolve(value)


def test_an_ambiguous_match_is_refused(tmp_path: Path) -> None:
    with pytest.raises(AmbiguousHost, match=r"'web' matches 2 hosts \(web1, web2\); refusing"):
        load_inventory(write(tmp_path, INVENTORY)).resolve("web")


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("hosts:\n  a:\n    address: 10.0.0.300\n", 2, "host a: parameter address"),
        ("hosts:\n  a:\n    address: 10.0.0.1\n    colour: red\n", 4, "host a: unknown key 'colour'"),
        ("hosts:\n  a: {address: 10.0.0.1, bastion: nope}\n", 2, "bastion 'nope' is not in the inventory"),
        ("hosts:\n  a: {address: 10.0.0.1, management: ['10.0.0.1;id']}\n", 2, "parameter management"),
        ("hosts:\n  a: {address: 10.0.0.1, user: 'root;id'}\n", 2, "parameter user"),
        ("hosts:\n  a: {address: 10.0.0.1, port: 0}\n", 2, "port must be 1-65535"),
        ("hosts:\n  a: {address: 10.0.0.1, max_sessions: 0}\n", 2, "max_sessions must be 1-1000"),
        ("defaults:\n  address: 10.0.0.1\nhosts: {}\n", 2, "defaults: unknown key 'address'"),
        ("hosts:\n  a: {address: 10.0.0.1\n", 3, "not valid YAML"),
        ("servers: {}\n", 1, "unknown top-level key 'servers'"),
        ("hosts:\n  a: {address: 10.0.0.1, bastion: b}\n  b: {address: 10.0.0.2, bastion: a}\n", 2, "bastion loop"),
    ],
)
def test_errors_name_the_file_and_line(tmp_path: Path, text: str, line: int, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ContentError) as info:
        load_inventory(path)
    assert str(info.value).startswith(f"{path}:{line}: ")
    assert message in str(info.value)


def test_a_missing_file_is_a_content_error(tmp_path: Path) -> None:
    with pytest.raises(ContentError, match="cannot read inventory"):
        load_inventory(tmp_path / "nope.yml")
