"""soar's own rule types benchmark (not a test): ``new_terms`` vs ElastAlert2's ``new_term``; ``silence``, 1,000 hosts.

**new_terms** (issue #18): ``BENCH_NT_EVENTS`` (1,000,000) SSH logins over the last 13 days with ``BENCH_NT_COMBOS``
(10,000) distinct (user, host, source) combinations in a throwaway ECS-mapped index; then a stream of
``BENCH_EPS`` (50) logins a second, 1 in 100 a new combination, for ``BENCH_SECONDS`` (60). Each tool runs as its
own process against the same Elasticsearch through the counting proxy of ``bench_detection`` (requests sorted by
kind), with the same 14-day history, interval ``BENCH_INTERVAL`` (5 s) and 10 s look-back:

- **soar**: the Detector's cycles over ``rules/…soar.yml``-style ``new_terms`` rule (fields user.name, host.name,
  source.ip), its state in the Elasticsearch store (``store: elasticsearch``);
- **ElastAlert2** 2.19 (``.cache/elastalert2-venv``): a ``new_term`` rule, ``fields: [[user.name, host.name,
  source.ip]]`` (a composite key), ``terms_window_size: 14 days``, the same base query as ``filter``,
  ``use_keyword_postfix: false`` (ECS keywords), ``alert: debug``.

History build: from the tool's first search of the events index to the end of its build (soar: its first cycle,
which builds the history; ElastAlert2: its "Found N unique values" log line), the requests it took and the
process's peak resident memory (VmHWM) then. Per cycle: requests, the tool's CPU and Elasticsearch's CPU over the
measured seconds, divided by the cycles run. Alerts: first sightings each tool raised while measured (ElastAlert2
keeps its history in memory only, so a restart loses it; soar's is in the store).

**silence**: ``BENCH_HOSTS`` (1,000) inventory hosts report once a minute; 10 stop at different times. soar's
cycles run in process at simulated times (every interval) over a 5-minute silence window: the per-cycle wall time
and requests (a cycle that judges a bucket, and one that does not), and each stopped host's time to alert (from
its last event to the cycle that alerts), which the window, the bucket alignment and the interval bound.

Run: ``python -m tests.benchmarks.bench_baselines`` (``BENCH_EA=0`` leaves ElastAlert2 out; ``--silence`` or
``--new-terms`` runs one part).
"""

from __future__ import annotations

import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import yaml

from tests.benchmarks.bench_detection import (
    REPO,
    CountingProxy,
    ensure_elastalert,
    es_cpu_seconds,
    fmt,
    print_table,
    proc_cpu,
    ratio,
)

N_EVENTS = int(os.environ.get("BENCH_NT_EVENTS", "1000000"))
COMBOS = int(os.environ.get("BENCH_NT_COMBOS", "10000"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "60"))
INTERVAL = float(os.environ.get("BENCH_INTERVAL", "5"))
EPS = int(os.environ.get("BENCH_EPS", "50"))
HOSTS = int(os.environ.get("BENCH_HOSTS", "1000"))
LOOKBACK = 10.0
DAY = 86400.0

NEW_TERMS = """\
soar_rule: new_terms
title: First SSH login to a host from a source for an account (benchmark)
id: 7d0f3c52-9a1e-4c8e-b3f4-1b2c3d4e5f60
status: test
level: low
logsource: {{product: linux, service: sshd}}
detection:
  selection: {{system.auth.ssh.event: Accepted}}
  condition: selection
new_terms:
  fields: [user.name, host.name, source.ip]
  history: 14d
soar: {{interval: {interval}s, lookback: {lookback}s}}
"""

SILENCE = """\
soar_rule: silence
title: A host went silent (benchmark)
id: 7d0f3c52-9a1e-4c8e-b3f4-1b2c3d4e5f61
status: test
level: high
logsource: {{product: linux, service: auth}}
detection:
  selection: {{host.name|exists: true}}
  condition: selection
silence: {{window: 5m, min_count: 1, seen_within: 1h}}
soar: {{interval: {interval}s, lookback: {lookback}s}}
"""


