"""Real actions for the engine's tests: they write to files under the state dir, so effects are observable.

Every call appends one JSON line to ``<state_dir>/testkit/calls.jsonl`` (action, params,
run, step, pid), so a test can count exactly how often an action ran and where.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from soar.actions import ActionContext, ActionResult, PlannedCommand, action


def _dir(ctx: ActionContext) -> Path:
    path = Path(ctx.settings.state_dir) / "testkit"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _log(ctx: ActionContext, name: str, **params: Any) -> None:
    line = json.dumps(
        {"action": name, "run": ctx.run_id, "step": ctx.step_id, "pid": os.getpid(), "t": time.time(), **params}
    )
    with (_dir(ctx) / "calls.jsonl").open("a", encoding="utf-8") as fh:
        fh.write(line + "\n")


def calls(state_dir: Path) -> list[dict[str, Any]]:
    path = Path(state_dir) / "testkit" / "calls.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@action("testkit.contain", impact="contain", idempotent=True, revert="testkit.release", targets={"host": "host"})
def contain(ctx: ActionContext, host: str, note: str = "") -> ActionResult:
    """Mark a host contained (a file per host)."""
    cmd = PlannedCommand(host=host, argv=("testkit-contain", host))
    if ctx.dry_run:
        return ActionResult(ok=True, commands=[cmd])
    _log(ctx, "testkit.contain", host=host, note=note)
    (_dir(ctx) / f"contained-{host}").write_text(ctx.run_id or "", encoding="utf-8")
    return ActionResult(ok=True, output={"host": host}, verified=True, commands=[cmd], changed=True)


@action("testkit.block", impact="contain", idempotent=True, targets={"ip": "ip"})
def block(ctx: ActionContext, ip: str) -> ActionResult:
    """Record a block of an address, CIDR or range exactly as the policy let it through."""
    cmd = PlannedCommand(host="testkit", argv=("testkit-block", ip))
    if ctx.dry_run:
        return ActionResult(ok=True, commands=[cmd])
    _log(ctx, "testkit.block", ip=ip)
    return ActionResult(ok=True, output={"ip": ip}, verified=True, commands=[cmd], changed=True)


@action("testkit.release", impact="contain", idempotent=True, targets={"host": "host"})
def release(ctx: ActionContext, host: str) -> ActionResult:
    """Undo testkit.contain."""
    if ctx.dry_run:
        return ActionResult(ok=True)
    _log(ctx, "testkit.release", host=host)
    (_dir(ctx) / f"contained-{host}").unlink(missing_ok=True)
    return ActionResult(ok=True, output={"host": host}, changed=True)


@action("testkit.lock", impact="contain", idempotent=False, targets={"user": "account"})
def lock(ctx: ActionContext, user: str) -> ActionResult:
    """A non-idempotent containment: it must never run twice."""
    if ctx.dry_run:
        return ActionResult(ok=True)
    _log(ctx, "testkit.lock", user=user)
    return ActionResult(ok=True, output={"user": user})


@action("testkit.flaky", impact="read", idempotent=True)
def flaky(ctx: ActionContext, key: str, fail_times: int) -> ActionResult:
    """Fail the first ``fail_times`` calls for ``key``, then succeed."""
    if ctx.dry_run:
        return ActionResult(ok=True)
    counter = _dir(ctx) / f"flaky-{key}"
    n = int(counter.read_text()) + 1 if counter.exists() else 1
    counter.write_text(str(n))
    _log(ctx, "testkit.flaky", key=key, n=n)
    if n <= fail_times:
        return ActionResult.failure(f"planned failure {n} of {fail_times}", exit_status=1, stderr="boom")
    return ActionResult(ok=True, output={"n": n}, exit_status=0, stdout="ok")


@action("testkit.fail", impact="contain", idempotent=True, targets={"host": "host"})
def fail(ctx: ActionContext, host: str) -> ActionResult:
    """A containment that always fails (circuit breaker, rollback)."""
    if ctx.dry_run:
        return ActionResult(ok=True)
    _log(ctx, "testkit.fail", host=host)
    return ActionResult.failure("the host refused", exit_status=3)


@action("testkit.sleep", impact="read", idempotent=True)
def sleep(ctx: ActionContext, seconds: float, marker: str = "") -> ActionResult:
    """Sleep (timeouts; a window to kill a worker mid-step)."""
    if ctx.dry_run:
        return ActionResult(ok=True)
    _log(ctx, "testkit.sleep", seconds=seconds, marker=marker)
    time.sleep(seconds)
    return ActionResult(ok=True, output={"slept": seconds})


@action("testkit.hang", impact="contain", idempotent=True, targets={"host": "host"})
def hang(ctx: ActionContext, host: str) -> ActionResult:
    """Act on a host until the test lets it go (a ``let-go-<host>`` file), whatever the step's timeout says."""
    if ctx.dry_run:
        return ActionResult(ok=True)
    _log(ctx, "testkit.hang", host=host)
    gate = _dir(ctx) / f"let-go-{host}"
    while not gate.exists():
        time.sleep(0.01)
    _log(ctx, "testkit.hang.done", host=host)
    return ActionResult(ok=True, output={"host": host})


