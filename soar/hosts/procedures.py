"""The containment procedures behind ``integrations/hosts.py``: apply, then prove it, or say why not.

Each procedure resolves the host and validates every argument before any
connection (a refusal is a failed result whose ``output.refused`` gives the
reason), returns the exact commands in dry-run, and after ``apply`` closes the
loop (:mod:`soar.hosts.verification`): the responder's ``verify`` runs after a *new*
connection on the management path, and where the inventory names a probe host, a
peer tries a new connection.
"""

from __future__ import annotations

import hashlib
import ipaddress
import time
from collections.abc import Callable
from functools import partial, wraps
from pathlib import Path
from typing import Any, ParamSpec

from soar.actions.model import ActionContext, ActionResult, PlannedCommand
from soar.errors import InputError, SoarError
from soar.hosts import validate
from soar.hosts.errors import SSHError
from soar.hosts.inventory import Host
from soar.hosts.responders import EXIT_NOT_IN_STATE, Outcome
from soar.hosts.runner import HostRunner
from soar.hosts.verification import fresh_verify, probe, probe_args, probe_from_blocked, verify_and_probe
from soar.private import private_dir, write_private

P = ParamSpec("P")


def refused(reason: str) -> ActionResult:
    return ActionResult.failure(f"refused: {reason}", output={"refused": reason}, changed=False)


def guarded(func: Callable[P, ActionResult]) -> Callable[P, ActionResult]:
    """Refusals and SSH failures become failed results (values), never exceptions across the engine."""

    @wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> ActionResult:
        try:
            return func(*args, **kwargs)
        except InputError as exc:
            return refused(exc.message)
        except SSHError as exc:
            return ActionResult.failure(str(exc), output={"unreachable": exc.host})
        except SoarError as exc:
            return ActionResult.failure(str(exc))

    return wrapper


def _start(ctx: ActionContext, host: str) -> tuple[HostRunner, Host]:
    runner = HostRunner.for_context(ctx)
    return runner, runner.inventory.resolve(host)


def _base(outcome: Outcome, commands: list[PlannedCommand]) -> dict[str, Any]:
    r = outcome.result
    return {"stdout": r.stdout, "stderr": r.stderr, "exit_status": r.exit_status, "commands": commands}


def _lost(runner: HostRunner, host: Host, outcome: Outcome) -> bool:
    if outcome.result.lost or outcome.result.timed_out:
        runner.pool.discard(host)
        return True
    return False


# -- isolation -----------------------------------------------------------------------------------------------------


def _backend_args(backend: str | None) -> list[str]:
    """Which firewall a responder uses: by default nft where installed, else iptables."""
    if backend is None:
        return []
    if backend not in ("nft", "iptables"):
        raise InputError(f"parameter backend: {backend!r} is not nft or iptables")
    return ["--backend", backend]


def _isolate_args(runner: HostRunner, host: Host) -> list[str]:
    args: list[str] = []
    for addr in runner.management_addresses(host):
        args += ["--mgmt", addr]
    for endpoint in host.log_endpoints:
        args += ["--log", endpoint]
    return args


def _persist_args(persist: bool, boot_deadman_seconds: int | None = None) -> list[str]:
    """``--persist``: the responder keeps the containment on disk and a boot hook re-applies it (responders/_lib.sh)."""
    if not persist:
        return []
    if boot_deadman_seconds is None:
        return ["--persist"]
    boot = validate.seconds(boot_deadman_seconds, "boot_deadman_seconds", low=10, high=86400)
    return ["--persist", "--boot-deadman", str(boot)]