def combination(i: int) -> tuple[str, str, str]:
    """The i-th (user, host, source): distinct for every i."""
    return f"user{i % 100}", f"host{(i // 100) % 50}", f"10.{(i // 65536) % 256}.{(i // 256) % 256}.{i % 256}"


def login(ts: float, user: str, host: str, ip: str) -> dict[str, Any]:
    """An accepted SSH login as the system integration writes it (system.auth; fields of its pipeline output)."""
    from soar.scheduler.planning import iso

    return {
        "@timestamp": iso(ts),
        "event": {
            "action": "ssh_login",
            "category": ["authentication", "session"],
            "dataset": "system.auth",
            "kind": "event",
            "outcome": "success",
            "type": ["authentication_success", "info"],
        },
        "host": {"name": host},
        "process": {"name": "sshd", "pid": 4000},
        "source": {"ip": ip, "port": 50000},
        "system": {"auth": {"ssh": {"event": "Accepted", "method": "publickey"}}},
        "user": {"name": user},
    }


def bulk(es: Any, index: str, events: list[dict[str, Any]]) -> None:
    for start in range(0, len(events), 5000):
        ops: list[dict[str, Any]] = []
        for ev in events[start : start + 5000]:
            ops += [{"create": {"_index": index}}, ev]
        resp = es.bulk(operations=ops, refresh=False)
        assert not resp["errors"], resp["items"][:1]


def memory_kb(pid: int, key: str = "VmHWM") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


class Stream:
    """Logins in real time: mostly known combinations, 1 in 100 a new one (a new source for a known account).

    Each stream's new sources are its own (10.<200 + n>.x.y): a stream's new combinations are new to every tool."""

    made = 0

    def __init__(self, es: Any, index: str) -> None:
        self.es, self.index = es, index
        Stream.made += 1
        self.net = 200 + Stream.made
        self.stop = threading.Event()
        self.new = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.rng = random.Random(7)

    def _run(self) -> None:
        while not self.stop.wait(1.0):
            now = time.time()
            batch = []
            for _ in range(EPS):
                if self.rng.random() < 0.01:
                    self.new += 1
                    user, host, _ip = combination(self.rng.randrange(COMBOS))
                    batch.append(login(now, user, host, f"10.{self.net}.{self.new // 250}.{self.new % 250 + 1}"))
                else:
                    batch.append(login(now, *combination(self.rng.randrange(COMBOS))))
            bulk(self.es, self.index, batch)
            self.es.indices.refresh(index=self.index)

    def __enter__(self) -> Stream:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


# -- soar's side: a cycle process ---------------------------------------------------------------------------


def soar_worker(config_path: str) -> int:
    """``--soar-worker CONFIG``: soar's cycles in real time, one JSON line per cycle (what the parent measures)."""
    from soar.config import load_settings
    from soar.connections import elasticsearch_client
    from soar.scheduler.cycle import Detector
    from soar.scheduler.loading import load_scheduled_rules
    from soar.store import open_store

    cfg = json.loads(Path(config_path).read_text())
    settings = load_settings(
        content_root=Path(cfg["content"]),
        state_dir=Path(cfg["state"]),
        events_index=cfg["index"],
        elasticsearch_url=cfg["es_url"],
        celery_eager=True,
        store="elasticsearch",
        index_prefix=cfg["prefix"],
        detection_ingest_delay=1.0,
        elasticsearch_timeout=120,
    )
    rules, errors = load_scheduled_rules(settings)
    if errors:
        raise SystemExit(str(errors[0]))
    detector = Detector(settings, open_store(settings), elasticsearch_client(settings), lambda _id: None)
    print(json.dumps({"ready": True}), flush=True)
    time.sleep(1.0)
    deadline = time.time() + float(cfg["seconds"])
    while time.time() < deadline:
        started = time.time()
        report = detector.run(rules, started)
        alerts = sum(run.alerts for run in report.runs.values())
        errors = [run.error.message for run in report.runs.values() if run.error is not None]
        print(json.dumps({"cycle": report.seconds, "alerts": alerts, "errors": errors}), flush=True)
        time.sleep(max(0.0, INTERVAL - (time.time() - started)))
    return 0


