"""The SSH transport against the lab: pinned keys, bastion jumps, retries, timeouts, reuse, parallel hosts."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import time
from pathlib import Path

import paramiko
import pytest
import yaml

from soar.actions import ActionContext, ActionRegistry
from soar.hosts.errors import AuthenticationFailed, HostKeyRejected, HostUnreachable
from soar.hosts.inventory import Host, Inventory, load_inventory
from soar.hosts.runner import HostRunner, in_parallel
from soar.hosts.transport import ConnectionPool, Credentials, SSHOptions, connect
from tests.integration.hosts.conftest import close_context, lab_settings
from tests.integration.hosts.lab import (
    LAB,
    LabUser,
    login,
    new_key,
    nft_ruleset,
    silent_listener,
    ssh_server,
    wait_for,
)

pytestmark = pytest.mark.lab


def test_commands_run_through_the_bastion_with_sudo(inventory: Inventory, options: SSHOptions) -> None:
    pool = ConnectionPool(inventory, options)
    try:
        session = pool.session(inventory.get("app1"))
        result = session.run(["sh", "-c", 'echo "$SSH_CONNECTION"; sudo -n id -u; printf "%s" "$1" >&2', "-", "a b;c"])
        assert result.ok
        client_ip, _, server_ip, _ = result.stdout.splitlines()[0].split()
        assert (client_ip, server_ip) == ("10.77.0.2", "10.77.0.13")  # reached through the bastion
        assert result.stdout.splitlines()[1] == "0"
        assert result.stderr == "a b;c"  # arguments arrive as one quoted word
        assert pool.session(inventory.get("app1")) is session  # reused within the run
        assert pool.connects == 2  # bastion + app1
    finally:
        pool.close()


def test_a_changed_host_key_is_refused(tmp_path: Path, inventory: Inventory) -> None:
    lines = (LAB / "known_hosts").read_text().splitlines()
    other = next(line for line in lines if line.startswith("10.77.0.12 ")).split(" ", 1)[1]
    forged = [f"10.77.0.13 {other}" if line.startswith("10.77.0.13 ") else line for line in lines]
    known = tmp_path / "known_hosts"
    known.write_text("\n".join(forged) + "\n")
    pool = ConnectionPool(inventory, SSHOptions(known_hosts=known, connect_timeout=5))
    try:
        with pytest.raises(HostKeyRejected, match=r"host app1: presented host key .* differs from the pinned key"):
            pool.session(inventory.get("app1"))
    finally:
        pool.close()
    assert known.read_text() == "\n".join(forged) + "\n"  # nothing was added or rewritten


def test_an_unknown_host_key_is_refused(tmp_path: Path, inventory: Inventory) -> None:
    known = tmp_path / "known_hosts"
    known.write_text(
        "".join(line + "\n" for line in (LAB / "known_hosts").read_text().splitlines() if "10.77.0.12" not in line)
    )
    pool = ConnectionPool(inventory, SSHOptions(known_hosts=known, connect_timeout=5))
    try:
        with pytest.raises(HostKeyRejected, match=r"no pinned host key for 10\.77\.0\.12"):
            pool.session(inventory.get("db1"))
    finally:
        pool.close()
    assert "10.77.0.12" not in known.read_text()


def test_a_changed_key_fails_the_action_and_runs_nothing(
    tmp_path: Path, lab_inventory_path: Path, registry: ActionRegistry
) -> None:
    data = yaml.safe_load(lab_inventory_path.read_text())
    data["defaults"]["key"] = str(LAB / "id_ed25519")
    other = (LAB / "known_hosts").read_text().split("10.77.0.12 ", 1)[1].splitlines()[0]
    data["hosts"]["app1"]["host_key"] = other  # the inventory pins db1's key for app1
    inv = tmp_path / "inventory.yml"
    inv.write_text(yaml.safe_dump(data))
    ctx = ActionContext(settings=lab_settings(tmp_path, inv))  # known_hosts has the right key; the inventory wins
    try:
        result = registry.get("hosts.isolate_host").call(ctx, {"host": "app1"})
    finally:
        close_context(ctx)
    assert not result.ok
    assert "differs from the pinned key" in (result.error or "")
    assert result.output == {"unreachable": "app1"}
    assert "soar_isolate" not in nft_ruleset("app1")


def _app1_unreachable(tmp_path: Path, lab_inventory_path: Path) -> Path:
    """The lab inventory with app1 on a port nothing listens on (the bastion cannot reach it)."""
    data = yaml.safe_load(lab_inventory_path.read_text())
    data["defaults"]["key"] = str(LAB / "id_ed25519")
    data["hosts"]["app1"]["port"] = 2222
    inv = tmp_path / "inventory.yml"
    inv.write_text(yaml.safe_dump(data))
    return inv


def test_an_unreachable_host_is_retried_with_backoff_then_fails_clearly(
    tmp_path: Path, lab_inventory_path: Path
) -> None:
    inv = _app1_unreachable(tmp_path, lab_inventory_path)
    inventory = load_inventory(inv)
    pool = ConnectionPool(inventory, SSHOptions(known_hosts=LAB / "known_hosts", connect_timeout=3, backoff=0.4))
    started = time.monotonic()
    try:
        with pytest.raises(HostUnreachable) as info:
            pool.session(inventory.get("app1"))
    finally:
        pool.close()
    assert time.monotonic() - started >= 0.4 + 0.8  # two backoff sleeps between three attempts
    assert str(info.value).startswith("host app1: bastion bastion cannot reach 10.77.0.13:2222")
    assert str(info.value).endswith("(after 3 attempts)")


def test_an_unreachable_host_fails_the_action_clearly_and_changes_nothing(
    tmp_path: Path, lab_inventory_path: Path, registry: ActionRegistry
) -> None:
    inv = _app1_unreachable(tmp_path, lab_inventory_path)
    ctx = ActionContext(settings=lab_settings(tmp_path, inv))
    before = nft_ruleset("app1")
    try:
        result = registry.get("hosts.block_ip").call(ctx, {"host": "app1", "ip": "10.77.0.4"})
    finally:
        close_context(ctx)
    assert not result.ok
    assert result.output == {"unreachable": "app1"}
    assert (result.error or "").startswith("host app1: bastion bastion cannot reach 10.77.0.13:2222")
    assert (result.error or "").endswith("(after 3 attempts)")
    assert result.commands == [] and result.verified is None
    assert nft_ruleset("app1") == before


def test_a_port_that_never_speaks_ssh_times_out_on_the_banner(tmp_path: Path, lab_inventory_path: Path) -> None:
    data = yaml.safe_load(lab_inventory_path.read_text())
    data["defaults"]["key"] = str(LAB / "id_ed25519")
    data["hosts"]["silent"] = {"address": "10.77.0.3", "port": 2299, "probe": None}
    inv = tmp_path / "inventory.yml"
    inv.write_text(yaml.safe_dump(data))
    inventory = load_inventory(inv)
    listener = silent_listener("mgmt", "10.77.0.3", 2299)
    options = SSHOptions(known_hosts=LAB / "known_hosts", connect_timeout=1.5, backoff=0.2)
    pool = ConnectionPool(inventory, options)
    started = time.monotonic()
    try:
        with pytest.raises(HostUnreachable) as info:
            pool.session(inventory.get("silent"))
    finally:
        pool.close()
        listener.kill()
    out, _ = listener.communicate(timeout=5)
    assert time.monotonic() - started >= 3 * 1.5  # each attempt waited out the banner timeout
    assert out.count("accepted") == 3
    assert str(info.value) == "host silent: no SSH handshake within 1.5 s from 10.77.0.3:2299 (after 3 attempts)"


def test_no_agent_and_no_home_keys_are_ever_used(
    tmp_path: Path, inventory: Inventory, options: SSHOptions, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lab key sits in an ssh-agent and in ~/.ssh; a plain paramiko client gets in with either, soar does not."""
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    shutil.copy(LAB / "id_ed25519", home / ".ssh" / "id_ed25519")
    sock = tmp_path / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("SSH_AUTH_SOCK", str(sock))
    db1, bastion = inventory.get("db1"), inventory.get("bastion")
    pool = ConnectionPool(inventory, options)
    try:
        assert wait_for(sock.exists, 5)
        subprocess.run(["ssh-add", "-q", str(LAB / "id_ed25519")], check=True, env={"SSH_AUTH_SOCK": str(sock)})
        via = pool.session(bastion)
        for agent_on, home_keys in ((True, False), (False, True)):  # the controls: either one alone is enough
            client = paramiko.SSHClient()
            client.load_host_keys(str(LAB / "known_hosts"))
            channel = via.transport.open_channel("direct-tcpip", (db1.address, 22), ("127.0.0.1", 0))
            client.connect(db1.address, username=db1.user, sock=channel, allow_agent=agent_on, look_for_keys=home_keys)
            client.close()
        # soar offers only the key it was given (here one db1 does not accept): never the agent's, never ~/.ssh's
        wrong = new_key(tmp_path / "not_authorized")
        with pytest.raises(AuthenticationFailed, match="authentication as soar-ctl was refused"):
            connect(db1, Credentials(db1.user, key=wrong), options, via)
        with pytest.raises(AuthenticationFailed, match="no key to log in as soar-ctl"):
            connect(db1, Credentials(db1.user), options, via)
    finally:
        pool.close()
        agent.kill()
        agent.wait(timeout=5)


