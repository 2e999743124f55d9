"""Host containment over SSH: the actions playbooks call (``hosts.*``).

Each action pipes a responder from ``responders/`` to the host, verifies the
effect over a new connection (and from a probe peer where the inventory names
one) and can be undone by its ``revert`` action. The procedures live in
``soar.hosts.procedures``; this module only declares them.
"""

from __future__ import annotations

from soar.actions import ActionContext, ActionResult, action
from soar.hosts import procedures, rechecks


@action(
    "hosts.isolate_host",
    impact="contain",
    idempotent=True,
    revert="hosts.release_host",
    targets={"host": "host"},
    verify="hosts.check_isolation",
    lasts="release_after",
)
def isolate_host(
    ctx: ActionContext,
    host: str,
    deadman_seconds: int = 60,
    release_after: int = 0,
    backend: str | None = None,
    persist: bool = True,
    boot_deadman_seconds: int = 900,
) -> ActionResult:
    """Cut a host off the network except management, bastion and log shipping; dead-man timer until verified.

    ``persist``: re-applied at boot (with a dead-man timer of ``boot_deadman_seconds``) until released.
    """
    return procedures.isolate(ctx, host, deadman_seconds, release_after, backend, persist, boot_deadman_seconds)


@action("hosts.release_host", impact="contain", idempotent=True, targets={"host": "host"})
def release_host(ctx: ActionContext, host: str) -> ActionResult:
    """Remove the isolation of a host and prove a peer can reach it again."""
    return procedures.release(ctx, host)


@action(
    "hosts.block_ip",
    impact="contain",
    idempotent=True,
    revert="hosts.unblock_ip",
    targets={"host": "host", "ip": "ip"},
    verify="hosts.check_block",
    lasts="expire_seconds",
)
def block_ip(
    ctx: ActionContext,
    host: str,
    ip: str,
    expire_seconds: int = 0,
    backend: str | None = None,
    persist: bool = True,
) -> ActionResult:
    """Drop traffic from and to an address or network on a host, optionally expiring (nft or iptables).

    ``persist``: re-applied at boot with what is left of its expiry, until unblocked or expired.
    """
    return procedures.block_ip(ctx, host, ip, expire_seconds, backend, persist)


@action("hosts.unblock_ip", impact="contain", idempotent=True, targets={"host": "host", "ip": "ip"})
def unblock_ip(ctx: ActionContext, host: str, ip: str) -> ActionResult:
    """Remove a block made by hosts.block_ip."""
    return procedures.unblock_ip(ctx, host, ip)


@action(
    "hosts.lock_account",
    impact="contain",
    idempotent=True,
    revert="hosts.unlock_account",
    targets={"host": "host", "user": "account"},
    verify="hosts.check_lock",
)
def lock_account(ctx: ActionContext, host: str, user: str, disable_keys: bool = False) -> ActionResult:
    """Lock the password and expire the account (key logins refused too); never root or protected accounts."""
    return procedures.lock_account(ctx, host, user, disable_keys)


@action("hosts.unlock_account", impact="contain", idempotent=True, targets={"host": "host", "user": "account"})
def unlock_account(ctx: ActionContext, host: str, user: str) -> ActionResult:
    """Restore an account locked by hosts.lock_account to its previous state."""
    return procedures.unlock_account(ctx, host, user)


@action("hosts.check_isolation", impact="read", idempotent=True, targets={"host": "host"})
def check_isolation(ctx: ActionContext, host: str) -> ActionResult:
    """Prove an isolation is still in force, as after it was applied (the containment watch runs it)."""
    return rechecks.isolation(ctx, host)


@action("hosts.check_block", impact="read", idempotent=True, targets={"host": "host", "ip": "ip"})
def check_block(ctx: ActionContext, host: str, ip: str) -> ActionResult:
    """Prove a block made by hosts.block_ip is still in force."""
    return rechecks.block(ctx, host, ip)


@action("hosts.check_lock", impact="read", idempotent=True, targets={"host": "host", "user": "account"})
def check_lock(ctx: ActionContext, host: str, user: str, disable_keys: bool = False) -> ActionResult:
    """Prove an account locked by hosts.lock_account is still locked (and its keys still aside when they were)."""
    return rechecks.lock(ctx, host, user, disable_keys)


@action("hosts.kill_sessions", impact="destructive", idempotent=True, targets={"host": "host", "user": "account"})
def kill_sessions(ctx: ActionContext, host: str, user: str) -> ActionResult:
    """End every session and process of a user on a host."""
    return procedures.kill_sessions(ctx, host, user)


@action("hosts.kill_process", impact="destructive", idempotent=True, targets={"host": "host", "pid": "process"})
def kill_process(ctx: ActionContext, host: str, pid: int, executable: str) -> ActionResult:
    """Kill a process, only if it still runs the expected executable."""
    return procedures.kill_process(ctx, host, pid, executable)


@action("hosts.check_logging", impact="read", idempotent=True, targets={"host": "host"})
def check_logging(ctx: ActionContext, host: str) -> ActionResult:
    """Is the host's logging working: auditd, rsyslog and journald running, audit rules loaded, /var/log not full."""
    return procedures.check_logging(ctx, host)


@action("hosts.collect_triage", impact="read", idempotent=True, targets={"host": "host"})
def collect_triage(ctx: ActionContext, host: str, hash_files: list[str] | None = None) -> ActionResult:
    """Snapshot processes, connections, logins, crontabs, units and file hashes into an evidence bundle."""
    return procedures.collect_triage(ctx, host, hash_files)