def run_soar(es: Any, proxy: CountingProxy, index: str, work: Path) -> dict[str, Any]:
    content, state = work / "soar", work / "soar-state"
    (content / "rules").mkdir(parents=True)
    (content / "rules" / "first_login.soar.yml").write_text(NEW_TERMS.format(interval=INTERVAL, lookback=LOOKBACK))
    prefix = f"soar-bench-{uuid.uuid4().hex[:8]}"
    config = work / "soar.json"
    total = SECONDS + 600  # the build, then the measured seconds; the process is stopped when measured
    config.write_text(json.dumps(dict(content=str(content), state=str(state), index=index, es_url=proxy.url,
                                      prefix=prefix, seconds=total)))  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOAR_")}
    cmd = [sys.executable, "-m", "tests.benchmarks.bench_baselines", "--soar-worker", str(config)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env, cwd=REPO)
    assert proc.stdout is not None
    try:
        assert json.loads(proc.stdout.readline()).get("ready"), "the soar worker did not start"
        proxy.take()
        first = json.loads(proc.stdout.readline())  # the first cycle: it builds the history
        build = {
            "seconds": first["cycle"],
            "requests": sum(proxy.take().values()),
            "hwm_mb": memory_kb(proc.pid) / 1024,
        }
        with Stream(es, index) as stream:
            time.sleep(2 * INTERVAL)
            proxy.take()
            cpu0, es0, t0 = proc_cpu(proc.pid), es_cpu_seconds(es), time.time()
            cycles, lines, failed = 0, [], []
            while time.time() - t0 < SECONDS:
                line = json.loads(proc.stdout.readline())
                cycles += 1
                lines.append(line["cycle"])
                failed += line["errors"]
            cpu, es_cpu, wall = proc_cpu(proc.pid) - cpu0, es_cpu_seconds(es) - es0, time.time() - t0
            counts = proxy.take()
        time.sleep(3 * INTERVAL)  # the stream stopped: its last new combinations get their cycle
        new = stream.new
        from soar.store.elastic import ElasticsearchStore

        found = ElasticsearchStore(es, prefix).find("alerts", limit=10_000)  # first sightings of its stream's sources
        alerts = sum(str(r.doc["group"]["key"].get("source.ip", "")).startswith(f"10.{stream.net}.") for r in found)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        es.options(ignore_status=404).indices.delete(index=f"{prefix}-*")
    return {
        "build": build,
        "cycles": cycles,
        "per_cycle_requests": sum(counts.values()) / max(1, cycles),
        "per_cycle_kinds": {k: counts[k] / max(1, cycles) for k in ("events", "book reads", "book writes")},
        "cpu_per_cycle": cpu / max(1, cycles),
        "es_cpu": es_cpu,
        "cycle_p50": statistics.median(lines) if lines else float("nan"),
        "notes": sorted(set(failed)),
        "alerts": alerts,
        "new_in_stream": new,
        "wall": wall,
    }


# -- ElastAlert2's side -------------------------------------------------------------------------------------