def test_stdin_is_fed_then_closed(inventory: Inventory, options: SSHOptions) -> None:
    pool = ConnectionPool(inventory, options)
    try:
        session = pool.session(inventory.get("db1"))
        fed = session.run(["cat"], stdin=b"line one\nline two\n")
        nothing = session.run(["cat"], timeout=5)
    finally:
        pool.close()
    assert fed.ok and fed.stdout == "line one\nline two\n"
    # stdin is closed even with nothing to feed: a command reading it ends at once instead of hanging
    assert nothing.ok and nothing.stdout == "" and not nothing.timed_out


def test_a_command_timeout_keeps_partial_output(inventory: Inventory, options: SSHOptions) -> None:
    pool = ConnectionPool(inventory, options)
    try:
        session = pool.session(inventory.get("db1"))
        result = session.run(["sh", "-c", "echo started; sleep 5; echo never"], timeout=1.0)
        assert result.timed_out and not result.ok
        assert result.stdout == "started\n"
        assert result.exit_status is None
        assert session.run(["true"]).ok  # the connection survives a timed-out command
    finally:
        pool.close()


def test_many_hosts_in_parallel_share_one_bastion_connection(ctx: ActionContext) -> None:
    runner = HostRunner.for_context(ctx)
    hosts = [runner.inventory.get(n) for n in ("app1", "db1", "mgmt", "peer")]
    outcomes = in_parallel(lambda h: runner.run(h, "probe", "check", ["10.77.0.2", "22", "2"]), hosts)
    assert [o.fields.get("reachable") for o in outcomes] == ["yes"] * 4
    assert runner.pool.connects == 5  # one bastion connection + one per host


