"""Host containment benchmark (not a test): isolate-and-verify latency, 50 hosts in parallel, connection reuse.

Anchor: fire-and-forget containment as Wazuh active response or a bare paramiko script does it: one new
SSH connection per host, the nft ruleset piped once, no verification, no dead-man timer, no peer probe.
Ratios are ours / anchor. The difference is what proving the containment costs (mostly the 1 s wait of
the peer probe, which must go unanswered to show the host is cut off; it overlaps the host's own verify).

The containment watch (``--watch`` runs only it, on app1 of the default lab): one look at an isolation in
force, what it costs (wall, controller CPU, SSH logins, commands), extrapolated to 1,000 containments at the
default interval; and from a drift (``nft flush ruleset``) to its detection and to its repair. Anchor: the
cheapest re-check there is, a bare script's one new connection and one ``nft list table`` (no proof that the
management path takes new connections, no peer probe, no policy, nothing recorded).

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
from typing import Any

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
        celery_eager=True,  # the watch's drift alert is handed to nothing in this process
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


WATCH_LOOKS = 20
DRIFTS = 10
FLEET = 1000


def _counting_logins() -> list[int]:
    """Count SSH logins (every ``transport.connect``: the pool's and verification's) from now on."""
    from soar.hosts import transport

    count = [0]
    real = transport.connect

    def counted(*args: Any, **kwargs: Any) -> Any:
        count[0] += 1
        return real(*args, **kwargs)

    transport.connect = counted  # type: ignore[assignment]
    return count


def _counting_commands() -> list[int]:
    from soar.hosts import runner as runner_module

    count = [0]
    real = runner_module.HostRunner.run

    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        count[0] += 1
        return real(self, *args, **kwargs)

    runner_module.HostRunner.run = counted  # type: ignore[method-assign]
    return count


def _anchor_check(settings: Settings, host: str) -> tuple[float, bool]:
    """A bare re-check: a new connection (through the bastion) and one nft listing."""
    inventory = load_inventory(settings.inventory_path)
    target, bastion = inventory.get(host), inventory.get("bastion")
    options = SSHOptions(known_hosts=settings.ssh_known_hosts)
    started = time.perf_counter()
    via = connect(bastion, Credentials(bastion.user, bastion.key), options)
    session = connect(target, Credentials(target.user, target.key), options, via)
    result = session.run(["sudo", "-n", "nft", "list", "table", "inet", "soar_isolate"])
    elapsed = time.perf_counter() - started
    session.close()
    via.close()
    return elapsed, result.ok


def watch(settings: Settings) -> dict[str, float]:
    """Looks at an isolation of app1 in force, then drifts repaired, through the watch's own functions."""
    from soar.containment import ledger
    from soar.containment import watch as watch_module
    from soar.records.containment import KIND, Containment
    from soar.store.sqlite import SQLiteStore

    registry = load_registry(settings)
    store = SQLiteStore(settings.state_dir / "bench.db")
    ctx = ActionContext(settings=settings)
    spec = registry.get("hosts.isolate_host").spec
    applied = registry.get("hosts.isolate_host").call(ctx, {"host": "app1"})
    _close(ctx)
    assert applied.ok and applied.verified, applied.error
    inst = {"key": "isolate", "params": {"host": "app1"}, "_params": {"host": "app1"}}
    cid = ledger.applied(store, settings, spec, "ctn-bench", "bench", inst, {"host": "app1"}, applied)
    logins, commands = _counting_logins(), _counting_commands()

    def look() -> tuple[float, float, Containment]:
        got = store.get(KIND, cid)
        assert got is not None
        rec = Containment.from_doc(got.doc, cid)
        assert watch_module.claim(store, cid, "bench", 300, rec.next_check)
        cpu, started = _cpu(), time.perf_counter()
        after = watch_module.check(settings, store, cid, "bench")
        assert after is not None
        return time.perf_counter() - started, _cpu() - cpu, after

    walls, cpus = [], []
    logins[0] = commands[0] = 0
    for _ in range(WATCH_LOOKS):
        wall, cpu, rec = look()
        assert rec.last_outcome == "held", rec.history[-1]
        walls.append(wall)
        cpus.append(cpu)
    per_look_logins, per_look_commands = logins[0] / WATCH_LOOKS, commands[0] / WATCH_LOOKS
    detect, repair = [], []
    for _ in range(DRIFTS):
        got = store.get(KIND, cid)
        assert got is not None
        store.put(KIND, cid, {**got.doc, "repairs": 0})  # each drift a first one (max_repairs would escalate)
        subprocess.run(["ip", "netns", "exec", "soar-lab-app1", "nft", "flush", "ruleset"], check=True)
        wall, _, rec = look()
        drift, fixed = rec.history[-2:]
        assert drift.outcome == "drifted" and fixed.outcome == "repaired", rec.history[-2:]
        detect.append((drift.duration_ms or 0) / 1000)
        repair.append(wall)
    cpu = _cpu()
    anchor = [_anchor_check(settings, "app1") for _ in range(WATCH_LOOKS)]
    anchor_cpu = (_cpu() - cpu) / WATCH_LOOKS
    assert all(ok for _, ok in anchor)
    release = registry.get("hosts.release_host").call(ctx, {"host": "app1"})
    _close(ctx)
    assert release.ok, release.error
    store.close()
    return {
        "look_p50": _pct(walls, 50),
        "look_p95": _pct(walls, 95),
        "cpu_per_look": sum(cpus) / len(cpus),
        "logins_per_look": per_look_logins,
        "commands_per_look": per_look_commands,
        "detect_look_p50": _pct(detect, 50),
        "detect_look_p95": _pct(detect, 95),
        "repair_p50": _pct(repair, 50),
        "repair_p95": _pct(repair, 95),
        "anchor_p50": _pct([a for a, _ in anchor], 50),
        "anchor_p95": _pct([a for a, _ in anchor], 95),
        "anchor_cpu": anchor_cpu,
        "interval": settings.containment_watch_interval,
    }


