"""``soar hosts``: one line naming file:line for a bad inventory, refusals for unknown or ambiguous values."""

from __future__ import annotations

from pathlib import Path

from tests.unit.test_cli import run_soar

INVENTORY = """\
hosts:
  web1: {address: 192.0.2.11, aliases: [web], labels: {env: prod, role: web, criticality: high, owner: web-team}}
  web2: {address: 192.0.2.12, aliases: [web]}
"""


def inv(tmp_path: Path, text: str = INVENTORY) -> dict[str, str]:
    path = tmp_path / "inventory.yml"
    path.write_text(text)
    return {"SOAR_INVENTORY_FILE": str(path)}


def test_list_shows_hosts_and_labels(tmp_path: Path) -> None:
    out = run_soar("hosts", "list", env=inv(tmp_path))
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[2].split() == ["web1", "192.0.2.11", "-", "prod", "web", "high", "web-team"]


def test_resolve_exactly_one_or_refuse(tmp_path: Path) -> None:
    env = inv(tmp_path)
    ok = run_soar("hosts", "resolve", "192.0.2.12", env=env)
    assert ok.returncode == 0 and ok.stdout.splitlines()[2].startswith("web2")
    ambiguous = run_soar("hosts", "resolve", "web", env=env)
    assert ambiguous.returncode == 1
    assert ambiguous.stderr.strip() == "error: parameter value: 'web' matches 2 hosts (web1, web2); refusing"
    unknown = run_soar("hosts", "resolve", "web3", env=env)
    assert unknown.returncode == 1 and "matches no host" in unknown.stderr


def test_a_bad_inventory_is_one_line_naming_file_and_line(tmp_path: Path) -> None:
    env = inv(tmp_path, "hosts:\n  web1:\n    address: 192.0.2.11\n    sudo: true\n    passwd: hunter2\n")
    out = run_soar("hosts", "list", env=env)
    assert out.returncode == 1
    assert out.stderr.strip() == f"error: {tmp_path / 'inventory.yml'}:5: host web1: unknown key 'passwd'"
    assert "Traceback" not in out.stderr and "hunter2" not in out.stderr