def test_collect_triage_stores_a_hashed_evidence_bundle(ctx: ActionContext, registry: ActionRegistry) -> None:
    result = registry.get("hosts.collect_triage").call(
        ctx, {"host": "db1", "hash_files": ["/etc/hostname", "/no/such/file"]}
    )
    assert result.ok, result.error
    [evidence] = result.evidence
    data = Path(evidence["path"]).read_bytes()
    assert hashlib.sha256(data).hexdigest() == evidence["sha256"]
    assert evidence["size"] == len(data)
    assert Path(evidence["path"]).is_relative_to(ctx.settings.state_dir / "evidence" / "test-run")
    text = data.decode()
    for section in (
        "processes",
        "connections",
        "listening",
        "logged_in",
        "recent_logins",
        "crontabs",
        "systemd_units",
        "hashes",
    ):
        assert f"=== {section}\n" in text
    assert "10.77.0.12:22" in text  # db1's own sshd is among the listening sockets
    expected = hashlib.sha256(Path("/etc/hostname").read_bytes()).hexdigest()
    assert f"{expected}  /etc/hostname" in text
    assert "missing  /no/such/file" in text


def test_fan_out_on_one_connection_queues_below_the_hosts_session_limit(
    inventory: Inventory, options: SSHOptions
) -> None:
    # db1's sshd allows 64 sessions per connection; 80 at once would be refused without the per-host cap
    pool = ConnectionPool(inventory, options)
    try:
        session = pool.session(inventory.get("db1"))
        results = in_parallel(lambda i: session.run(["sh", "-c", f"sleep 0.2; echo {i}"]), range(80), max_workers=80)
    finally:
        pool.close()
    assert [r.stdout.strip() for r in results] == [str(i) for i in range(80)], [r for r in results if not r.ok][:2]
    assert all(r.ok for r in results)


