"""Host containment benchmark (not a test): isolate-and-verify latency, 50 hosts in parallel, connection reuse.

Anchor: fire-and-forget containment as Wazuh active response or a bare paramiko script does it: one new
SSH connection per host, the nft ruleset piped once, no verification, no dead-man timer, no peer probe.
Ratios are ours / anchor. The difference is what proving the containment costs (mostly the 1 s wait of
the peer probe, which must go unanswered to show the host is cut off; it overlaps the host's own verify).

Run: ``python -m tests.benchmarks.bench_hosts`` as root (it brings up 48 extra lab hosts with
``SOARDEV_LAB_EXTRA=48 scripts/lab.sh up`` and prunes them afterwards).
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from soar.actions import ActionContext, load_registry
from soar.config import Settings, load_settings
from soar.hosts.inventory import load_inventory
from soar.hosts.responders import load_responder
from soar.hosts.runner import RESOURCE_KEY, HostRunner, in_parallel
from soar.hosts.transport import ConnectionPool, Credentials, SSHOptions, connect
from tests.integration.hosts.lab import host_lock

REPO = Path(__file__).resolve().parents[2]
LAB = REPO / ".cache" / "lab"
SINGLE_RUNS = 10
PARALLEL_HOSTS = 50
REUSE_COMMANDS = 20


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(round(p / 100 * (len(ordered) - 1)), len(ordered) - 1)]


def _settings(tmp: Path) -> Settings:
    return load_settings(
        content_root=REPO,
        state_dir=tmp / "state",
        inventory_file=LAB / "inventory.yml",
        ssh_known_hosts=LAB / "known_hosts",
    )


def _close(ctx: ActionContext) -> None:
    runner = ctx.resources.pop(RESOURCE_KEY, None)
    if isinstance(runner, HostRunner):
        runner.close()


def _anchor_isolate(settings: Settings, host: str) -> float:
    """Fresh connections, one piped apply, nothing checked."""
    inventory = load_inventory(settings.inventory_path)
    target = inventory.get(host)
    options = SSHOptions(known_hosts=settings.ssh_known_hosts)
    responder = load_responder(settings, "isolate")
    args = ["--mgmt", "10.77.0.2", "--mgmt", "10.77.0.3", "--deadman", "60"]
    started = time.perf_counter()
    bastion = inventory.get("bastion")
    via = connect(bastion, Credentials(bastion.user, bastion.key), options)
    session = connect(target, Credentials(target.user, target.key), options, via)
    result = session.run(responder.command(target, "apply", args).argv, stdin=responder.script.encode())
    elapsed = time.perf_counter() - started
    session.run(responder.command(target, "revert", []).argv, stdin=responder.script.encode())
    session.close()
    via.close()
    assert result.ok, result.stderr
    return elapsed


def single(settings: Settings) -> dict[str, float]:
    registry = load_registry(settings)
    ours: list[float] = []
    anchor: list[float] = []
    for _ in range(SINGLE_RUNS):
        ctx = ActionContext(settings=settings)  # a new run each time: connections are not reused across runs
        started = time.perf_counter()
        result = registry.get("hosts.isolate_host").call(ctx, {"host": "app1"})
        ours.append(time.perf_counter() - started)
        assert result.ok and result.verified, result.error
        registry.get("hosts.release_host").call(ctx, {"host": "app1"})
        _close(ctx)
        anchor.append(_anchor_isolate(settings, "app1"))
    return {
        "ours_p50": _pct(ours, 50),
        "ours_p95": _pct(ours, 95),
        "anchor_p50": _pct(anchor, 50),
        "anchor_p95": _pct(anchor, 95),
    }


def parallel(settings: Settings) -> dict[str, float]:
    inventory = load_inventory(settings.inventory_path)
    names = ["app1", "db1", *sorted(n for n in inventory.hosts if n.startswith("t"))][:PARALLEL_HOSTS]
    if len(names) < PARALLEL_HOSTS:
        raise SystemExit(f"only {len(names)} lab targets; run SOARDEV_LAB_EXTRA=48 scripts/lab.sh up")
    registry = load_registry(settings)
    ctx = ActionContext(settings=settings)
    isolate = registry.get("hosts.isolate_host")
    cpu = _cpu()
    started = time.perf_counter()
    results = in_parallel(lambda n: isolate.call(ctx, {"host": n}), names, max_workers=PARALLEL_HOSTS)
    ours = time.perf_counter() - started
    ours_cpu = _cpu() - cpu
    verified = sum(1 for r in results if r.ok and r.verified)
    release = registry.get("hosts.release_host")
    in_parallel(lambda n: release.call(ctx, {"host": n}), names, max_workers=PARALLEL_HOSTS)
    _close(ctx)
    cpu = _cpu()
    started = time.perf_counter()
    in_parallel(lambda n: _anchor_isolate(settings, n), names, max_workers=PARALLEL_HOSTS)
    anchor = time.perf_counter() - started
    return {
        "ours": ours,
        "anchor": anchor,
        "ours_cpu": ours_cpu,
        "anchor_cpu": _cpu() - cpu,
        "verified": float(verified),
        "hosts": float(len(names)),
    }


def _cpu() -> float:
    """CPU seconds of this process (the controller), all threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def reuse(settings: Settings) -> dict[str, float]:
    inventory = load_inventory(settings.inventory_path)
    options = SSHOptions(known_hosts=settings.ssh_known_hosts)
    app1, bastion = inventory.get("app1"), inventory.get("bastion")
    pool = ConnectionPool(inventory, options)
    started = time.perf_counter()
    for _ in range(REUSE_COMMANDS):
        assert pool.session(app1).run(["true"]).ok
    pooled = (time.perf_counter() - started) / REUSE_COMMANDS
    pool.close()
    started = time.perf_counter()
    for _ in range(REUSE_COMMANDS):
        via = connect(bastion, Credentials(bastion.user, bastion.key), options)
        session = connect(app1, Credentials(app1.user, app1.key), options, via)
        assert session.run(["true"]).ok
        session.close()
        via.close()
    fresh = (time.perf_counter() - started) / REUSE_COMMANDS
    return {"pooled": pooled, "fresh": fresh}