def run_elastalert(
    exe: Path, es: Any, proxy: CountingProxy, index: str, work: Path, query: dict[str, Any]
) -> dict[str, Any]:
    writeback = f"elastalert-bench-{uuid.uuid4().hex[:8]}"
    rules_dir = work / "ea_rules"
    rules_dir.mkdir()
    rule = {
        "name": "first_login_bench",
        "type": "new_term",
        "index": index,
        "fields": [["user.name", "host.name", "source.ip"]],
        "terms_window_size": {"days": 14},
        "use_keyword_postfix": False,
        "filter": [query],
        "alert": ["debug"],
        "realert": {"minutes": 0},
    }
    (rules_dir / "first_login.yaml").write_text(yaml.safe_dump(rule))
    config = {
        "rules_folder": str(rules_dir),
        "run_every": {"seconds": INTERVAL},
        "buffer_time": {"seconds": LOOKBACK},
        "es_host": "127.0.0.1",
        "es_port": proxy.port,
        "writeback_index": writeback,
        "alert_time_limit": {"minutes": 5},
    }
    cfg = work / "ea_config.yaml"
    cfg.write_text(yaml.safe_dump(config))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOAR_")}
    created = subprocess.run([str(exe.parent / "elastalert-create-index"), "--config", str(cfg)], capture_output=True,
                             text=True, env=env, cwd=work, timeout=300, check=False)  # fmt: skip
    if created.returncode != 0:
        return {"error": "elastalert-create-index failed: " + (created.stderr or created.stdout).strip()[-400:]}
    log = work / "elastalert.log"
    proxy.take()
    with log.open("w") as out:
        proc = subprocess.Popen([str(exe), "--config", str(cfg), "--verbose"], stdout=out, stderr=subprocess.STDOUT,
                                env=env, cwd=work)  # fmt: skip
        try:
            while proxy.peek("events") == 0 and proc.poll() is None:
                time.sleep(0.05)
            t_first = time.monotonic()
            deadline = t_first + 900
            while "unique values" not in log.read_text(errors="replace") and time.monotonic() < deadline:
                if proc.poll() is not None:
                    return {"error": "ElastAlert2 exited: " + log.read_text(errors="replace")[-600:]}
                time.sleep(0.05)
            build = {"seconds": time.monotonic() - t_first, "requests": sum(proxy.take().values()),
                     "hwm_mb": memory_kb(proc.pid) / 1024}  # fmt: skip
            found = next(ln for ln in log.read_text(errors="replace").splitlines() if "unique values" in ln)
            while "query hits" not in log.read_text(errors="replace") and time.monotonic() < deadline:
                time.sleep(0.2)
            before_stream = log.read_text(errors="replace")
            with Stream(es, index) as stream:
                time.sleep(15 + 2 * INTERVAL)  # past its random first-run delay (0-15 s)
                proxy.take()
                runs0 = log.read_text(errors="replace").count("query hits")
                cpu0, es0, t0 = proc_cpu(proc.pid), es_cpu_seconds(es), time.time()
                time.sleep(SECONDS)
                cpu, es_cpu, wall = proc_cpu(proc.pid) - cpu0, es_cpu_seconds(es) - es0, time.time() - t0
                counts = proxy.take()
                cycles = log.read_text(errors="replace").count("query hits") - runs0
            time.sleep(3 * INTERVAL)  # the stream stopped: its last new combinations get their run
            text = log.read_text(errors="replace")
            new, net = stream.new, stream.net
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    notes = sorted({ln.split(" {")[0][:160] for ln in text.splitlines() if ln.startswith(("ERROR", "WARNING"))})
    # its debug alerter logs each alert's event: the first sightings of its stream's sources
    alerts = text[len(before_stream) :].count(f'"ip": "10.{net}.')
    es.options(ignore_status=404).indices.delete(index=f"{writeback}*")
    return {
        "build": build,
        "found": found.split("INFO:")[-1].strip()[:120],
        "notes": notes,
        "cycles": cycles,
        "per_cycle_requests": sum(counts.values()) / max(1, cycles),
        "per_cycle_kinds": {k: counts[k] / max(1, cycles) for k in ("events", "book reads", "book writes")},
        "cpu_per_cycle": cpu / max(1, cycles),
        "es_cpu": es_cpu,
        "alerts": alerts,
        "new_in_stream": new,
        "wall": wall,
    }