@guarded
def isolate(
    ctx: ActionContext,
    host: str,
    deadman_seconds: int = 60,
    release_after: int = 0,
    backend: str | None = None,
    persist: bool = True,
    boot_deadman_seconds: int = 900,
) -> ActionResult:
    runner, target = _start(ctx, host)
    deadman = validate.seconds(deadman_seconds, "deadman_seconds", low=3, high=3600)
    release = validate.seconds(release_after, "release_after", low=0)
    backend_args = [*_backend_args(backend), *_persist_args(persist, boot_deadman_seconds)]
    served = sorted(h.name for h in runner.inventory if h.bastion == target.name)
    if served:
        raise InputError(
            f"host {target.name} is the bastion of {', '.join(served[:5])}{' ...' if len(served) > 5 else ''}; "
            "isolating it would cut their management path"
        )
    keep = _isolate_args(runner, target)
    if "--mgmt" not in keep:
        raise InputError(f"host {target.name}: no management or bastion address to keep open; refusing to isolate")
    apply_args = [*keep, "--deadman", str(deadman), "--release-after", str(release), *backend_args]
    plan = [
        runner.plan(target, "isolate", "apply", apply_args),
        runner.plan(target, "isolate", "verify", keep),
    ]
    peer = runner.probe_host(target)
    if peer is not None:
        plan.append(runner.plan(peer, "probe", "check", probe_args(target, expect_reachable=False)))
    plan.append(runner.plan(target, "isolate", "confirm", []))
    if ctx.dry_run:
        return ActionResult(ok=True, commands=plan, output={"host": target.summary(), "keep_open": keep})

    applied = runner.run(target, "isolate", "apply", apply_args)
    base = _base(applied, plan[:1])
    if not applied.ok:
        if _lost(runner, target, applied):
            error = (
                f"host {target.name}: the connection was lost during apply ({applied.describe()}); "
                f"the dead-man timer restores the host within {deadman} s"
            )
        else:
            error = f"host {target.name}: isolate apply failed: {applied.describe()}"
        return ActionResult.failure(error, verified=False, **base)
    check, verification, probe_ok = verify_and_probe(
        runner, target, "isolate", keep, partial(probe, runner, target, expect_reachable=False)
    )
    if check is None:
        return ActionResult.failure(
            f"host {target.name}: the management path failed after isolation; not confirmed, "
            f"the dead-man timer restores the host within {deadman} s",
            verified=False,
            verification=verification,
            **base,
        )
    verified = check.ok and probe_ok
    if not verified:
        return ActionResult.failure(
            f"host {target.name}: isolation not verified; not confirmed, "
            f"the dead-man timer restores it within {deadman} s",
            verified=False,
            verification=verification,
            **base,
        )
    confirmed = runner.run(target, "isolate", "confirm", [])
    verification["deadman"] = "disarmed" if confirmed.ok else f"confirm failed: {confirmed.describe()}"
    return ActionResult(
        ok=confirmed.ok,
        error=None if confirmed.ok else f"host {target.name}: confirm failed; the dead-man timer will restore it",
        verified=True,
        verification=verification,
        changed=applied.fields.get("was_isolated") == "no",
        output={
            "host": target.summary(),
            "keep_open": keep,
            "release_after": release,
            "persisted": applied.fields.get("persisted") == "yes",
            "boot_hook": applied.fields.get("boot_hook"),
        },
        **{**base, "commands": plan},
    )


@guarded
def release(ctx: ActionContext, host: str) -> ActionResult:
    runner, target = _start(ctx, host)
    plan = [runner.plan(target, "isolate", "revert", []), runner.plan(target, "isolate", "verify", [])]
    if ctx.dry_run:
        return ActionResult(ok=True, commands=plan, output={"host": target.summary()})
    reverted = runner.run(target, "isolate", "revert", [])
    base = _base(reverted, plan)
    if not reverted.ok:
        return ActionResult.failure(f"host {target.name}: release failed: {reverted.describe()}", **base)
    check, verification, probe_ok = verify_and_probe(
        runner, target, "isolate", [], partial(probe, runner, target, expect_reachable=True)
    )
    released = check is not None and check.status == EXIT_NOT_IN_STATE
    verified = released and probe_ok
    return ActionResult(
        ok=verified,
        error=None if verified else f"host {target.name}: release not verified",
        verified=verified,
        verification=verification,
        changed=reverted.fields.get("changed") == "yes",
        output={"host": target.summary()},
        **base,
    )


# -- block / unblock an address ------------------------------------------------------------------------------------


def _block_targets(runner: HostRunner, target: Host, ip: str) -> list[str]:
    """The addresses/CIDRs one ``ip`` parameter blocks (a range becomes its CIDRs), none covering a management or
    log-shipping address of the host."""
    nets = validate.ip_networks(ip, "ip")
    keep = [*runner.management_addresses(target), *(e.rsplit(":", 1)[0].strip("[]") for e in target.log_endpoints)]
    for text in nets:
        net = ipaddress.ip_network(text, strict=False)
        for addr in keep:
            if net.overlaps(ipaddress.ip_network(addr, strict=False)):
                raise InputError(f"parameter ip: {ip} covers the management/log-shipping address {addr}; refusing")
    return nets


