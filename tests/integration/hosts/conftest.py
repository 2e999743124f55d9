"""Fixtures for the SSH lab: settings pointing at it, an action context per test, throwaway users."""

from __future__ import annotations

import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from soar.actions import ActionContext, ActionRegistry, load_registry
from soar.config import Settings, load_settings
from soar.hosts.inventory import Inventory, load_inventory
from soar.hosts.runner import RESOURCE_KEY, HostRunner
from soar.hosts.transport import SSHOptions
from tests.integration.hosts.lab import LAB, REPO, LabUser, host_lock, new_key
from tests.services import require


def _lab_up() -> Path:
    inventory = LAB / "inventory.yml"
    if not inventory.is_file():
        raise RuntimeError(f"no {inventory}")
    status = subprocess.run([str(REPO / "scripts" / "lab.sh"), "status"], capture_output=True, text=True)
    if status.returncode != 0:
        raise RuntimeError(status.stdout.strip() or status.stderr.strip())
    return inventory


@pytest.fixture(scope="session")
def lab_inventory_path() -> Path:
    return require("SSH lab", _lab_up)


@pytest.fixture(autouse=True)
def _own_the_targets(lab_inventory_path: Path) -> Iterator[None]:
    """These tests change app1 and db1: hold them against other areas' tests using the shared lab."""
    with host_lock("app1", "db1"):
        yield


def lab_settings(tmp_path: Path, inventory: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "content_root": REPO,
        "state_dir": tmp_path / "state",
        "inventory_file": inventory,
        "ssh_known_hosts": LAB / "known_hosts",
        "ssh_connect_timeout": 5.0,
        "ssh_command_timeout": 20.0,
    }
    values.update(overrides)
    return load_settings(**values)


@pytest.fixture
def lab_settings_(tmp_path: Path, lab_inventory_path: Path) -> Settings:
    return lab_settings(tmp_path, lab_inventory_path)


@pytest.fixture
def inventory(lab_inventory_path: Path) -> Inventory:
    return load_inventory(lab_inventory_path)


@pytest.fixture
def options() -> SSHOptions:
    return SSHOptions(known_hosts=LAB / "known_hosts", connect_timeout=5.0, command_timeout=20.0)


@pytest.fixture(scope="session")
def registry(lab_inventory_path: Path) -> ActionRegistry:
    return load_registry(load_settings(content_root=REPO))


def close_context(ctx: ActionContext) -> None:
    runner = ctx.resources.pop(RESOURCE_KEY, None)
    if isinstance(runner, HostRunner):
        runner.close()


@pytest.fixture
def ctx(lab_settings_: Settings) -> Iterator[ActionContext]:
    context = ActionContext(settings=lab_settings_, run_id="test-run")
    yield context
    close_context(context)


@pytest.fixture
def lab_user(tmp_path: Path) -> Iterator[LabUser]:
    """A user created for this test (shared by every lab host: namespaces share /etc/passwd), removed after."""
    name = f"soar-t{secrets.token_hex(3)}"
    password = secrets.token_urlsafe(12)
    subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", name], check=True)
    try:
        subprocess.run(["chpasswd"], input=f"{name}:{password}\n", text=True, check=True)
        key = new_key(tmp_path / f"{name}_key")
        home = Path(f"/home/{name}")
        (home / ".ssh").mkdir(mode=0o700)
        shutil.copy(key.with_suffix(".pub"), home / ".ssh" / "authorized_keys")
        subprocess.run(["chown", "-R", f"{name}:{name}", str(home / ".ssh")], check=True)
        yield LabUser(name, password, key)
    finally:
        subprocess.run(["pkill", "-KILL", "-u", name], check=False)
        subprocess.run(["userdel", "-r", name], capture_output=True, check=False)
        Path(f"/var/lib/soar/accounts/{name}.lock").unlink(missing_ok=True)