def bench_new_terms(es: Any, es_url: str) -> None:
    from soar.config import load_settings
    from soar.detection.elastic import create_events_index
    from soar.scheduler.loading import load_scheduled_rules

    index = f"soar-bench-nt-{uuid.uuid4().hex[:8]}"
    create_events_index(es, index)
    now = time.time()
    rng = random.Random(11)
    t0 = time.perf_counter()
    span = 13 * DAY - 3600
    for start in range(0, N_EVENTS, 50_000):
        batch = []
        for i in range(start, min(N_EVENTS, start + 50_000)):
            ts = now - 3600 - rng.random() * span
            batch.append(login(ts, *combination(i % COMBOS)))
        bulk(es, index, batch)
    es.indices.refresh(index=index)
    print(f"indexed {N_EVENTS:,} logins ({COMBOS:,} combinations) over 13 days in {time.perf_counter() - t0:.0f} s")
    node = next(iter(es.nodes.info(node_id="_local")["nodes"].values()))  # GET / is not served here (405)
    version = {"number": node["version"], "build_flavor": "default", "distribution": "elasticsearch"}
    root_info = {"name": node.get("name"), "cluster_name": "soar-bench", "tagline": "You Know, for Search"}
    root_info["version"] = version
    try:
        with tempfile.TemporaryDirectory(prefix="soar-bench-nt-") as tmp:
            work = Path(tmp)
            (work / "q" / "rules").mkdir(parents=True)
            (work / "q" / "rules" / "r.soar.yml").write_text(NEW_TERMS.format(interval=INTERVAL, lookback=LOOKBACK))
            settings = load_settings(content_root=work / "q", state_dir=work / "q" / "state", events_index=index)
            rules, errors = load_scheduled_rules(settings)
            assert not errors and rules, errors
            query = rules[0].baseline.query
            results: dict[str, dict[str, Any]] = {}
            proxy = CountingProxy(es_url, root_info, index)
            with Stream(es, index):  # Elasticsearch's CPU with the stream alone: what neither tool costs
                time.sleep(5)
                es0, t0 = es_cpu_seconds(es), time.time()
                time.sleep(min(SECONDS, 30))
                es_rate = (es_cpu_seconds(es) - es0) / (time.time() - t0)
            try:
                results["soar"] = run_soar(es, proxy, index, work)
                exe = ensure_elastalert() if os.environ.get("BENCH_EA", "1") != "0" else None
                if exe is not None:
                    results["ElastAlert2"] = run_elastalert(exe, es, proxy, index, work, query)
            finally:
                proxy.close()
    finally:
        es.options(ignore_status=404).indices.delete(index=index)
    for r in results.values():  # Elasticsearch's CPU above the stream alone, per cycle
        if "es_cpu" in r:
            r["es_cpu_per_cycle"] = max(0.0, r["es_cpu"] - es_rate * r["wall"]) / max(1, r["cycles"])
    headers = ["tool", "build s", "build requests", "peak RSS MB", "per-cycle requests", "events/reads/writes",
               "CPU ms/cycle", "ES CPU ms/cycle", "cycles", "alerts / new streamed"]  # fmt: skip
    rows = []
    for name, r in results.items():
        if "error" in r:
            rows.append([name, r["error"][:80], *[""] * (len(headers) - 2)])
            continue
        b = r["build"]
        kinds = "/".join(fmt(v) for v in r["per_cycle_kinds"].values())
        cpu_ms = [fmt(r["cpu_per_cycle"] * 1000), fmt(r["es_cpu_per_cycle"] * 1000)]
        rows.append([name, fmt(b["seconds"]), str(b["requests"]), fmt(b["hwm_mb"]), fmt(r["per_cycle_requests"]),
                     kinds, *cpu_ms, str(r["cycles"]), f"{r['alerts']} / {r['new_in_stream']}"])  # fmt: skip
    print_table(
        f"\nnew_terms: {N_EVENTS:,} events, {COMBOS:,} combinations, 14 d history; then {EPS}/s for {SECONDS:.0f} s, "
        f"interval {INTERVAL:.0f} s",
        headers,
        rows,
    )
    ours, theirs = results.get("soar", {}), results.get("ElastAlert2", {})

    def cpu(r: dict[str, Any]) -> float:
        return float(r["cpu_per_cycle"] + r["es_cpu_per_cycle"])

    if "build" in ours and "build" in theirs:
        print(
            "ElastAlert2 / soar: build time "
            f"{fmt(ratio(theirs['build']['seconds'], ours['build']['seconds']))}x, per-cycle requests "
            f"{fmt(ratio(theirs['per_cycle_requests'], ours['per_cycle_requests']))}x, per-cycle CPU (tool + ES) "
            f"{fmt(ratio(cpu(theirs), cpu(ours)))}x"
        )
        if ours.get("notes"):
            print(f"soar's cycle errors: {ours['notes']}")
        if "found" in theirs:
            print(f"ElastAlert2's build: {theirs['found']}; its log's errors and warnings: {theirs['notes'] or 'none'}")
    print(f"Elasticsearch with the stream alone: {es_rate * 1000:.0f} ms CPU a second (subtracted above)")


# -- silence -----------------------------------------------------------------------------------------------