def _each_network(ip: str, results: list[tuple[str, ActionResult]]) -> ActionResult:
    """One result for a parameter that named several networks: ok and verified only when every one was."""
    if len(results) == 1:
        return results[0][1]
    failed = [f"{net}: {r.error}" for net, r in results if not r.ok]
    verified = [r.verified for _, r in results]
    return ActionResult(
        ok=not failed,
        error="; ".join(failed) or None,
        verified=None if all(v is None for v in verified) else all(v is True for v in verified),
        verification={net: r.verification for net, r in results},
        commands=[c for _, r in results for c in r.commands],
        stdout="".join(r.stdout for _, r in results),
        stderr="".join(r.stderr for _, r in results),
        exit_status=next((r.exit_status for _, r in results if not r.ok), results[-1][1].exit_status),
        changed=any(r.changed for _, r in results),
        output={**results[0][1].output, "ip": ip, "networks": [net for net, _ in results]},
    )


@guarded
def block_ip(
    ctx: ActionContext,
    host: str,
    ip: str,
    expire_seconds: int = 0,
    backend: str | None = None,
    persist: bool = True,
) -> ActionResult:
    runner, target = _start(ctx, host)
    nets = _block_targets(runner, target, ip)
    expire = validate.seconds(expire_seconds, "expire_seconds", low=0)
    backend_args = [*_backend_args(backend), *_persist_args(persist)]
    results: list[tuple[str, ActionResult]] = []
    for blocked in nets:
        results.append((blocked, _block_one(ctx, runner, target, blocked, expire, backend_args)))
        if not results[-1][1].ok:
            break  # the networks blocked so far stay listed in the result; rollback unblocks the whole parameter
    return _each_network(ip, results)


def _block_one(
    ctx: ActionContext, runner: HostRunner, target: Host, blocked: str, expire: int, backend_args: list[str]
) -> ActionResult:
    args = [blocked, "--expire", str(expire), *backend_args]
    plan = [runner.plan(target, "block_ip", "apply", args), runner.plan(target, "block_ip", "verify", [blocked])]
    if ctx.dry_run:
        return ActionResult(ok=True, commands=plan, output={"host": target.summary(), "ip": blocked})
    applied = runner.run(target, "block_ip", "apply", args)
    base = _base(applied, plan)
    if not applied.ok:
        _lost(runner, target, applied)
        return ActionResult.failure(
            f"host {target.name}: block_ip failed: {applied.describe()}", verified=False, **base
        )
    check, verification, probe_ok = verify_and_probe(
        runner, target, "block_ip", [blocked], partial(probe_from_blocked, runner, target, blocked, False)
    )
    verified = check is not None and check.ok and probe_ok
    return ActionResult(
        ok=verified,
        error=None if verified else f"host {target.name}: block of {blocked} not verified",
        verified=verified,
        verification=verification,
        changed=applied.fields.get("was_blocked") == "no",
        output={
            "host": target.summary(),
            "ip": blocked,
            "expire_seconds": expire,
            "backend": applied.fields.get("backend"),
            "persisted": applied.fields.get("persisted") == "yes",
        },
        **base,
    )


@guarded
def unblock_ip(ctx: ActionContext, host: str, ip: str) -> ActionResult:
    runner, target = _start(ctx, host)
    results = [(net, _unblock_one(ctx, runner, target, net)) for net in validate.ip_networks(ip, "ip")]
    return _each_network(ip, results)


def _unblock_one(ctx: ActionContext, runner: HostRunner, target: Host, blocked: str) -> ActionResult:
    plan = [runner.plan(target, "block_ip", "revert", [blocked]), runner.plan(target, "block_ip", "verify", [blocked])]
    if ctx.dry_run:
        return ActionResult(ok=True, commands=plan, output={"host": target.summary(), "ip": blocked})
    reverted = runner.run(target, "block_ip", "revert", [blocked])
    base = _base(reverted, plan)
    if not reverted.ok:
        return ActionResult.failure(f"host {target.name}: unblock_ip failed: {reverted.describe()}", **base)
    check, verification, probe_ok = verify_and_probe(
        runner, target, "block_ip", [blocked], partial(probe_from_blocked, runner, target, blocked, True)
    )
    verified = check is not None and check.status == EXIT_NOT_IN_STATE and probe_ok
    return ActionResult(
        ok=verified,
        error=None if verified else f"host {target.name}: unblock of {blocked} not verified",
        verified=verified,
        verification=verification,
        changed=reverted.fields.get("changed") == "yes",
        output={"host": target.summary(), "ip": blocked},
        **base,
    )


# -- accounts and processes ----------------------------------------------------------------------------------------


