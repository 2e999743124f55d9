"""Continuous detection benchmark (not a test): soar's scheduler vs ElastAlert2 on the same Elasticsearch.

Synthetic ECS Linux events (auth, process, file) stream into a throwaway index at a steady
rate while N rules (100, then 500) run every 5 s:

- **soar**: the scheduler's cycle in-process (what a worker runs): all due rules in one
  ``_msearch``, alerts into the embedded store.
- **ElastAlert2** (``elastalert2`` from PyPI, in its own virtualenv under ``.cache/``): the
  same Sigma rules converted by ``sigma convert -t elastalert`` with soar's ``ecs_linux``
  pipeline, ``run_every: 5s``, ``realert: 0``, ``alert: debug``.

Both talk to Elasticsearch through a small counting HTTP proxy on loopback, which counts
every request. The integ-test Elasticsearch here does not serve ``GET /`` (405), which
ElastAlert2 calls once at start-up to learn the server version; the proxy answers that one
request itself with the node's real version from ``_nodes/_local``. Nothing else is changed.

Reported per tool: ES requests per round (every rule evaluated once) and per cycle (soar
runs each rule at its own phase of the interval, so a cycle holds a share of the rules;
ElastAlert2 runs each rule on its own, so its "cycle" is a round), cycle wall time, CPU seconds per 1,000 rule
evaluations (soar: the detection thread's CPU; ElastAlert2: its process's user+system
time) and p50/p95 event-to-alert latency (alert creation time − event @timestamp).
Goals: ≥ 10× fewer requests, ≥ 5× less CPU per evaluation, p95 ≤ interval + 2 s.

A second table puts correlation rules in one cycle with 100 rules: soar searches their base
rules inside the cycle's ``_msearch``; the anchor is the earlier way, each correlation fetched
on its own by the detection engine after the plain rules' cycle.

Run: ``python -m tests.benchmarks.bench_detection [seconds-per-run]`` (default 40), or
``python -m tests.benchmarks.bench_detection --correlations`` for the second table alone.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml

REPO = Path(__file__).resolve().parents[2]
EA_VENV = REPO / ".cache" / "elastalert2-venv"
INTERVAL = 5.0
RULE_COUNTS = tuple(int(n) for n in os.environ.get("BENCH_RULES", "100,500").split(","))
EVENTS_PER_SECOND = 60
MATCHES_PER_SECOND = 2


# -- a counting proxy -------------------------------------------------------------------------


class CountingProxy:
    """Forwards HTTP to Elasticsearch and counts requests; answers ``GET /`` with the node's version."""

    def __init__(self, target: str, root_info: dict[str, Any]) -> None:
        parsed = urlparse(target)
        self.host, self.port_to = parsed.hostname or "127.0.0.1", parsed.port or 9200
        self.count = 0
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                return

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                with proxy.lock:
                    proxy.count += 1
                if self.command in ("GET", "HEAD") and self.path.split("?")[0] == "/":
                    data = json.dumps(root_info).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("X-Elastic-Product", "Elasticsearch")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    if self.command == "GET":
                        self.wfile.write(data)
                    return
                conn = http.client.HTTPConnection(proxy.host, proxy.port_to, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                conn.close()

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _forward

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:
                return  # a client hanging up (ElastAlert2 terminated) is not news

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def take(self) -> int:
        with self.lock:
            n, self.count = self.count, 0
        return n

    def close(self) -> None:
        self.server.shutdown()


# -- rules and events ---------------------------------------------------------------------------

KINDS = ("process", "auth", "file")


def rule_yaml(i: int) -> str:
    kind = KINDS[i % 3]
    head = (
        f"title: Bench {kind} {i}\nid: {uuid.UUID(int=0xB0E0000000004000800000000000 + i)}\nstatus: test\nlevel: high\n"
    )
    if kind == "process":
        body = "logsource: {product: linux, category: process_creation}\n"
        body += f"detection:\n  sel: {{CommandLine|contains: 'bench-proc-{i} '}}\n  condition: sel\n"
    elif kind == "auth":
        body = "logsource: {product: linux, service: auth}\n"
        body += f"detection:\n  sel: {{User: 'benchuser{i}', event.outcome: failure}}\n  condition: sel\n"
    else:
        body = "logsource: {product: linux, category: file_event}\n"
        body += f"detection:\n  sel: {{TargetFilename|endswith: '/bench-{i}.sh'}}\n  condition: sel\n"
    return head + body + f"soar: {{interval: {int(INTERVAL)}s, lookback: 10s}}\n"


def make_event(ts: float, match: int | None, rng: random.Random) -> dict[str, Any]:
    """An ECS event; ``match`` makes it match rule number ``match``."""
    from soar.scheduler.planning import iso

    kind = KINDS[match % 3] if match is not None else rng.choice(KINDS)
    n = match if match is not None else rng.randrange(10**6, 10**7)
    host = {"name": f"host-{rng.randrange(50)}"}
    if kind == "process":
        return {
            "@timestamp": iso(ts),
            "event": {"category": ["process"], "type": ["start"]},
            "process": {"command_line": f"/bin/sh -c bench-proc-{n} x", "executable": "/bin/sh", "pid": 7},
            "host": host,
            "user": {"name": "www-data"},
        }
    if kind == "auth":
        return {
            "@timestamp": iso(ts),
            "event": {"dataset": "system.auth", "outcome": "failure", "category": ["authentication"]},
            "user": {"name": f"benchuser{n}"},
            "source": {"ip": f"10.0.{rng.randrange(255)}.{rng.randrange(255)}"},
            "host": host,
        }
    return {
        "@timestamp": iso(ts),
        "event": {"category": ["file"], "type": ["creation"]},
        "file": {"path": f"/tmp/bench-{n}.sh"},
        "host": host,
    }


class Stream:
    """Index EVENTS_PER_SECOND events a second (MATCHES_PER_SECOND of them matching a random rule)."""

    def __init__(self, es: Any, index: str, rules: int) -> None:
        self.es, self.index, self.rules = es, index, rules
        self.stop = threading.Event()
        self.rng = random.Random(7)
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            now = time.time()
            ops: list[dict[str, Any]] = []
            for k in range(EVENTS_PER_SECOND // 2):
                match = self.rng.randrange(self.rules) if k < MATCHES_PER_SECOND // 2 else None
                ops += [{"index": {"_index": self.index}}, make_event(now, match, self.rng)]
            self.es.bulk(operations=ops)
            self.stop.wait(0.5)

    def __enter__(self) -> Stream:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=10)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


# -- soar ----------------------------------------------------------------------------------------


def run_soar(
    es_url: str, proxy: CountingProxy, index: str, content: Path, seconds: float, n_rules: int
) -> dict[str, Any]:
    from soar.config import load_settings
    from soar.connections import elasticsearch_client
    from soar.scheduler.cycle import Detector
    from soar.scheduler.loading import load_scheduled_rules
    from soar.scheduler.loop import MemoryLeases, Scheduler
    from soar.scheduler.planning import parse_time
    from soar.store.sqlite import SQLiteStore

    settings = load_settings(
        content_root=content,
        state_dir=content / "state",
        events_index=index,
        elasticsearch_url=proxy.url,
        celery_eager=True,
        elasticsearch_timeout=60,
    )
    rules, errors = load_scheduled_rules(settings)  # compiled once, as a warm worker has them
    if errors:
        raise SystemExit(f"rule errors: {errors[0]}")
    store = SQLiteStore(content / "state" / "bench.sqlite3")
    client = elasticsearch_client(settings)
    detector = Detector(settings, store, client, lambda _id: None)
    by_id = {r.id: r for r in rules}
    cycles: list[dict[str, float]] = []
    leases = MemoryLeases()
    cpu = [0.0]
    evaluations = [0]

    def send(ids: list[str]) -> None:
        c0 = time.thread_time()
        report = detector.run([by_id[i] for i in ids])
        cpu[0] += time.thread_time() - c0
        evaluations[0] += len(ids)
        cycles.append({"seconds": report.seconds, "rules": len(ids)})
        leases.release(ids)

    stop = threading.Event()
    proxy.take()
    sched = Scheduler(settings, store, leases, send)
    thread = threading.Thread(target=sched.run_forever, args=(stop, 0.25), daemon=True)
    thread.start()
    time.sleep(seconds)
    stop.set()
    thread.join(timeout=120)
    requests = proxy.take()
    latencies = []
    for rec in store.find("alerts", limit=100_000):
        detected, first = parse_time(rec.doc["@timestamp"]), parse_time(rec.doc.get("first_event_time"))
        if detected is not None and first is not None:
            latencies.append(detected - first)
    store.close()
    client.close()
    rounds = max(1.0, evaluations[0] / n_rules)
    return {
        "requests_per_round": requests / rounds,
        "requests_per_cycle": requests / max(1, len(cycles)),
        "rules_per_cycle": statistics.mean(c["rules"] for c in cycles) if cycles else 0.0,
        "cycle_seconds": statistics.median(c["seconds"] for c in cycles) if cycles else float("nan"),
        "cpu_per_1000": 1000 * cpu[0] / max(1, evaluations[0]),
        "p50": percentile(latencies, 0.5),
        "p95": percentile(latencies, 0.95),
        "alerts": len(latencies),
        "evaluations": evaluations[0],
        "cycles": len(cycles),
    }


# -- correlations: inside the cycle's _msearch vs fetched one by one ------------------------------

CORRELATIONS = int(os.environ.get("BENCH_CORRELATIONS", "20"))


def correlation_yaml(k: int) -> str:
    """Correlation ``k``: 3 failed logins of one user within a minute, over auth rule 3k+1."""
    base = uuid.UUID(int=0xB0E0000000004000800000000000 + 3 * k + 1)
    return (
        f"title: Bench burst {k}\nid: {uuid.UUID(int=0xC0E0000000004000800000000000 + k)}\nstatus: test\n"
        f"level: high\ncorrelation:\n  type: event_count\n  rules: [{base}]\n  group-by: [user.name]\n"
        f"  timespan: 1m\n  condition: {{gte: 3}}\n  generate: true\n"
        f"soar: {{interval: {int(INTERVAL)}s, lookback: 10s}}\n"
    )


def run_correlations(es: Any, es_url: str, root_info: dict[str, Any], n_rules: int = 100) -> list[list[str]]:
    """One cycle of ``n_rules`` rules and CORRELATIONS correlations: requests and wall time, both ways.

    The anchor is how correlations ran before they joined the cycle: the plain rules' cycle,
    then each correlation fetched by the detection engine on its own (point in time, a
    composite aggregation, a search per base rule).
    """
    from soar.config import load_settings
    from soar.connections import elasticsearch_client
    from soar.detection import evaluate_correlation
    from soar.detection.elastic import correlation_events, create_events_index
    from soar.scheduler.cycle import Detector
    from soar.scheduler.loading import load_scheduled_rules
    from soar.scheduler.planning import iso
    from soar.store.sqlite import SQLiteStore

    work = Path(tempfile.mkdtemp(prefix="soar-bench-corr-"))
    index = f"soar-bench-{uuid.uuid4().hex[:10]}"
    proxy = CountingProxy(es_url, root_info)
    try:
        create_events_index(es, index)
        (work / "rules").mkdir()
        for i in range(n_rules):
            (work / "rules" / f"r{i:04}.yml").write_text(rule_yaml(i))
        for k in range(CORRELATIONS):
            (work / "rules" / f"c{k:04}.yml").write_text(correlation_yaml(k))
        now = time.time()
        rng = random.Random(11)
        docs = [make_event(now - 20 + j * 0.01, None, rng) for j in range(1500)]
        docs += [make_event(now - 15 + j, 3 * k + 1, rng) for k in range(CORRELATIONS) for j in range(4)]
        ops: list[dict[str, Any]] = []
        for doc in docs:
            ops += [{"index": {"_index": index}}, doc]
        es.bulk(operations=ops, refresh=True)
        settings = load_settings(content_root=work, state_dir=work / "state", events_index=index,
                                 elasticsearch_url=proxy.url, celery_eager=True)  # fmt: skip
        rules, errors = load_scheduled_rules(settings)
        if errors:
            raise SystemExit(f"rule errors: {errors[0]}")
        corr = [r for r in rules if r.correlation is not None]
        plain = [r for r in rules if r.correlation is None]
        client = elasticsearch_client(settings)
        out: dict[str, dict[str, float]] = {}
        for name in ("soar", "anchor"):
            store = SQLiteStore(work / "state" / f"{name}.sqlite3")
            detector = Detector(settings, store, client, lambda _id: None)
            proxy.take()
            t0 = time.perf_counter()
            if name == "soar":
                alerts = len(detector.run(rules, now).created)
            else:
                alerts = len(detector.run(plain, now).created)
                span = (iso(now - 10 - 60 - INTERVAL), iso(now))
                found = [correlation_events(client, index, r.correlation, span) for r in corr]
                alerts += sum(len(evaluate_correlation(r.correlation, ev)) for r, ev in zip(corr, found, strict=True))
            out[name] = {"requests": proxy.take(), "seconds": time.perf_counter() - t0, "alerts": alerts}
            store.close()
        client.close()
    finally:
        proxy.close()
        es.options(ignore_status=404).indices.delete(index=index)
        shutil.rmtree(work, ignore_errors=True)
    ours, anchor = out["soar"], out["anchor"]
    rows = []
    for metric, key, better in (
        ("ES requests / cycle", "requests", "fewer"),
        ("cycle wall time s", "seconds", "lower"),
        ("alerts (plain + correlation matches)", "alerts", ""),
    ):
        ratio = f"{anchor[key] / ours[key]:.1f}× ({better})" if better and ours[key] else ""
        rows.append([metric, fmt(ours[key]), fmt(anchor[key]), ratio])
    return rows


def print_table(title: str, headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
    print(title)
    for row in [headers, ["-" * w for w in widths], *rows]:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)))


