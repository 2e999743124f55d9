"""Host keys against real sshd: an inventory pin replaces known_hosts for its host, @revoked is refused by name,
@cert-authority is refused cleanly, and the action that needed the host fails with that reason."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import paramiko
import pytest
import yaml

from soar.actions import ActionContext, ActionRegistry
from soar.hosts.errors import HostKeyRejected
from soar.hosts.inventory import Host, Inventory
from soar.hosts.transport import ConnectionPool, Credentials, SSHOptions, connect
from tests.integration.hosts.conftest import close_context, lab_settings
from tests.integration.hosts.lab import LAB, new_key, nft_ruleset, ssh_server

pytestmark = pytest.mark.lab

APP1 = "10.77.0.13"


def _key_of(address: str) -> str:
    """The lab host's own key as known_hosts lists it ("<type> <base64>")."""
    return next(line for line in (LAB / "known_hosts").read_text().splitlines() if line.startswith(f"{address} "))[
        len(address) + 1 :
    ]


def _known_hosts(tmp_path: Path, *extra: str) -> Path:
    path = tmp_path / "known_hosts"
    path.write_text((LAB / "known_hosts").read_text() + "".join(f"{line}\n" for line in extra))
    return path


def _refusal(inventory: Inventory, known: Path, host: str) -> str:
    pool = ConnectionPool(inventory, SSHOptions(known_hosts=known, connect_timeout=5))
    try:
        with pytest.raises(HostKeyRejected) as info:
            pool.session(inventory.get(host))
    finally:
        pool.close()
    return str(info.value)


def test_a_revoked_host_key_is_refused_naming_the_host_and_the_file(tmp_path: Path, inventory: Inventory) -> None:
    known = _known_hosts(tmp_path, f"@revoked {APP1} {_key_of(APP1)}")
    before = known.read_text()
    message = _refusal(inventory, known, "app1")
    assert message.startswith("host app1: presented host key SHA256:")
    assert message.endswith(f"which is marked @revoked in {known}:{len(before.splitlines())}; refusing")
    assert known.read_text() == before  # nothing learnt or rewritten


def test_a_revoked_bastion_key_stops_the_hosts_behind_it(tmp_path: Path, inventory: Inventory) -> None:
    bastion = inventory.get(inventory.get("app1").bastion or "")
    known = _known_hosts(tmp_path, f"@revoked * {_key_of(bastion.address)}")
    assert _refusal(inventory, known, "app1").startswith(f"host {bastion.name}: presented host key SHA256:")


def test_a_cert_authority_line_is_refused_cleanly(tmp_path: Path, inventory: Inventory) -> None:
    ca = paramiko.ECDSAKey.generate()
    known = _known_hosts(tmp_path, f"@cert-authority {APP1},10.77.9.* {ca.get_name()} {ca.get_base64()}")
    assert _refusal(inventory, known, "app1") == (  # its bastion, which the line does not name, was reached
        f"host app1: {known}:{len(known.read_text().splitlines())}: @cert-authority is not supported for {APP1}:"
        " soar accepts pinned host keys only; list the host's own key, or set host_key in the inventory"
    )


def test_a_revoked_key_fails_the_action_with_the_reason_and_runs_nothing(
    tmp_path: Path, lab_inventory_path: Path, registry: ActionRegistry
) -> None:
    data = yaml.safe_load(lab_inventory_path.read_text())
    data["defaults"]["key"] = str(LAB / "id_ed25519")
    data["hosts"]["app1"]["host_key"] = _key_of(APP1)  # pinned in the inventory, revoked in known_hosts
    inv = tmp_path / "inventory.yml"
    inv.write_text(yaml.safe_dump(data))
    known = _known_hosts(tmp_path, f"@revoked {APP1} {_key_of(APP1)}")
    ctx = ActionContext(settings=lab_settings(tmp_path, inv, ssh_known_hosts=known))
    try:
        result = registry.get("hosts.isolate_host").call(ctx, {"host": "app1"})
    finally:
        close_context(ctx)
    assert not result.ok
    assert f"host app1: the inventory's host_key is marked @revoked in {known}:" in (result.error or "")
    assert "soar_isolate" not in nft_ruleset("app1")


class _AcceptAnyone(paramiko.ServerInterface):
    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        return paramiko.AUTH_SUCCESSFUL


@pytest.fixture
def ecdsa_server() -> Iterator[tuple[int, paramiko.PKey]]:
    """An SSH server whose only host key is ECDSA (the lab's are ed25519)."""
    host_key = paramiko.ECDSAKey.generate()
    with ssh_server(host_key, _AcceptAnyone()) as port:
        yield port, host_key


def test_an_inventory_pin_replaces_a_key_of_another_type_in_known_hosts(
    tmp_path: Path, ecdsa_server: tuple[int, paramiko.PKey]
) -> None:
    port, presented = ecdsa_server
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{port} {presented.get_name()} {presented.get_base64()}\n")
    client_key = new_key(tmp_path / "id")
    options = SSHOptions(known_hosts=known, connect_timeout=5, attempts=1)
    unpinned = Host(name="odd", address="127.0.0.1", port=port, user="soar", key=client_key)
    connect(unpinned, Credentials("soar", client_key), options).close()  # known_hosts alone: accepted
    pin = _key_of(APP1)  # an ed25519 key that is not this server's
    pinned = Host(name="odd", address="127.0.0.1", port=port, user="soar", key=client_key, host_key=pin)
    with pytest.raises(HostKeyRejected, match=r"^host odd: presented host key SHA256:.* differs from the pinned key"):
        connect(pinned, Credentials("soar", client_key), options)