def _account(target: Host, user: str) -> tuple[str, list[str]]:
    name = validate.user_name(user, "user")
    if name == "root":
        raise InputError("parameter user: root is never locked or killed by soar")
    if name in target.protected_accounts:
        raise InputError(f"parameter user: {name} is a protected account on {target.name}")
    if name == target.user:
        raise InputError(f"parameter user: {name} is the account soar logs in with on {target.name}")
    protect: list[str] = []
    for other in dict.fromkeys((*target.protected_accounts, target.user)):
        protect += ["--protect", other]
    return name, protect


@guarded
def lock_account(ctx: ActionContext, host: str, user: str, disable_keys: bool = False) -> ActionResult:
    runner, target = _start(ctx, host)
    name, protect = _account(target, user)
    keys = ["--disable-keys"] if disable_keys else []
    plan = [
        runner.plan(target, "lock_account", "apply", [name, *keys, *protect]),
        runner.plan(target, "lock_account", "verify", [name, *keys]),
    ]
    if ctx.dry_run:
        return ActionResult(ok=True, commands=plan, output={"host": target.summary(), "user": name})
    applied = runner.run(target, "lock_account", "apply", [name, *keys, *protect])
    base = _base(applied, plan)
    if not applied.ok:
        _lost(runner, target, applied)
        return ActionResult.failure(
            f"host {target.name}: lock_account failed: {applied.describe()}", verified=False, **base
        )
    check, verification = fresh_verify(runner, target, "lock_account", [name, *keys])
    verified = check is not None and check.ok
    return ActionResult(
        ok=verified,
        error=None if verified else f"host {target.name}: lock of {name} not verified",
        verified=verified,
        verification=verification,
        changed=applied.fields.get("changed") == "yes",
        output={"host": target.summary(), "user": name, "keys_disabled": disable_keys},
        **base,
    )


@guarded
def unlock_account(ctx: ActionContext, host: str, user: str) -> ActionResult:
    runner, target = _start(ctx, host)
    name, _ = _account(target, user)
    plan = [
        runner.plan(target, "lock_account", "revert", [name]),
        runner.plan(target, "lock_account", "verify", [name]),
    ]
    if ctx.dry_run:
        return ActionResult(ok=True, commands=plan, output={"host": target.summary(), "user": name})
    reverted = runner.run(target, "lock_account", "revert", [name])
    base = _base(reverted, plan)
    if not reverted.ok:
        return ActionResult.failure(f"host {target.name}: unlock_account failed: {reverted.describe()}", **base)
    check, verification = fresh_verify(runner, target, "lock_account", [name])
    fields = check.fields if check is not None else {}
    # the state before soar's lock, restored exactly: an account an admin had locked stays locked
    expected = {k: reverted.fields.get(f"expect_{k}", "no") for k in ("locked", "expired")}
    verification["expected"] = expected
    verified = check is not None and all(fields.get(k) == v for k, v in expected.items())
    return ActionResult(
        ok=verified,
        error=None if verified else f"host {target.name}: {name} not restored to its state before the lock",
        verified=verified,
        verification=verification,
        changed=reverted.fields.get("changed") == "yes",
        output={"host": target.summary(), "user": name},
        **base,
    )


@guarded
def kill_sessions(ctx: ActionContext, host: str, user: str) -> ActionResult:
    runner, target = _start(ctx, host)
    name, protect = _account(target, user)
    plan = [
        runner.plan(target, "kill_sessions", "apply", [name, *protect]),
        runner.plan(target, "kill_sessions", "verify", [name, *protect]),
    ]
    if ctx.dry_run:
        return ActionResult(ok=True, commands=plan, output={"host": target.summary(), "user": name})
    applied = runner.run(target, "kill_sessions", "apply", [name, *protect])
    base = _base(applied, plan)
    if not applied.ok and applied.status != EXIT_NOT_IN_STATE:
        return ActionResult.failure(f"host {target.name}: kill_sessions failed: {applied.describe()}", **base)
    check, verification = fresh_verify(runner, target, "kill_sessions", [name, *protect])
    verified = check is not None and check.ok
    return ActionResult(
        ok=verified,
        error=None if verified else f"host {target.name}: processes of {name} remain",
        verified=verified,
        verification=verification,
        changed=applied.fields.get("killed", "0") != "0",
        output={"host": target.summary(), "user": name, "killed": int(applied.fields.get("killed", "0") or 0)},
        **base,
    )


