"""lock_account / unlock_account / kill_sessions / kill_process: logins really refused, sessions really gone."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from soar.actions import ActionContext, ActionRegistry
from soar.hosts.errors import AuthenticationFailed
from soar.hosts.inventory import Inventory
from soar.hosts.transport import Credentials, SSHOptions
from tests.integration.hosts.lab import LabUser, login, sh_in

pytestmark = pytest.mark.lab


def shadow(user: str) -> str:
    return subprocess.run(["getent", "shadow", user], capture_output=True, text=True, check=True).stdout


def can_login(inventory: Inventory, options: SSHOptions, creds: Credentials) -> bool:
    try:
        session = login(inventory, "db1", creds, options)
    except AuthenticationFailed:
        return False
    try:
        return session.run(["id", "-un"]).stdout.strip() == creds.user
    finally:
        session.close()


def test_lock_refuses_password_and_key_logins_and_unlock_restores_exactly(
    ctx: ActionContext, registry: ActionRegistry, inventory: Inventory, options: SSHOptions, lab_user: LabUser
) -> None:
    by_password = Credentials(lab_user.name, password=lab_user.password)
    by_key = Credentials(lab_user.name, key=lab_user.key_path)
    assert can_login(inventory, options, by_password)
    assert can_login(inventory, options, by_key)
    before = shadow(lab_user.name)

    locked = registry.get("hosts.lock_account").call(ctx, {"host": "db1", "user": lab_user.name})
    assert locked.ok, locked.error
    assert locked.verified is True and locked.changed is True
    # the host proves it too: a login needing no password (as a key login) is refused by PAM's account phase
    state = dict(locked.verification["state"])
    assert state.pop("boot_id")  # the host's boot id: the containment watch tells a reboot by it
    assert state == {"locked": "yes", "expired": "yes", "login": "refused"}
    assert not can_login(inventory, options, by_password), "password login still works"
    assert not can_login(inventory, options, by_key), "key login still works (passwd -l alone is not enough)"

    locked_state = shadow(lab_user.name)
    again = registry.get("hosts.lock_account").call(ctx, {"host": "db1", "user": lab_user.name})
    assert again.ok and again.verified and again.changed is False
    assert shadow(lab_user.name) == locked_state  # apply twice: the same state

    unlocked = registry.get("hosts.unlock_account").call(ctx, {"host": "db1", "user": lab_user.name})
    assert unlocked.ok, unlocked.error
    assert unlocked.verified is True
    assert unlocked.verification["state"]["login"] == "allowed"
    assert shadow(lab_user.name) == before, "unlock did not restore the account exactly"
    assert not Path(f"/var/lib/soar/accounts/{lab_user.name}.lock").exists()
    assert can_login(inventory, options, by_password)
    assert can_login(inventory, options, by_key)

    # unlock of an account soar did not lock: success, no change
    twice = registry.get("hosts.unlock_account").call(ctx, {"host": "db1", "user": lab_user.name})
    assert twice.ok and twice.changed is False
    assert shadow(lab_user.name) == before


def test_lock_can_set_authorized_keys_aside_and_unlock_puts_them_back(
    ctx: ActionContext, registry: ActionRegistry, lab_user: LabUser
) -> None:
    keys = f"/home/{lab_user.name}/.ssh/authorized_keys"
    original = Path(keys).read_text()
    result = registry.get("hosts.lock_account").call(ctx, {"host": "db1", "user": lab_user.name, "disable_keys": True})
    assert result.ok and result.verified
    assert result.verification["state"]["keys_disabled"] == "yes"
    assert sh_in("db1", "test", "-e", keys).returncode != 0
    registry.get("hosts.unlock_account").call(ctx, {"host": "db1", "user": lab_user.name})
    assert Path(keys).read_text() == original


def test_unlock_restores_an_account_an_admin_had_locked_and_says_it_did(
    ctx: ActionContext, registry: ActionRegistry, lab_user: LabUser
) -> None:
    subprocess.run(["usermod", "-L", lab_user.name], check=True)  # locked by an admin before the incident
    before = shadow(lab_user.name)
    untouched = registry.get("hosts.unlock_account").call(ctx, {"host": "db1", "user": lab_user.name})
    assert untouched.ok and untouched.verified is True and untouched.changed is False, untouched.error
    assert shadow(lab_user.name) == before  # soar did not lock it, so soar does not unlock it
    locked = registry.get("hosts.lock_account").call(ctx, {"host": "db1", "user": lab_user.name})
    assert locked.ok and locked.verified
    unlocked = registry.get("hosts.unlock_account").call(ctx, {"host": "db1", "user": lab_user.name})
    assert unlocked.ok, unlocked.error
    assert unlocked.verified is True and unlocked.changed is True
    assert unlocked.verification["expected"] == {"locked": "yes", "expired": "no"}
    assert unlocked.verification["state"]["locked"] == "yes"
    assert shadow(lab_user.name) == before, "the admin's lock was not restored exactly"


def test_keys_are_never_set_aside_through_a_link_out_of_the_home(
    tmp_path: Path, ctx: ActionContext, registry: ActionRegistry, lab_user: LabUser
) -> None:
    """A compromised user points ~/.ssh at another account's .ssh (here a root-owned stand-in): locking it with
    disable_keys must not rename that account's authorized_keys (it could be soar's own)."""
    victim = tmp_path / "victim-ssh"
    victim.mkdir(mode=0o700)
    (victim / "authorized_keys").write_text("ssh-ed25519 AAAA victim\n")
    ssh_dir = Path(f"/home/{lab_user.name}/.ssh")
    shutil.rmtree(ssh_dir)
    ssh_dir.symlink_to(victim)
    subprocess.run(["chown", "-h", f"{lab_user.name}:{lab_user.name}", str(ssh_dir)], check=True)
    try:
        result = registry.get("hosts.lock_account").call(
            ctx, {"host": "db1", "user": lab_user.name, "disable_keys": True}
        )
        assert not result.ok and result.exit_status == 4
        assert "leads out of the home" in (result.error or "")
        assert sorted(p.name for p in victim.iterdir()) == ["authorized_keys"], "another account's keys were moved"
        # the account itself is contained all the same: locked and expired, so its key logins are refused
        fields = shadow(lab_user.name).split(":")
        assert fields[1].startswith("!") and fields[7] == "0"
    finally:
        unlocked = registry.get("hosts.unlock_account").call(ctx, {"host": "db1", "user": lab_user.name})
    assert unlocked.ok and unlocked.verified, unlocked.error
    assert sorted(p.name for p in victim.iterdir()) == ["authorized_keys"]


@pytest.mark.parametrize("user", ["root", "soar-ctl"])
def test_lock_refuses_root_and_protected_accounts_before_connecting(
    ctx: ActionContext, registry: ActionRegistry, user: str
) -> None:
    result = registry.get("hosts.lock_account").call(ctx, {"host": "db1", "user": user})
    assert not result.ok
    assert result.output["refused"]
    assert ctx.resources["soar.hosts.runner"].pool.connects == 0


def test_the_host_refuses_protected_accounts_even_if_the_controller_does_not(
    ctx: ActionContext, lab_user: LabUser
) -> None:
    # Bypass the controller's checks: the responder itself refuses uid 0 and --protect names.
    from soar.hosts.runner import HostRunner

    runner = HostRunner.for_context(ctx)
    db1 = runner.inventory.get("db1")
    as_root = runner.run(db1, "lock_account", "apply", ["root"])
    assert as_root.status == 4 and "uid 0" in as_root.fields["error"]
    protected = runner.run(db1, "lock_account", "apply", [lab_user.name, "--protect", lab_user.name])
    assert protected.status == 4
    hostile = runner.run(db1, "lock_account", "apply", ["x;touch /tmp/soar-pwned"])
    assert hostile.status == 2
    assert "!" not in shadow(lab_user.name).split(":")[1][:1]


def test_kill_sessions_ends_a_live_login(
    ctx: ActionContext, registry: ActionRegistry, inventory: Inventory, options: SSHOptions, lab_user: LabUser
) -> None:
    session = login(inventory, "db1", Credentials(lab_user.name, key=lab_user.key_path), options)
    channel = session.transport.open_session()
    channel.exec_command("sleep 300")
    time.sleep(0.3)
    assert subprocess.run(["pgrep", "-u", lab_user.name], capture_output=True).returncode == 0
    result = registry.get("hosts.kill_sessions").call(ctx, {"host": "db1", "user": lab_user.name})
    assert result.ok, result.error
    assert result.verified is True and result.output["killed"] >= 1
    assert subprocess.run(["pgrep", "-u", lab_user.name], capture_output=True).returncode == 1
    deadline = time.monotonic() + 5
    while not channel.closed and time.monotonic() < deadline:
        time.sleep(0.1)
    assert channel.closed, "the user's SSH session is still open"
    session.close()


def test_kill_process_checks_the_executable_first(ctx: ActionContext, registry: ActionRegistry) -> None:
    proc = subprocess.Popen(["ip", "netns", "exec", "soar-lab-db1", "sleep", "300"])
    try:
        time.sleep(0.3)
        wrong = registry.get("hosts.kill_process").call(
            ctx, {"host": "db1", "pid": proc.pid, "executable": "/usr/sbin/sshd"}
        )
        assert not wrong.ok and "not /usr/sbin/sshd" in (wrong.error or "")
        assert proc.poll() is None
        killed = registry.get("hosts.kill_process").call(
            ctx, {"host": "db1", "pid": proc.pid, "executable": "/usr/bin/sleep"}
        )
        assert killed.ok, killed.error
        assert killed.verified is True
        assert proc.wait(timeout=5) == -9
        gone = registry.get("hosts.kill_process").call(
            ctx, {"host": "db1", "pid": proc.pid, "executable": "/usr/bin/sleep"}
        )
        assert gone.ok and gone.changed is False
    finally:
        proc.kill()


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"host": "db1", "pid": 1, "executable": "/sbin/init"}, "pid"),
        ({"host": "db1", "pid": "12;reboot", "executable": "/usr/bin/sleep"}, "pid"),
        ({"host": "db1", "pid": 1234, "executable": "../bin/sh"}, "executable"),
        ({"host": "db1", "user": "bob$(id)"}, "user"),
    ],
)
def test_bad_arguments_are_refused_before_any_connection(
    ctx: ActionContext, registry: ActionRegistry, params: dict[str, object], reason: str
) -> None:
    # straight to the action function: the registry's type check must not be the only guard
    name = "hosts.kill_process" if "pid" in params else "hosts.kill_sessions"
    result = registry.get(name).func(ctx, **params)
    assert not result.ok
    assert f"parameter {reason}" in result.output["refused"]
    assert ctx.resources["soar.hosts.runner"].pool.connects == 0


def test_a_host_side_protected_accounts_file_is_honoured(
    ctx: ActionContext, registry: ActionRegistry, lab_user: LabUser
) -> None:
    # The controller's inventory does not protect this user; the host's own list does, and wins.
    listing = Path("/etc/soar/protected-accounts")
    assert not listing.exists(), "a protected-accounts file this test did not write"
    made_dir = not listing.parent.exists()
    listing.parent.mkdir(exist_ok=True)
    listing.write_text(f"# accounts soar must never lock\n{lab_user.name}\n")
    before = shadow(lab_user.name)
    try:
        result = registry.get("hosts.lock_account").call(ctx, {"host": "db1", "user": lab_user.name})
        sessions = registry.get("hosts.kill_sessions").call(ctx, {"host": "db1", "user": lab_user.name})
    finally:
        listing.unlink()
        if made_dir:
            listing.parent.rmdir()
    assert not result.ok and "protected account" in (result.error or "")
    assert result.exit_status == 4
    assert not sessions.ok and sessions.exit_status == 4
    assert shadow(lab_user.name) == before


def test_kill_sessions_of_a_user_without_sessions_changes_nothing(
    ctx: ActionContext, registry: ActionRegistry, lab_user: LabUser
) -> None:
    result = registry.get("hosts.kill_sessions").call(ctx, {"host": "db1", "user": lab_user.name})
    assert result.ok and result.verified and result.changed is False
    assert result.output["killed"] == 0