def test_hosts_check_logs_in_everywhere_and_names_a_host_with_a_changed_key(tmp_path: Path) -> None:
    from tests.unit.test_cli import run_soar

    env = {"SOAR_INVENTORY_FILE": str(LAB / "inventory.yml"), "SOAR_SSH_KNOWN_HOSTS": str(LAB / "known_hosts")}
    ok = run_soar("hosts", "check", env=env)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    rows = [line.split() for line in ok.stdout.splitlines()[2:]]
    assert rows[:6] == [[name, "ok"] for name in ("bastion", "mgmt", "peer", "web1", "db1", "app1")]
    assert all(status == "ok" for _, status in rows), rows  # and the benchmark's extra hosts, when they are up
    lines = (LAB / "known_hosts").read_text().splitlines()
    db1_key = next(line for line in lines if line.startswith("10.77.0.12 ")).split(" ", 1)[1]
    forged = tmp_path / "known_hosts"
    forged.write_text(
        "".join((f"10.77.0.13 {db1_key}" if line.startswith("10.77.0.13 ") else line) + "\n" for line in lines)
    )
    bad = run_soar("hosts", "check", "app1", env={**env, "SOAR_SSH_KNOWN_HOSTS": str(forged)})
    assert bad.returncode == 2
    assert "app1  presented host key SHA256:" in bad.stdout and "differs from the pinned key" in bad.stdout


def test_a_refused_password_never_appears_in_the_error(
    inventory: Inventory, options: SSHOptions, lab_user: LabUser
) -> None:
    wrong = "Wr0ng-" + lab_user.password
    with pytest.raises(AuthenticationFailed) as info:
        login(inventory, "db1", Credentials(lab_user.name, password=wrong), options)
    assert str(info.value) == f"host db1: authentication as {lab_user.name} was refused"
    assert wrong not in repr(info.value) and lab_user.password not in str(info.value)
    assert "password" not in repr(Credentials(lab_user.name, password=wrong))  # not even in a repr


class StalledAuth(paramiko.ServerInterface):
    """An SSH server that completes the handshake, then sits on every authentication request (sshd stuck in
    PAM or a directory lookup)."""

    def __init__(self, attempts: list[str]) -> None:
        self.attempts = attempts

    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        self.attempts.append(username)
        time.sleep(4)
        return paramiko.AUTH_FAILED


def test_an_authentication_that_never_answers_times_out_and_is_not_called_a_refusal(tmp_path: Path) -> None:
    host_key = paramiko.Ed25519Key.from_private_key_file(str(new_key(tmp_path / "host_key")))
    attempts: list[str] = []
    with ssh_server(host_key, StalledAuth(attempts)) as port:
        host = Host(
            name="stalled",
            address="127.0.0.1",
            port=port,
            user="soar-ctl",
            key=LAB / "id_ed25519",
            host_key=f"{host_key.get_name()} {host_key.get_base64()}",
        )
        started = time.monotonic()
        with pytest.raises(HostUnreachable) as info:
            connect(host, Credentials(host.user, host.key), SSHOptions(connect_timeout=1.0, backoff=0.1))
    assert str(info.value) == "host stalled: no answer to authentication as soar-ctl within 1 s (after 3 attempts)"
    assert attempts == ["soar-ctl"] * 3  # each attempt reached authentication, and waited no longer than the timeout
    assert 3 * 1.0 <= time.monotonic() - started < 3 * 4