@guarded
def kill_process(ctx: ActionContext, host: str, pid: int, executable: str) -> ActionResult:
    runner, target = _start(ctx, host)
    number = validate.pid(pid, "pid")
    exe = validate.absolute_path(executable, "executable")
    args = [str(number), exe]
    plan = [runner.plan(target, "kill_process", "apply", args), runner.plan(target, "kill_process", "verify", args)]
    if ctx.dry_run:
        return ActionResult(ok=True, commands=plan, output={"host": target.summary(), "pid": number})
    applied = runner.run(target, "kill_process", "apply", args)
    base = _base(applied, plan)
    if not applied.ok:
        return ActionResult.failure(f"host {target.name}: kill_process failed: {applied.describe()}", **base)
    check, verification = fresh_verify(runner, target, "kill_process", args)
    verified = check is not None and check.ok
    return ActionResult(
        ok=verified,
        error=None if verified else f"host {target.name}: pid {number} still runs {exe}",
        verified=verified,
        verification=verification,
        changed=applied.fields.get("killed") == "yes",
        output={"host": target.summary(), "pid": number, "executable": exe},
        **base,
    )


# -- triage --------------------------------------------------------------------------------------------------------


def store_evidence(state_dir: Path, run_id: str | None, host: str, kind: str, data: bytes) -> dict[str, Any]:
    """Write an evidence file once (never overwritten) and describe it with its sha256."""
    folder = private_dir(state_dir / "evidence" / (run_id or "adhoc"))
    digest = hashlib.sha256(data).hexdigest()
    path = folder / f"{host}-{kind}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{digest[:12]}.txt"
    write_private(path, data)  # 0600, never overwritten
    return {"name": path.name, "sha256": digest, "path": str(path), "size": len(data), "host": host, "kind": kind}


@guarded
def collect_triage(ctx: ActionContext, host: str, hash_files: list[str] | None = None) -> ActionResult:
    runner, target = _start(ctx, host)
    args: list[str] = ["collect"]
    for i, path in enumerate(hash_files or []):
        args += ["--hash", validate.absolute_path(path, f"hash_files[{i}]")]
    plan = [runner.plan(target, "triage", args[0], args[1:])]
    if ctx.dry_run:
        return ActionResult(ok=True, commands=plan, output={"host": target.summary()})
    out = runner.run(target, "triage", args[0], args[1:])
    base = _base(out, plan)
    if not out.ok:
        return ActionResult.failure(f"host {target.name}: collect_triage failed: {out.describe()}", **base)
    evidence = store_evidence(ctx.settings.state_dir, ctx.run_id, target.name, "triage", out.result.stdout.encode())
    base["stdout"] = ""  # the bundle is the evidence file; the run record keeps its hash, not a copy
    return ActionResult(
        ok=True,
        verified=None,
        output={"host": target.summary(), "sections": out.fields.get("sections")},
        evidence=[evidence],
        **base,
    )


# -- logging health ------------------------------------------------------------------------------------------------

LOGGING_FIELDS: tuple[str, ...] = ("auditd", "rsyslog", "journald", "audit_rules", "log_mount")
LOGGING_FIELDS += ("log_disk_free_kb", "log_disk_used_pct", "log_inodes_free", "log_inodes_used_pct")
DISK_FULL_PCT = 95  # /var/log this full (space or inodes) is reported as the likely cause of a silence


def logging_findings(fields: dict[str, Any]) -> list[str]:
    """What a person should look at first on a host that went silent, from ``check_logging``'s fields."""
    found = [
        f"{svc} is {fields[svc]}" for svc in ("auditd", "rsyslog") if fields.get(svc) not in (None, "active", "running")
    ]
    if fields.get("audit_rules") == "0":
        found.append("no audit rules are loaded")
    for key, what in (("log_disk_used_pct", "space"), ("log_inodes_used_pct", "inodes")):
        used = fields.get(key)
        if used is not None and str(used).isdigit() and int(used) >= DISK_FULL_PCT:
            found.append(f"{fields.get('log_mount', '/var/log')} is {used}% full ({what})")
    return found


@guarded
def check_logging(ctx: ActionContext, host: str) -> ActionResult:
    runner, target = _start(ctx, host)
    plan = [runner.plan(target, "logging", "check", [])]
    if ctx.dry_run:
        return ActionResult(ok=True, commands=plan, output={"host": target.summary()})
    out = runner.run(target, "logging", "check", [])
    base = _base(out, plan)
    if not out.ok:
        return ActionResult.failure(f"host {target.name}: check_logging failed: {out.describe()}", **base)
    fields = {k: out.fields[k] for k in LOGGING_FIELDS if k in out.fields}
    findings = logging_findings(fields)
    summary = "; ".join(findings) if findings else "auditd and rsyslog run, /var/log has room"
    output = {"host": target.summary(), **fields, "findings": findings, "summary": summary}
    return ActionResult(ok=True, verified=None, output=output, **base)