# -- ElastAlert2 ----------------------------------------------------------------------------------


def ensure_elastalert() -> Path | None:
    """ElastAlert2 in its own virtualenv (PyPI: elastalert2); None with the reason printed if it cannot install."""
    exe = EA_VENV / "bin" / "elastalert"
    if exe.exists():
        return exe
    try:
        subprocess.run([sys.executable, "-m", "venv", str(EA_VENV)], check=True)
        # elastalert2 2.19.0 imports pytz without declaring it
        pip = [str(EA_VENV / "bin" / "pip"), "install", "-q", "elastalert2", "pytz"]
        subprocess.run(pip, check=True, timeout=900)
    except (subprocess.SubprocessError, OSError) as exc:
        print(f"ElastAlert2 could not be installed: {exc}")
        return None
    return exe


def convert_for_elastalert(rules_dir: Path, out_dir: Path, index: str) -> int:
    """``sigma convert -t elastalert`` with the ecs_linux pipeline; one ElastAlert rule file per Sigma rule."""
    from soar.detection.pipelines import ecs_linux_yaml_path

    sigma = Path(sys.executable).parent / "sigma"
    proc = subprocess.run(
        [str(sigma), "convert", "-t", "elastalert", "-p", str(ecs_linux_yaml_path()), str(rules_dir)],
        capture_output=True,
        text=True,
        check=True,
    )
    docs, current = [], []
    for line in proc.stdout.splitlines():
        if line.startswith("description:") and current:
            docs.append("\n".join(current))
            current = []
        if line.strip() == "Parsing Sigma rules":
            continue
        current.append(line)
    if current:
        docs.append("\n".join(current))
    out_dir.mkdir(parents=True, exist_ok=True)
    n = 0
    for text in docs:
        rule = yaml.safe_load(text)
        if not isinstance(rule, dict) or "filter" not in rule:
            continue
        rule.update(
            index=index,
            timestamp_field="@timestamp",
            realert={"minutes": 0},
            alert=["debug"],
            run_every={"seconds": int(INTERVAL)},
            buffer_time={"seconds": 10},
        )
        (out_dir / f"rule_{n:04}.yaml").write_text(yaml.safe_dump(rule))
        n += 1
    return n


def proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime + stime


def run_elastalert(
    exe: Path, es: Any, proxy: CountingProxy, index: str, work: Path, seconds: float, n_rules: int
) -> dict[str, Any]:
    from soar.scheduler.planning import parse_time

    writeback = f"elastalert-bench-{uuid.uuid4().hex[:8]}"
    n = convert_for_elastalert(work / "sigma", work / "ea_rules", index)
    config = {
        "rules_folder": str(work / "ea_rules"),
        "run_every": {"seconds": int(INTERVAL)},
        "buffer_time": {"seconds": 10},
        "es_host": "127.0.0.1",
        "es_port": proxy.port,
        "writeback_index": writeback,
        "alert_time_limit": {"minutes": 5},
        "max_threads": 10,
    }
    cfg = work / "ea_config.yaml"
    cfg.write_text(yaml.safe_dump(config))
    log = work / "elastalert.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOAR_")}
    created = subprocess.run(
        [str(exe.parent / "elastalert-create-index"), "--config", str(cfg)],
        capture_output=True,
        text=True,
        env=env,
        cwd=work,
        timeout=300,
        check=False,
    )
    if created.returncode != 0:
        return {"error": "elastalert-create-index failed: " + (created.stderr or created.stdout).strip()[-600:]}
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(exe), "--config", str(cfg), "--verbose"], stdout=out, stderr=subprocess.STDOUT, env=env, cwd=work
        )
        try:
            # Measure from its first rule run: start-up (loading and converting rules) is not counted.
            deadline = time.monotonic() + 120
            while "query hits" not in log.read_text(errors="replace") and time.monotonic() < deadline:
                time.sleep(0.2)
            proxy.take()
            cpu0, runs0 = proc_cpu(proc.pid), log.read_text(errors="replace").count("query hits")
            time.sleep(seconds)
            cpu = proc_cpu(proc.pid) - cpu0 if proc.poll() is None else float("nan")
            requests = proxy.take()
            evaluations = log.read_text(errors="replace").count("query hits") - runs0
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    text = log.read_text(errors="replace")
    if evaluations <= 0:
        return {"error": "ElastAlert2 ran no rule: " + text.strip()[-800:], "rules": n}
    errors = sorted({line.split(" {")[0] for line in text.splitlines() if line.startswith("ERROR:")})
    es.indices.refresh(index=f"{writeback}*")
    latencies = []
    resp = es.search(index=writeback, size=10_000)
    for hit in resp["hits"]["hits"]:
        src = hit["_source"]
        if "match_body" not in src:
            continue
        alerted, ts = parse_time(src.get("alert_time")), parse_time((src.get("match_body") or {}).get("@timestamp"))
        if alerted is not None and ts is not None:
            latencies.append(alerted - ts)
    es.options(ignore_status=404).indices.delete(index=f"{writeback}*")
    rounds = max(1.0, evaluations / max(1, n))
    return {
        "requests_per_round": requests / rounds,
        "requests_per_cycle": requests / rounds,
        "rules_per_cycle": float(n),
        "cycle_seconds": float("nan"),
        "cpu_per_1000": 1000 * cpu / max(1, evaluations),
        "p50": percentile(latencies, 0.5),
        "p95": percentile(latencies, 0.95),
        "alerts": len(latencies),
        "evaluations": evaluations,
        "errors": errors,
    }