class Handle:
    """A resource a run opens (as the hosts' runner opens SSH connections): closing it leaves a file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def close(self) -> None:
        self.path.touch()


@action("testkit.connect", impact="read", idempotent=True)
def connect(ctx: ActionContext, name: str) -> ActionResult:
    """Use the run's resource ``name``, opening it on first use."""
    if ctx.dry_run:
        return ActionResult(ok=True)
    first = name not in ctx.resources
    ctx.resources.setdefault(name, Handle(_dir(ctx) / f"closed-{name}-{ctx.run_id}"))
    _log(ctx, "testkit.connect", resource=name, first=first, lent_store="store" in ctx.resources)
    return ActionResult(ok=True, output={"first": first})


@action("testkit.note", impact="notify", idempotent=True)
def note(ctx: ActionContext, text: str) -> ActionResult:
    """Record a message (a notification stand-in)."""
    if ctx.dry_run:
        return ActionResult(ok=True, output={"would_note": text})
    _log(ctx, "testkit.note", text=text)
    return ActionResult(ok=True, output={"text": text})


@action("testkit.refuse", impact="contain", idempotent=True, targets={"host": "host"})
def refuse(ctx: ActionContext, host: str) -> ActionResult:
    """Refuse like a host action refusing a bad argument: a failed result that no retry can fix."""
    if not ctx.dry_run:
        _log(ctx, "testkit.refuse", host=host)
    return ActionResult.failure("refused: bad argument", output={"refused": "bad argument"})


@action("testkit.leak", impact="read", idempotent=True, secrets=("key",))
def leak(ctx: ActionContext, what: str) -> ActionResult:
    """An action that leaks its own secret into its output, to prove run records redact it. (soar's own secrets
    it cannot leak: a content root's integration gets settings without them.)"""
    key = ctx.secrets["key"]
    if ctx.settings.audit_hmac_key is not None:
        return ActionResult.failure("soar's audit key reached a content root's integration")
    return ActionResult(
        ok=True, stdout=f"{what}: key={key}", stderr=f"debug {key}", output={"password": "hunter2", "note": key}
    )


@action("testkit.slow_contain", impact="contain", idempotent=True, revert="testkit.release", targets={"host": "host"})
def slow_contain(ctx: ActionContext, host: str, seconds: float = 0.4) -> ActionResult:
    """A containment that takes a while, logging when it began and ended (how many ran at once)."""
    if ctx.dry_run:
        return ActionResult(ok=True)
    began = time.time()
    time.sleep(seconds)
    (_dir(ctx) / f"contained-{host}").write_text(ctx.run_id or "", encoding="utf-8")
    _log(ctx, "testkit.slow_contain", host=host, began=began, ended=time.time())
    return ActionResult(ok=True, output={"host": host}, verified=True, changed=True)


def _gated(ctx: ActionContext, name: str, gate: str, seconds: float, **target: str) -> ActionResult:
    """Log the call as it begins, then hold until the test opens ``gate`` (a file; at most ``seconds``),
    so an attempt is surely in flight when a worker is killed."""
    if ctx.dry_run:
        return ActionResult(ok=True)
    _log(ctx, name, gate=gate, **target)
    opened = _dir(ctx) / f"gate-{gate}"
    deadline = time.monotonic() + seconds
    while gate and not opened.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return ActionResult(ok=True, output=target, changed=True)


@action("testkit.gated_contain", impact="contain", idempotent=True, targets={"host": "host"})
def gated_contain(ctx: ActionContext, host: str, gate: str = "", seconds: float = 60.0) -> ActionResult:
    """An idempotent containment that holds until its gate opens."""
    return _gated(ctx, "testkit.gated_contain", gate, seconds, host=host)


@action("testkit.gated_lock", impact="contain", idempotent=False, targets={"user": "account"})
def gated_lock(ctx: ActionContext, user: str, gate: str = "", seconds: float = 60.0) -> ActionResult:
    """A non-idempotent containment that holds until its gate opens: it must never run twice."""
    return _gated(ctx, "testkit.gated_lock", gate, seconds, user=user)


def open_gate(state_dir: Path, gate: str) -> None:
    """Let every attempt waiting on ``gate`` (and every later one) through."""
    path = Path(state_dir) / "testkit"
    path.mkdir(parents=True, exist_ok=True)
    (path / f"gate-{gate}").touch()