def print_watch(w: dict[str, float]) -> None:
    interval = w["interval"]
    rate = FLEET / interval
    print(f"\nContainment watch: one look at an isolation of app1 in force ({WATCH_LOOKS} looks, through the bastion)")
    print(f"{'':34}{'soar (proven)':>16}{'anchor (bare)':>16}{'ratio':>8}")
    for p in ("p50", "p95"):
        ours, anchor = w[f"look_{p}"], w[f"anchor_{p}"]
        print(f"{'look ' + p + ' s':34}{ours:>16.3f}{anchor:>16.3f}{ours / anchor:>8.2f}")
    ours_cpu, anchor_cpu = w["cpu_per_look"] * 1000, w["anchor_cpu"] * 1000
    print(f"{'controller CPU per look ms':34}{ours_cpu:>16.1f}{anchor_cpu:>16.1f}{ours_cpu / anchor_cpu:>8.2f}")
    print(f"{'SSH logins per look':34}{w['logins_per_look']:>16.2f}{2.0:>16.2f}{w['logins_per_look'] / 2:>8.2f}")
    print(f"{'responder commands per look':34}{w['commands_per_look']:>16.1f}{1.0:>16.1f}")
    print("(soar's logins are the first look's, shared by the looks after it; each look opens one new TCP")
    print(" connection along the management path to read sshd's banner, and its probe peer one to the host)")
    print(f"\n{FLEET:,} containments in force, every {interval:g} s (extrapolated from the looks above)")
    print(f"{'looks per s':34}{rate:>16.1f}")
    print(f"{'SSH logins per s':34}{rate * w['logins_per_look']:>16.1f}")
    print(f"{'controller CPU, cores':34}{rate * w['cpu_per_look']:>16.2f}")
    print(f"{'looks in flight (workers busy)':34}{rate * w['look_p50']:>16.1f}")
    print(f"\nDrift (nft flush ruleset) to detection and to repair ({DRIFTS} drifts; interval {interval:g} s)")
    print(f"{'':34}{'p50 s':>16}{'p95 s':>16}")
    # a drift happens at a uniform moment of the interval: it waits for the next look, then that look runs
    wait50, wait95 = 0.5 * interval, 0.95 * interval
    print(f"{'the drifted look':34}{w['detect_look_p50']:>16.2f}{w['detect_look_p95']:>16.2f}")
    print(f"{'the look + the repair':34}{w['repair_p50']:>16.2f}{w['repair_p95']:>16.2f}")
    print(f"{'drift -> detection':34}{wait50 + w['detect_look_p50']:>16.2f}{wait95 + w['detect_look_p95']:>16.2f}")
    print(f"{'drift -> repaired':34}{wait50 + w['repair_p50']:>16.2f}{wait95 + w['repair_p95']:>16.2f}")
    print("(the wait for the next look is the interval's: half of it at p50, 95 % at p95; the looks are measured)")


def _lab(extra: int) -> None:
    env = {**os.environ, "SOARDEV_LAB_EXTRA": str(extra)}
    subprocess.run([str(REPO / "scripts" / "lab.sh"), "up"], env=env, check=True)


def main() -> int:
    if os.geteuid() != 0:
        print("the SSH lab needs root; run as root after scripts/services.sh up lab", file=sys.stderr)
        return 2
    if "--watch" in sys.argv[1:]:  # only the containment watch, on the default lab
        with host_lock("app1", "db1"), tempfile.TemporaryDirectory() as tmp:
            print_watch(watch(_settings(Path(tmp))))
        return 0
    _lab(PARALLEL_HOSTS - 2)
    try:
        # app1 and db1 are shared with other areas' lab tests: hold them as those tests do
        with host_lock("app1", "db1"), tempfile.TemporaryDirectory() as tmp:
            settings = _settings(Path(tmp))
            one = single(settings)
            many = parallel(settings)
            conn = reuse(settings)
            watched = watch(settings)
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
    print_watch(watched)
    return 0


if __name__ == "__main__":
    sys.exit(main())
