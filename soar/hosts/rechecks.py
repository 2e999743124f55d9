"""Proving a containment again, for the containment watch: the same verification as after ``apply``, read-only.

Each check runs what proved the containment first (:mod:`soar.hosts.verification`: a new connection along
the management path, the responder's ``verify``, the probe peer where there is one) and says what it found
in the watch's terms (docs/hosts.md, "The containment watch"):

- held: ``ok`` and ``verified``;
- unreachable: ``output.unreachable`` (the management path did not answer: no verdict on the containment);
- drifted: ``verified=False`` and ``output.found``, one line per thing missing (rules gone, account unlocked,
  the dead-man timer re-armed by the boot hook after a reboot, a peer that connects).

``output.boot_id`` is the host's boot id (``/proc/sys/kernel/random/boot_id``) when the responder says it.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from soar.actions.model import ActionContext, ActionResult
from soar.hosts.inventory import Host
from soar.hosts.procedures import _account, _isolate_args, _start, guarded
from soar.hosts.responders import Outcome
from soar.hosts.verification import fresh_verify, probe, probe_from_blocked, verify_and_probe


def _isolation_found(fields: dict[str, str]) -> list[str]:
    if fields.get("isolated") == "no":
        return ["isolation rules missing (table or chains gone)"]
    found = []
    if "policy" in fields or "open" in fields:
        found.append(f"isolation rules changed: {fields.get('open') or 'a chain no longer drops'} lets traffic in")
    if "management_missing" in fields:
        found.append(f"management rules missing for {fields['management_missing']}")
    if fields.get("deadman") == "armed":
        found.append(
            "dead-man timer armed: the host rebooted and its boot hook re-applied the isolation, "
            "which lifts itself unless confirmed"
        )
    return found


def _lock_found(fields: dict[str, str]) -> list[str]:
    found = []
    if fields.get("locked") == "no":
        found.append("account unlocked (password usable)")
    if fields.get("expired") == "no":
        found.append("account no longer expired")
    if fields.get("keys_disabled") == "no":
        found.append("authorized_keys restored")
    if fields.get("login") == "allowed":
        found.append("a login as the user is allowed")
    return found


def _peer_found(verification: dict[str, Any]) -> list[str]:
    """A peer that connected, or whose connection something answered, proves an opening; a peer that could not
    be asked proves nothing about the host (noted in the verification, not a drift)."""
    peer = verification.get("peer_probe") or {}
    if peer.get("reachable") in ("yes", "refused") and peer.get("expected") == "no":
        answered = "connects to" if peer.get("reachable") == "yes" else "gets an answer from"
        return [f"probe host {peer.get('from')} {answered} {peer.get('to')}"]
    return []


def _result(
    target: Host, check: Outcome | None, verification: dict[str, Any], found: list[str], **output: Any
) -> ActionResult:
    if check is None:
        return ActionResult.failure(
            f"host {target.name}: management path did not answer",
            output={"unreachable": target.name, **output},
            verification=verification,
        )
    out = {**output, "found": found, "host": target.name}
    if check.fields.get("boot_id"):
        out["boot_id"] = check.fields["boot_id"]
    if found:
        return ActionResult.failure(
            f"host {target.name}: " + "; ".join(found), verified=False, verification=verification, output=out
        )
    return ActionResult(ok=True, verified=True, verification=verification, output=out)


@guarded
def isolation(ctx: ActionContext, host: str) -> ActionResult:
    runner, target = _start(ctx, host)
    keep = _isolate_args(runner, target)
    if ctx.dry_run:
        return ActionResult(ok=True, commands=[runner.plan(target, "isolate", "verify", keep)])
    check, verification, _ = verify_and_probe(
        runner, target, "isolate", keep, partial(probe, runner, target, expect_reachable=False)
    )
    if check is None:
        return _result(target, None, verification, [])
    found = _isolation_found(check.fields) or ([] if check.ok else [f"isolate verify: {check.describe()}"])
    return _result(target, check, verification, [*found, *_peer_found(verification)])


@guarded
def block(ctx: ActionContext, host: str, ip: str) -> ActionResult:
    from soar.hosts import validate

    runner, target = _start(ctx, host)
    nets = validate.ip_networks(ip, "ip")
    if ctx.dry_run:
        return ActionResult(ok=True, commands=[runner.plan(target, "block_ip", "verify", [n]) for n in nets])
    found: list[str] = []
    verification: dict[str, Any] = {}
    last: Outcome | None = None
    for net in nets:
        check, verification[net], _ = verify_and_probe(
            runner, target, "block_ip", [net], partial(probe_from_blocked, runner, target, net, False)
        )
        if check is None:
            return _result(target, None, verification, [], ip=ip)
        last = check
        if check.fields.get("blocked") == "no" or not check.ok:
            found.append(f"block of {net} missing")
        found += _peer_found(verification[net])
    return _result(target, last, verification, found, ip=ip)


@guarded
def lock(ctx: ActionContext, host: str, user: str, disable_keys: bool = False) -> ActionResult:
    runner, target = _start(ctx, host)
    name, _ = _account(target, user)
    args = [name, *(["--disable-keys"] if disable_keys else [])]
    if ctx.dry_run:
        return ActionResult(ok=True, commands=[runner.plan(target, "lock_account", "verify", args)])
    check, verification = fresh_verify(runner, target, "lock_account", args)
    found = [] if check is None else _lock_found(check.fields) or ([] if check.ok else [check.describe()])
    return _result(target, check, verification, found, user=name)