def bench_silence(es: Any) -> None:
    from soar.config import load_settings
    from soar.detection.elastic import create_events_index
    from soar.scheduler import baselines
    from soar.scheduler.cycle import Detector
    from soar.scheduler.loading import load_scheduled_rules
    from soar.scheduler.planning import iso
    from soar.store.sqlite import SQLiteStore

    index = f"soar-bench-sil-{uuid.uuid4().hex[:8]}"
    create_events_index(es, index)
    window = 300.0
    start = (time.time() // window) * window - 3600  # an hour ago, on a bucket edge
    stops = {f"h{n:04d}": start + 1800 + n * 47.0 for n in range(10)}  # ten hosts stop at different moments
    events = []
    for n in range(HOSTS):
        host = f"h{n:04d}"
        for minute in range(60):
            ts = start + minute * 60 + (n % 60)
            if ts < stops.get(host, float("inf")):
                event = {"@timestamp": iso(ts), "event": {"dataset": "system.auth"}, "host": {"name": host}}
                event |= {"process": {"name": "cron"}, "message": "pam_unix(cron:session): session opened"}
                events.append(event)
    bulk(es, index, events)
    es.indices.refresh(index=index)
    try:
        with tempfile.TemporaryDirectory(prefix="soar-bench-sil-") as tmp:
            content = Path(tmp)
            (content / "rules").mkdir()
            (content / "rules" / "silent.soar.yml").write_text(SILENCE.format(interval=INTERVAL, lookback=LOOKBACK))
            hosts = "".join(f"  h{n:04d}: {{address: 10.1.{n // 250}.{n % 250 + 1}}}\n" for n in range(HOSTS))
            (content / "inventory.yml").write_text("hosts:\n" + hosts)
            settings = load_settings(content_root=content, state_dir=content / "state", events_index=index,
                                     celery_eager=True, detection_ingest_delay=0.0)  # fmt: skip
            rules, errors = load_scheduled_rules(settings)
            assert not errors, errors
            store = SQLiteStore(content / "state.sqlite3")
            baselines.forget_process_state()
            detector = Detector(settings, store, es, lambda _id: None)
            judging, idle, alerted_at = [], [], {}
            tick = start + 1500.0
            while tick <= start + 3600:
                report = detector.run(rules, tick)
                run = report.runs[rules[0].id]
                (judging if run.hits else idle).append((report.seconds, report.requests.total))
                for rec in store.find("alerts", limit=100):
                    host = rec.doc["group"]["key"]["host.name"]
                    alerted_at.setdefault(host, tick)
                tick += INTERVAL
            store.close()
    finally:
        es.options(ignore_status=404).indices.delete(index=index)
    delays = [alerted_at[h] - stop for h, stop in stops.items() if h in alerted_at]
    missing = sorted(set(stops) - set(alerted_at))
    extra = sorted(set(alerted_at) - set(stops))
    rows = []
    for name, cycles in (("judges a bucket", judging), ("judges none", idle)):
        if cycles:
            secs = sorted(c[0] for c in cycles)
            rows.append([name, str(len(cycles)), fmt(statistics.median(secs) * 1000), fmt(secs[-1] * 1000),
                         fmt(statistics.mean(c[1] for c in cycles))])  # fmt: skip
    print_table(
        f"\nsilence: {HOSTS:,} inventory hosts reporting once a minute, window 5 m, interval {INTERVAL:.0f} s",
        ["cycle", "cycles", "p50 ms", "max ms", "ES requests"],
        rows,
    )
    print(
        f"time to alert after a host stops (from when it stops to the alerting cycle), {len(delays)} of {len(stops)}: "
        f"min {fmt(min(delays, default=float('nan')))} s, max {fmt(max(delays, default=float('nan')))} s "
        f"(bound: one window after the stop's bucket + one interval = up to {window * 2 + INTERVAL:.0f} s); "
        f"missed: {missing or 'none'}; alerts for hosts still reporting: {extra or 'none'}"
    )


def main(argv: list[str] | None = None) -> int:
    from soar.config import load_settings
    from soar.connections import elasticsearch_client

    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--soar-worker"]:
        return soar_worker(args[1])
    settings = load_settings()
    es = elasticsearch_client(settings, request_timeout=120)
    if "--silence" not in args:
        bench_new_terms(es, settings.elasticsearch_url)
    if "--new-terms" not in args:
        bench_silence(es)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