# -- the table ----------------------------------------------------------------------------------


def fmt(value: Any) -> str:
    if isinstance(value, float):
        return "n/a" if value != value else f"{value:.3g}"
    return str(value)


def main(argv: list[str] | None = None) -> int:
    from soar.config import load_settings
    from soar.connections import elasticsearch_client
    from soar.detection.elastic import create_events_index

    args = list(sys.argv[1:] if argv is None else argv)
    settings = load_settings()
    es = elasticsearch_client(settings, request_timeout=120)
    node = next(iter(es.nodes.info(node_id="_local")["nodes"].values()))
    root_info = {
        "name": node.get("name"),
        "cluster_name": "soar-bench",
        "version": {"number": node["version"], "build_flavor": "default", "distribution": "elasticsearch"},
        "tagline": "You Know, for Search",
    }
    if args[:1] == ["--correlations"]:  # only the correlation table (seconds, no ElastAlert2)
        print_correlations(es, settings.elasticsearch_url, root_info)
        es.close()
        return 0
    seconds = float(args[0]) if args else 40.0
    exe = ensure_elastalert()
    rows: list[list[str]] = []
    notes: list[str] = []
    for n_rules in RULE_COUNTS:
        work = Path(tempfile.mkdtemp(prefix="soar-bench-detect-"))
        index = f"soar-bench-{uuid.uuid4().hex[:10]}"
        try:
            create_events_index(es, index)
            (work / "rules").mkdir()
            (work / "sigma").mkdir()
            for i in range(n_rules):
                text = rule_yaml(i)
                (work / "rules" / f"r{i:04}.yml").write_text(text)
                (work / "sigma" / f"r{i:04}.yml").write_text(text.rsplit("soar:", 1)[0])
            ours_proxy = CountingProxy(settings.elasticsearch_url, root_info)
            with Stream(es, index, n_rules):
                time.sleep(2)
                ours = run_soar(settings.elasticsearch_url, ours_proxy, index, work, seconds, n_rules)
            ours_proxy.close()
            theirs: dict[str, Any] = {"error": "not installed"}
            if exe is not None:
                ea_proxy = CountingProxy(settings.elasticsearch_url, root_info)
                with Stream(es, index, n_rules):
                    time.sleep(2)
                    theirs = run_elastalert(exe, es, ea_proxy, index, work, seconds, n_rules)
                ea_proxy.close()
        finally:
            es.options(ignore_status=404).indices.delete(index=index)
            if os.environ.get("BENCH_KEEP"):
                print(f"kept {work}")
            else:
                shutil.rmtree(work, ignore_errors=True)
        if "error" in theirs:
            notes.append(f"{n_rules} rules: ElastAlert2 did not run: {theirs['error']}")
        for err in theirs.get("errors", []):
            notes.append(f"{n_rules} rules: ElastAlert2 logged: {err[:300]}")
        for metric, key, better in (
            ("ES requests / round (every rule once)", "requests_per_round", "fewer"),
            ("ES requests / cycle", "requests_per_cycle", ""),
            ("rules / cycle (mean)", "rules_per_cycle", ""),
            ("cycle wall time s (median)", "cycle_seconds", ""),
            ("CPU s / 1,000 rule evaluations", "cpu_per_1000", "lower"),
            ("event→alert p50 s", "p50", "lower"),
            ("event→alert p95 s", "p95", "lower"),
            ("alerts", "alerts", ""),
            ("rule evaluations", "evaluations", ""),
        ):
            a, b = ours.get(key), theirs.get(key)
            ratio = "n/a"
            if isinstance(a, int | float) and isinstance(b, int | float) and a and b == b and a == a:
                ratio = f"{b / a:.1f}× ({better})" if better else ""
            rows.append([str(n_rules), metric, fmt(a), fmt(b), ratio])
    headers = ["rules", "metric", "soar", "ElastAlert2", "ElastAlert2 / soar"]
    title = f"\nContinuous detection, interval {INTERVAL:.0f} s, {EVENTS_PER_SECOND} events/s, {seconds:.0f} s per run"
    print_table(title, headers, rows)
    print(f"goals: requests ratio ≥ 10, CPU ratio ≥ 5, soar p95 ≤ {INTERVAL + 2:.0f} s")
    for note in notes:
        print(note)
    print_correlations(es, settings.elasticsearch_url, root_info)
    es.close()
    return 0


def print_correlations(es: Any, es_url: str, root_info: dict[str, Any]) -> None:
    title = f"\nCorrelations in the cycle: 100 rules + {CORRELATIONS} correlations (event_count), one cycle"
    headers = ["metric", "soar (one _msearch)", "anchor (fetched one by one)", "anchor / soar"]
    print_table(title, headers, run_correlations(es, es_url, root_info))


if __name__ == "__main__":
    raise SystemExit(main())