def _lab(extra: int) -> None:
    env = {**os.environ, "SOARDEV_LAB_EXTRA": str(extra)}
    subprocess.run([str(REPO / "scripts" / "lab.sh"), "up"], env=env, check=True)


def main() -> int:
    if os.geteuid() != 0:
        print("the SSH lab needs root; run as root after scripts/services.sh up lab", file=sys.stderr)
        return 2
    _lab(PARALLEL_HOSTS - 2)
    try:
        # app1 and db1 are shared with other areas' lab tests: hold them as those tests do
        with host_lock("app1", "db1"), tempfile.TemporaryDirectory() as tmp:
            settings = _settings(Path(tmp))
            one = single(settings)
            many = parallel(settings)
            conn = reuse(settings)
    finally:
        _lab(0)
    print(f"\nIsolate one host, through the bastion ({SINGLE_RUNS} runs, each a new run with new connections)")
    print(f"{'':30}{'soar (verified)':>18}{'anchor (unverified)':>22}{'ratio':>8}")
    for p in ("p50", "p95"):
        ours, anchor = one[f"ours_{p}"], one[f"anchor_{p}"]
        print(f"{p + ' s':30}{ours:>18.3f}{anchor:>22.3f}{ours / anchor:>8.2f}")
    print(f"\n{int(many['hosts'])} hosts isolated in parallel on {os.cpu_count()} cores (goal: <= 10 s wall)")
    print(f"{'':30}{'soar':>18}{'anchor':>22}{'ratio':>8}")
    print(f"{'wall s':30}{many['ours']:>18.2f}{many['anchor']:>22.2f}{many['ours'] / many['anchor']:>8.2f}")
    print(
        f"{'controller CPU s':30}{many['ours_cpu']:>18.2f}{many['anchor_cpu']:>22.2f}"
        f"{many['ours_cpu'] / many['anchor_cpu']:>8.2f}"
    )
    print(f"{'verified':30}{int(many['verified']):>18}{'-':>22}")
    print(
        "(the 50 lab hosts' sshd, sudo and nft run on the same cores as the controller;"
        f" load average at the end: {os.getloadavg()[0]:.1f})"
    )
    print(f"\nOne command on app1 ({REUSE_COMMANDS} commands)")
    print(f"{'':30}{'pooled':>18}{'new connection':>22}{'ratio':>8}")
    print(
        f"{'ms per command':30}{conn['pooled'] * 1000:>18.1f}{conn['fresh'] * 1000:>22.1f}"
        f"{conn['pooled'] / conn['fresh']:>8.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
