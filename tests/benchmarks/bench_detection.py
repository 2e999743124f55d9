"""Continuous detection benchmark (not a test), like for like: soar's scheduler vs ElastAlert2 on one Elasticsearch.

Synthetic ECS Linux events (auth, process, file) stream into a throwaway ECS-mapped index while N rules
run on an interval. Both tools run as their own process, with their bookkeeping in Elasticsearch:

- **soar**: ``soar scheduler`` (embedded mode: the cycles run in the scheduler process), the Elasticsearch
  store (``store: elasticsearch``: alerts, checkpoints, gaps, audit in ``<prefix>-*`` indices), once per
  ``detection_path`` (``search``: every rule a clause of combined searches in one ``_msearch``; ``fetch``: the
  cycle's events read once and every rule matched in process, :mod:`soar.scheduler.fetch`).
- **ElastAlert2** 2.19 (PyPI ``elastalert2`` in its own virtualenv under ``.cache/``): the same Sigma rules
  converted by ``sigma convert -t elastalert`` with soar's ``ecs_linux`` pipeline, ``run_every`` = soar's
  interval, ``buffer_time`` = soar's look-back, ``realert: 0``, ``alert: debug``, its writeback index in the
  same Elasticsearch.

Both talk to Elasticsearch through one counting HTTP proxy on loopback that sorts every request by kind:
``events`` (searches of the events index: search, msearch, scroll, point in time), ``book reads`` and
``book writes`` (each tool's own indices: soar's store, ElastAlert2's writeback index; a refresh before a
read counts as a read), ``other`` (start-up, cluster and index administration). The integ-test
Elasticsearch here does not serve ``GET /`` (405), which ElastAlert2 calls once at start-up; the proxy
answers that one request itself with the node's real version. Nothing else is changed.

CPU: each tool's whole process (user + system from ``/proc/<pid>/stat``) and Elasticsearch's own CPU
(``_nodes/_local/stats/process``) over the measured seconds; a stream-only run gives Elasticsearch's
baseline (indexing the events, and whatever else shares the node). Measuring starts at each tool's first
search of the events index (start-up, rule loading and ElastAlert2's random first-run delay not counted).
Event→alert latency: the alert's creation time − the event's ``@timestamp``, for events that happened and
were alerted while measured (the first, longer windows after a start are not counted on either side).

The anchor's schedule: ElastAlert2 2.19 schedules each rule with APScheduler ``jitter=5`` and a first run
0–15 s after start (``elastalert.py``: ``add_job(..., jitter=5)`` and ``next_run_time = now + randint(0, 15)``),
both hard-coded; no documented setting changes them (``run_every``, ``buffer_time``, ``max_threads`` and
``misfire_grace_time`` do not), so its schedule cannot be made equal to soar's without patching it. The
table shows each tool's measured evaluations per rule per minute, and CPU per 1,000 evaluations beside
CPU per wall-clock second.

Goals (issue #19 item 4; benchmark figures, never timed assertions): at 500 rules ≥ 20× fewer
Elasticsearch requests and ≥ 10× less total CPU (soar + Elasticsearch vs ElastAlert2 + Elasticsearch, over
the same wall time); at 1,000 rules and a 1 s interval, p95 event→alert ≤ 2.5 s with soar under one core.

A second table puts correlation rules in one cycle with 100 rules (soar against its own earlier code path).

Run: ``python -m tests.benchmarks.bench_detection`` — sizes by environment: ``BENCH_RULES`` (``100,500,1000``),
``BENCH_SECONDS`` measured per run (30), ``BENCH_INTERVAL`` (5), ``BENCH_EPS`` events/s (60), ``BENCH_MATCHES``
matching events/s (0.2),
``BENCH_PATHS`` (``search,fetch``), ``BENCH_EA=0`` leaves ElastAlert2 out, ``BENCH_LATENCY=0`` leaves out the
1,000-rule 1 s run; ``--correlations`` prints the second table alone.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml

REPO = Path(__file__).resolve().parents[2]
EA_VENV = REPO / ".cache" / "elastalert2-venv"
INTERVAL = float(os.environ.get("BENCH_INTERVAL", "5"))
LOOKBACK = 10.0
RULE_COUNTS = tuple(int(n) for n in os.environ.get("BENCH_RULES", "100,500,1000").split(","))
SECONDS = float(os.environ.get("BENCH_SECONDS", "30"))
EVENTS_PER_SECOND = int(os.environ.get("BENCH_EPS", "60"))
PATHS = tuple(os.environ.get("BENCH_PATHS", "search,fetch").split(","))
# Matching events a second (each an alert). 2/s (7,200 alerts an hour) stalled soar's embedded scheduler once every
# alert was also put into its incident in the cycle's hand-off (~8 store requests an alert on the Elasticsearch
# store, several fsynced writes: the cycle waits ~0.25-0.5 s an alert); BENCH_MATCHES sets it, both tools alike.
MATCHES_PER_SECOND = float(os.environ.get("BENCH_MATCHES", "0.2"))
KINDS_OF_REQUEST = ("events", "book reads", "book writes", "other")


# -- a counting proxy -------------------------------------------------------------------------


def request_kind(method: str, path: str, body: bytes | None, events_index: str) -> str:
    """Which kind of request this is (see the module docstring)."""
    bare = path.split("?")[0]
    parts = [p for p in bare.split("/") if p]
    if not parts:
        return "other"
    target = "" if parts[0].startswith("_") else parts[0]
    endpoint = next((p for p in parts if p.startswith("_")), "")
    searching = endpoint in ("_search", "_msearch", "_count", "_pit", "_mget")
    if searching and endpoint != "_mget":
        if target == events_index:
            return "events"
        if not target:  # a point-in-time page, a scroll, an _msearch naming its indices in the body
            text = body or b""
            if events_index.encode() in text or b'"pit"' in text or "scroll" in parts:
                return "events"
        return "book reads"
    if searching or (method == "GET" and endpoint in ("_doc", "_source")) or endpoint == "_refresh":
        return "book reads"
    if target and endpoint in ("_doc", "_create", "_update", "_bulk", "_delete_by_query", "_update_by_query"):
        return "book writes"
    if endpoint == "_bulk":
        return "book writes"
    return "other"


class CountingProxy:
    """Forwards HTTP to Elasticsearch and counts requests by kind; answers ``GET /`` with the node's version."""

    def __init__(self, target: str, root_info: dict[str, Any], events_index: str = "") -> None:
        parsed = urlparse(target)
        self.host, self.port_to = parsed.hostname or "127.0.0.1", parsed.port or 9200
        self.events_index = events_index
        self.counts: Counter[str] = Counter()
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                return

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                kind = request_kind(self.command, self.path, body, proxy.events_index)
                with proxy.lock:
                    proxy.counts[kind] += 1
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
                conn = http.client.HTTPConnection(proxy.host, proxy.port_to, timeout=120)
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
                return  # a client hanging up (a tool terminated) is not news

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def take(self) -> Counter[str]:
        with self.lock:
            counts, self.counts = self.counts, Counter()
        return counts

    def peek(self, kind: str) -> int:
        with self.lock:
            return self.counts[kind]

    def close(self) -> None:
        self.server.shutdown()


def es_cpu_seconds(es: Any) -> float:
    """Elasticsearch's own CPU (the local node's process), seconds since it started."""
    stats = es.nodes.stats(node_id="_local", metric="process")
    node = next(iter(stats["nodes"].values()))
    return float(node["process"]["cpu"]["total_in_millis"]) / 1000


# -- rules and events ---------------------------------------------------------------------------

KINDS = ("process", "auth", "file")


def rule_yaml(i: int, interval: float = INTERVAL, lookback: float = LOOKBACK) -> str:
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
    return head + body + f"soar: {{interval: {interval:g}s, lookback: {lookback:g}s}}\n"


SIGMAHQ_LINUX = REPO.parent / "shared" / "sigmahq" / "rules" / "linux"
REAL_SHARE = 0.9  # of a real rule set: variants of real rules; the rest bench rules, which the stream makes fire


def real_bases(work: Path) -> list[dict[str, Any]]:
    """The rule pack's and SigmaHQ's Linux rules that soar schedules (plain Sigma rules; correlations and soar's
    own rule types left out), each a parsed document."""
    from soar.config import load_settings
    from soar.scheduler.loading import load_scheduled_rules

    files = [p for p in (REPO / "rules").rglob("*.yml") if not p.name.endswith((".tests.yml", ".soar.yml"))]
    files += sorted(SIGMAHQ_LINUX.rglob("*.yml")) if SIGMAHQ_LINUX.is_dir() else []
    probe = work / "probe"
    (probe / "rules").mkdir(parents=True)
    docs: dict[str, dict[str, Any]] = {}
    for n, path in enumerate(sorted(files)):
        found = list(yaml.safe_load_all(path.read_text()))
        doc = found[0] if len(found) == 1 else None  # a multi-document rule (a correlation and its base) left out
        if isinstance(doc, dict) and "detection" in doc and "logsource" in doc and "correlation" not in doc:
            docs[f"b{n:04}.yml"] = doc
            (probe / "rules" / f"b{n:04}.yml").write_text(yaml.safe_dump(doc, sort_keys=False))
    settings = load_settings(content_root=probe, state_dir=probe / "state", events_index="x", celery_eager=True)
    _, errors = load_scheduled_rules(settings)
    bad = {Path(str(e.source or "").split(":")[0]).name for e in errors}
    shutil.rmtree(probe, ignore_errors=True)
    return [doc for name, doc in docs.items() if name not in bad]


def _vary(value: Any, suffix: str) -> Any:
    """A detection's values with ``suffix`` appended: the same query shape and cost, its own values."""
    if isinstance(value, str):
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError:
            return value + suffix
        return value  # an address stays one (an IP field refuses anything else)
    if isinstance(value, list):
        return [_vary(v, suffix) for v in value]
    if isinstance(value, dict):
        return {k: v if "|re" in str(k) or "|cidr" in str(k) else _vary(v, suffix) for k, v in value.items()}
    return value


def real_rule_yaml(base: dict[str, Any], i: int, interval: float, lookback: float) -> str:
    """Variant ``i`` of a real rule: its own id and title, its values suffixed (variant 0: the rule itself)."""
    doc = {k: v for k, v in base.items() if k not in ("related", "soar")}
    doc["id"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{base.get('id')}/{i}"))
    doc["title"] = f"{base.get('title', 'rule')} v{i}"
    if i:
        detection = dict(base["detection"])
        for name, sel in detection.items():
            if name not in ("condition", "timeframe"):
                detection[name] = _vary(sel, f"-v{i}")
        doc["detection"] = detection
    text = yaml.safe_dump(doc, sort_keys=False)
    return text + f"soar: {{interval: {interval:g}s, lookback: {lookback:g}s}}\n"


def write_rules(work: Path, n_rules: int, interval: float, lookback: float, real: bool) -> int:
    """The rule set (soar's under rules/, ElastAlert2's under sigma/); returns how many bench rules it holds (the
    stream makes those fire). Real: REAL_SHARE variants of real rules, the rest bench rules."""
    bases = real_bases(work) if real else []
    n_bench = n_rules if not bases else max(1, round(n_rules * (1 - REAL_SHARE)))
    texts = [rule_yaml(i, interval, lookback) for i in range(n_bench)]
    texts += [
        real_rule_yaml(bases[k % len(bases)], k // len(bases), interval, lookback) for k in range(n_rules - n_bench)
    ]
    (work / "rules").mkdir()
    (work / "sigma").mkdir()
    for i, text in enumerate(texts):
        (work / "rules" / f"r{i:05}.yml").write_text(text)
        (work / "sigma" / f"r{i:05}.yml").write_text(text.rsplit("soar:", 1)[0])
    return n_bench


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

    def __init__(self, es: Any, index: str, rules: int, per_second: int = EVENTS_PER_SECOND) -> None:
        self.es, self.index, self.rules, self.per_second = es, index, rules, per_second
        self.stop = threading.Event()
        self.rng = random.Random(7)
        self.owed = 0.0  # matches due but not yet sent (a rate under one per batch)
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            now = time.time()
            ops: list[dict[str, Any]] = []
            self.owed += MATCHES_PER_SECOND / 2
            matches, self.owed = int(self.owed), self.owed - int(self.owed)
            for k in range(self.per_second // 2):
                match = self.rng.randrange(self.rules) if k < matches else None
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


def soar_env(work: Path, state: Path, index: str, es_url: str, prefix: str, path: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOAR_")}
    env.update(
        SOAR_CONTENT_ROOT=str(work),
        SOAR_STATE_DIR=str(state),
        SOAR_EVENTS_INDEX=index,
        SOAR_ELASTICSEARCH_URL=es_url,
        SOAR_CELERY_EAGER="true",
        SOAR_STORE="elasticsearch",
        SOAR_INDEX_PREFIX=prefix,
        SOAR_DETECTION_PATH=path,
        SOAR_ELASTICSEARCH_TIMEOUT="60",
        SOAR_LOG_LEVEL="WARNING",
    )
    return env


def precompile(work: Path, state: Path, index: str) -> None:
    """Fill the compile cache the scheduler process reads (a warm worker has its rules compiled)."""
    from soar.config import load_settings
    from soar.scheduler.loading import load_scheduled_rules

    settings = load_settings(content_root=work, state_dir=state, events_index=index, celery_eager=True)
    _, errors = load_scheduled_rules(settings)
    if errors:
        raise SystemExit(f"rule errors: {errors[0]}")


def wait_first_search(proxy: CountingProxy, proc: subprocess.Popen[bytes], timeout: float = 300) -> bool:
    deadline = time.monotonic() + timeout
    while proxy.peek("events") == 0 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    return proxy.peek("events") > 0


def run_soar(
    es: Any, proxy: CountingProxy, index: str, work: Path, seconds: float, n_rules: int, path: str
) -> dict[str, Any]:
    """``soar scheduler`` as its own process on the Elasticsearch store; measured from its first events search."""
    from soar.scheduler.planning import parse_time
    from soar.store.elastic import ElasticsearchStore

    prefix = f"benchsoar{uuid.uuid4().hex[:8]}"
    state = work / f"state-{path}"
    shutil.copytree(work / "state", state, dirs_exist_ok=True)  # the compile cache, warm
    env = soar_env(work, state, index, proxy.url, prefix, path)
    log = work / f"soar-{path}.log"
    store = ElasticsearchStore(es, prefix=prefix)  # the parent reads through its own client (not counted)

    def runs_total() -> int:
        return sum(int(r.doc.get("runs_total", 0)) for r in store.find("checkpoints", limit=100_000))

    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "soar"), "scheduler", "--tick", "1"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=work,
        )
        try:
            if not wait_first_search(proxy, proc):
                return {"error": "soar ran no search: " + log.read_text(errors="replace")[-800:]}
            deadline = time.monotonic() + 300  # past the first round (every rule's first, longer window)
            while len(store.find("checkpoints", limit=100_000)) < n_rules and time.monotonic() < deadline:
                time.sleep(0.5)
            time.sleep(2.0)
            proxy.take()
            runs0, cpu0, es0, t0 = runs_total(), proc_cpu(proc.pid), es_cpu_seconds(es), time.time()
            time.sleep(seconds)
            cpu, es_cpu, t1 = proc_cpu(proc.pid) - cpu0, es_cpu_seconds(es) - es0, time.time()
            counts = proxy.take()
            evaluations = runs_total() - runs0
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
    latencies = []
    for rec in store.find("alerts", limit=100_000):
        detected, first = parse_time(rec.doc.get("@timestamp")), parse_time(rec.doc.get("first_event_time"))
        if detected is not None and first is not None and t0 <= first and detected <= t1:
            latencies.append(detected - first)
    es.options(ignore_status=404).indices.delete(index=f"{prefix}-*")
    es.options(ignore_status=404).indices.delete_index_template(name=f"{prefix}-state")
    if evaluations <= 0:
        return {"error": f"soar completed no cycle in the {seconds:g} s measured ({dict(counts)} requests)"}
    return measured(counts, cpu, es_cpu, t1 - t0, evaluations, n_rules, latencies)


def measured(
    counts: Counter[str], cpu: float, es_cpu: float, wall: float, evaluations: int, n_rules: int, latencies: list[float]
) -> dict[str, Any]:
    total = sum(counts.values())
    out: dict[str, Any] = {f"req {k}": counts[k] / wall for k in KINDS_OF_REQUEST}
    out.update(
        requests=total / wall,
        cpu=cpu / wall,
        es_cpu=es_cpu / wall,
        total_cpu=(cpu + es_cpu) / wall,
        evals_per_rule_min=60 * evaluations / max(1, n_rules) / wall,
        cpu_per_1000=1000 * cpu / max(1, evaluations),
        total_cpu_per_1000=1000 * (cpu + es_cpu) / max(1, evaluations),
        requests_per_1000=1000 * total / max(1, evaluations),
        p50=percentile(latencies, 0.5),
        p95=percentile(latencies, 0.95),
        p99=percentile(latencies, 0.99),
        alerts=len(latencies),
        evaluations=evaluations,
    )
    return out


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
    proxy = CountingProxy(es_url, root_info, index)
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
            out[name] = {"requests": sum(proxy.take().values()), "seconds": time.perf_counter() - t0, "alerts": alerts}
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
    exe: Path,
    es: Any,
    proxy: CountingProxy,
    index: str,
    work: Path,
    seconds: float,
    n_rules: int,
    interval: float = INTERVAL,
    lookback: float = LOOKBACK,
) -> dict[str, Any]:
    from soar.scheduler.planning import parse_time

    writeback = f"elastalert-bench-{uuid.uuid4().hex[:8]}"
    n = convert_for_elastalert(work / "sigma", work / "ea_rules", index)
    config = {
        "rules_folder": str(work / "ea_rules"),
        "run_every": {"seconds": interval},
        "buffer_time": {"seconds": lookback},
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
            # Measure from its first rule run + 15 s (its random first-run delay): start-up is not counted.
            deadline = time.monotonic() + 600
            while "query hits" not in log.read_text(errors="replace") and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(15)
            proxy.take()
            cpu0, runs0 = proc_cpu(proc.pid), log.read_text(errors="replace").count("query hits")
            es0, t0 = es_cpu_seconds(es), time.time()
            time.sleep(seconds)
            cpu = proc_cpu(proc.pid) - cpu0 if proc.poll() is None else float("nan")
            es_cpu, t1 = es_cpu_seconds(es) - es0, time.time()
            counts = proxy.take()
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
    resp = es.search(index=writeback, size=10_000)  # its alerts (match_body: not searchable, filtered here)
    for hit in resp["hits"]["hits"]:
        src = hit["_source"]
        if "match_body" not in src:
            continue
        alerted, ts = parse_time(src.get("alert_time")), parse_time((src.get("match_body") or {}).get("@timestamp"))
        if alerted is not None and ts is not None and t0 <= ts and alerted <= t1:
            latencies.append(alerted - ts)
    es.options(ignore_status=404).indices.delete(index=f"{writeback}*")
    out = measured(counts, cpu, es_cpu, t1 - t0, evaluations, n, latencies)
    out["errors"] = errors
    return out


# -- the table ----------------------------------------------------------------------------------


def fmt(value: Any) -> str:
    if isinstance(value, float):
        return "n/a" if value != value else f"{value:.3g}"
    return str(value)


def one_size(
    es: Any,
    settings: Any,
    root_info: dict[str, Any],
    exe: Path | None,
    n_rules: int,
    interval: float,
    lookback: float,
    per_second: int,
    paths: tuple[str, ...],
    with_ea: bool,
    real: bool = False,
) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Every tool on one rule count: {tool: measures}, notes. ``real``: variants of real rules (see write_rules)."""
    from soar.detection.elastic import create_events_index

    work = Path(tempfile.mkdtemp(prefix="soar-bench-detect-"))
    index = f"soar-bench-{uuid.uuid4().hex[:10]}"
    results: dict[str, dict[str, Any]] = {}
    seconds = interval * max(1, round(SECONDS / interval))  # whole intervals: rules of one phase run in bursts
    notes: list[str] = []
    try:
        create_events_index(es, index)
        n_bench = write_rules(work, n_rules, interval, lookback, real)
        precompile(work, work / "state", index)
        with Stream(es, index, n_bench, per_second):
            time.sleep(2)
            es0, t0 = es_cpu_seconds(es), time.monotonic()
            time.sleep(min(SECONDS, 10.0))
            results["baseline"] = {"es_cpu": (es_cpu_seconds(es) - es0) / (time.monotonic() - t0)}
            for path in paths:
                proxy = CountingProxy(settings.elasticsearch_url, root_info, index)
                try:
                    results[f"soar {path}"] = run_soar(es, proxy, index, work, seconds, n_rules, path)
                finally:
                    proxy.close()
            if with_ea and exe is not None:
                proxy = CountingProxy(settings.elasticsearch_url, root_info, index)
                try:
                    results["ElastAlert2"] = run_elastalert(
                        exe, es, proxy, index, work, seconds, n_rules, interval, lookback
                    )
                finally:
                    proxy.close()
            elif with_ea:
                results["ElastAlert2"] = {"error": "not installed"}
    finally:
        es.options(ignore_status=404).indices.delete(index=index)
        if os.environ.get("BENCH_KEEP"):
            notes.append(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    for tool, res in results.items():
        if "error" in res:
            notes.append(f"{n_rules} rules: {tool} did not run: {res['error']}")
        for err in res.get("errors", []):
            notes.append(f"{n_rules} rules: {tool} logged: {err[:300]}")
    return results, notes


METRICS = (
    ("ES requests / s", "requests"),
    ("  events index (search, msearch, scroll, PIT)", "req events"),
    ("  bookkeeping reads", "req book reads"),
    ("  bookkeeping writes", "req book writes"),
    ("  other", "req other"),
    ("evaluations / rule / minute", "evals_per_rule_min"),
    ("ES requests / 1,000 evaluations", "requests_per_1000"),
    ("tool CPU, cores (whole process)", "cpu"),
    ("Elasticsearch CPU, cores", "es_cpu"),
    ("tool + Elasticsearch CPU, cores", "total_cpu"),
    ("tool CPU s / 1,000 evaluations", "cpu_per_1000"),
    ("tool + ES CPU s / 1,000 evaluations", "total_cpu_per_1000"),
    ("event→alert p50 s", "p50"),
    ("event→alert p95 s", "p95"),
    ("event→alert p99 s", "p99"),
    ("alerts (events of the measured time)", "alerts"),
)


def ratio(theirs: Any, ours: Any) -> float:
    if isinstance(theirs, int | float) and isinstance(ours, int | float) and ours > 0 and theirs == theirs:
        return float(theirs) / float(ours)
    return float("nan")


def above(res: dict[str, Any], baseline: float) -> float:
    """The tool's CPU plus Elasticsearch's above the stream-only baseline (detection's share), cores."""
    if "cpu" not in res:
        return float("nan")
    return float(res["cpu"]) + max(0.0, float(res["es_cpu"]) - baseline)


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "MISSED")


def main(argv: list[str] | None = None) -> int:
    from soar.config import load_settings
    from soar.connections import elasticsearch_client

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
    if args[:1] == ["--scale"]:
        scale_curve(es, settings, root_info)
        es.close()
        return 0
    with_ea = os.environ.get("BENCH_EA", "1") != "0"
    exe = ensure_elastalert() if with_ea else None
    sizes: dict[int, dict[str, dict[str, Any]]] = {}
    notes: list[str] = []
    for n_rules in RULE_COUNTS:
        sizes[n_rules], more = one_size(
            es, settings, root_info, exe, n_rules, INTERVAL, LOOKBACK, EVENTS_PER_SECOND, PATHS, with_ea
        )
        notes += more
    latency: dict[str, dict[str, Any]] = {}
    if os.environ.get("BENCH_LATENCY", "1") != "0":
        latency, more = one_size(es, settings, root_info, None, 1000, 1.0, 5.0, EVENTS_PER_SECOND, PATHS, False)
        notes += more
    es.close()

    tools = [f"soar {p}" for p in PATHS] + (["ElastAlert2"] if with_ea else [])
    rows: list[list[str]] = []
    for n_rules, results in sizes.items():
        for label, key in METRICS:
            row = [str(n_rules), label] + [fmt(results.get(t, {}).get(key, float("nan"))) for t in tools]
            if with_ea:
                theirs = results.get("ElastAlert2", {}).get(key)
                row += [fmt(ratio(theirs, results.get(f"soar {p}", {}).get(key))) for p in PATHS]
            rows.append(row)
        rows.append([str(n_rules), "Elasticsearch CPU, stream only (baseline)", fmt(results["baseline"]["es_cpu"])])
    headers = ["rules", "metric", *tools] + ([f"EA2 / soar {p}" for p in PATHS] if with_ea else [])
    rows = [r + [""] * (len(headers) - len(r)) for r in rows]
    title = (
        f"\nContinuous detection, like for like: interval {INTERVAL:g} s, look-back {LOOKBACK:g} s, "
        f"{EVENTS_PER_SECOND} events/s ({MATCHES_PER_SECOND:g}/s matching), {SECONDS:g} s measured per run, both tools"
        " as their own process with "
        "their bookkeeping in Elasticsearch, every request counted"
    )
    print_table(title, headers, rows)
    print(
        "anchor: ElastAlert2 2.19 (PyPI elastalert2), run_every = interval, buffer_time = look-back, max_threads 10;"
        " its per-rule jitter (5 s) and first-run delay (0-15 s) are hard-coded (elastalert.py add_job(jitter=5),"
        " next_run_time + randint(0, 15)): no documented setting equalises its schedule with soar's, so its"
        " measured evaluations / rule / minute are shown and CPU is also given per 1,000 evaluations."
    )
    print(
        "Elasticsearch CPU is the node's whole process over the run: it includes indexing the stream (baseline"
        " row) and anything else this shared node does meanwhile. The CPU goal compares tool + Elasticsearch"
        " above that baseline (detection's share); the ratio with the baseline left in is shown beneath it."
    )

    print("\nGoals (issue #19 item 4)")
    goal_rows: list[list[str]] = []
    at = sizes.get(500)
    for p in PATHS:
        ours = (at or {}).get(f"soar {p}", {})
        theirs = (at or {}).get("ElastAlert2", {})
        req = ratio(theirs.get("requests"), ours.get("requests"))
        base = (at or {}).get("baseline", {}).get("es_cpu", 0.0)
        cpu = ratio(above(theirs, base), above(ours, base))
        raw = ratio(theirs.get("total_cpu"), ours.get("total_cpu"))
        cpu_eval = ratio(theirs.get("total_cpu_per_1000"), ours.get("total_cpu_per_1000"))
        goal_rows.append(
            [
                f"500 rules, soar {p}",
                "≥ 20× fewer ES requests (per second)",
                fmt(req),
                verdict(None if req != req else req >= 20),
            ]
        )
        goal_rows.append(
            [
                f"500 rules, soar {p}",
                "≥ 10× less tool+ES CPU (per second)",
                fmt(cpu),
                verdict(None if cpu != cpu else cpu >= 10),
            ]
        )
        goal_rows.append([f"500 rules, soar {p}", "  (same, ES CPU incl. the stream's indexing)", fmt(raw), ""])
        goal_rows.append([f"500 rules, soar {p}", "  (same, per 1,000 evaluations)", fmt(cpu_eval), ""])
    for p in PATHS:
        res = latency.get(f"soar {p}", {})
        p95, cores = res.get("p95", float("nan")), res.get("cpu", float("nan"))
        goal_rows.append(
            [
                f"1,000 rules 1 s, soar {p}",
                "p95 event→alert ≤ 2.5 s",
                fmt(p95),
                verdict(None if p95 != p95 else p95 <= 2.5),
            ]
        )
        goal_rows.append(
            [
                f"1,000 rules 1 s, soar {p}",
                "soar CPU < 1 core",
                fmt(cores),
                verdict(None if cores != cores else cores < 1),
            ]
        )
        goal_rows.append(
            [
                f"1,000 rules 1 s, soar {p}",
                "  (ES requests / s, ES CPU cores)",
                f"{fmt(res.get('requests', float('nan')))}, {fmt(res.get('es_cpu', float('nan')))}",
                "",
            ]
        )
    print_table("", ["where", "goal", "measured", "verdict"], goal_rows)
    for note in notes:
        print(note)
    if os.environ.get("BENCH_CORRELATIONS_TABLE", "1") != "0":
        es2 = elasticsearch_client(settings, request_timeout=120)
        print_correlations(es2, settings.elasticsearch_url, root_info)
        es2.close()
    return 0


# -- the scale curve (issue #19 item 2) ----------------------------------------------------------------


def _ints(name: str, default: str) -> list[int]:
    return [int(float(v)) for v in os.environ.get(name, default).split(",") if v]


SCALE_METRICS = (
    ("ES requests / s", "requests"),
    ("tool CPU, cores", "cpu"),
    ("ES CPU above baseline, cores", "es_above"),
    ("event→alert p50 s", "p50"),
    ("event→alert p95 s", "p95"),
    ("event→alert p99 s", "p99"),
)


def scale_curve(es: Any, settings: Any, root_info: dict[str, Any]) -> None:
    """Rules, events/s and interval each grown from a base point; soar (both paths) and ElastAlert2.

    ``BENCH_SCALE_RULES`` (100,1000,5000), ``BENCH_SCALE_EPS`` (60,500,2000), ``BENCH_SCALE_INTERVALS`` (5,2,1),
    ``BENCH_SCALE_RULESET`` (``real``: variants of the pack and SigmaHQ Linux rules, see write_rules; ``synthetic``),
    ``BENCH_SCALE_EA_MAX_RULES`` (1000: ElastAlert2 is run up to this many rules; 0 leaves it out),
    ``BENCH_SECONDS`` per run. Printed as a table and drawn to test-artifacts/bench-detection-scale.svg.
    """
    rules_axis = _ints("BENCH_SCALE_RULES", "100,1000,5000")
    eps_axis = _ints("BENCH_SCALE_EPS", "60,500,2000")
    interval_axis = _ints("BENCH_SCALE_INTERVALS", "5,2,1")
    ea_max = int(os.environ.get("BENCH_SCALE_EA_MAX_RULES", "1000"))
    real = os.environ.get("BENCH_SCALE_RULESET", "real") == "real"
    exe = ensure_elastalert() if ea_max > 0 else None
    base_rules, base_eps, base_interval = rules_axis[0], eps_axis[0], interval_axis[0]
    points: list[tuple[str, int, int, int, int]] = []  # (dimension, x, rules, eps, interval)
    points += [("rules", n, n, base_eps, base_interval) for n in rules_axis]
    points += [("events/s", e, base_rules, e, base_interval) for e in eps_axis]  # the base point: measured once
    points += [("interval s", i, base_rules, base_eps, i) for i in interval_axis]
    measured_at: dict[tuple[int, int, int], dict[str, dict[str, Any]]] = {}
    notes: list[str] = []
    for _, _, n_rules, eps, interval in points:
        key = (n_rules, eps, interval)
        if key in measured_at:
            continue
        with_ea = exe is not None and n_rules <= ea_max
        lookback = max(2.0 * interval, 5.0)
        measured_at[key], more = one_size(
            es, settings, root_info, exe, n_rules, interval, lookback, eps, PATHS, with_ea, real
        )
        notes += [f"{n_rules} rules, {eps} events/s, {interval} s: {m}" for m in more]
    tools = [f"soar {p}" for p in PATHS] + ["ElastAlert2"]
    series: dict[str, dict[str, dict[str, list[tuple[int, float]]]]] = {}
    rows: list[list[str]] = []
    for dimension, x, n_rules, eps, interval in points:
        results = measured_at[(n_rules, eps, interval)]
        base = results.get("baseline", {}).get("es_cpu", 0.0)
        for tool in tools:
            res = results.get(tool)
            if res is None or "error" in res:
                continue
            res = {**res, "es_above": max(0.0, res["es_cpu"] - base)}
            rows.append([dimension, f"{n_rules} rules, {eps}/s, {interval} s", tool]
                        + [fmt(res.get(k, float("nan"))) for _, k in SCALE_METRICS])  # fmt: skip
            for label, k in SCALE_METRICS:
                series.setdefault(dimension, {}).setdefault(label, {}).setdefault(tool, []).append((x, res[k]))
    headers = ["grows", "point", "tool", *[label for label, _ in SCALE_METRICS]]
    print_table(
        f"\nScale curve: from {base_rules} rules, {base_eps} events/s, a {base_interval} s interval, one dimension"
        f" grown at a time; {SECONDS:g} s measured per run; "
        + (
            f"rules: {REAL_SHARE:.0%} variants of the pack's and SigmaHQ's Linux rules (values suffixed per variant),"
            " the rest bench rules the stream makes fire"
            if real
            else "synthetic rules (bench variants)"
        ),
        headers,
        rows,
    )
    for dimension, by_metric in series.items():
        for label, by_tool in by_metric.items():
            if label != "ES requests / s":
                continue
            for tool, pts in by_tool.items():
                if len(pts) > 1 and pts[0][1] > 0:
                    growth = pts[-1][1] / pts[0][1]
                    print(f"{tool}: {label} ×{growth:.2g} as {dimension} goes {pts[0][0]} → {pts[-1][0]}")
    ea_points = {k for k, v in measured_at.items() if "ElastAlert2" in v}
    skipped = [k for k in measured_at if k not in ea_points]
    if skipped:
        print(f"ElastAlert2 not run at: {', '.join(f'{r} rules/{e} eps/{i} s' for r, e, i in skipped)}"
              f" (BENCH_SCALE_EA_MAX_RULES={ea_max})")  # fmt: skip
    for note in notes:
        print(note)
    out = REPO / "test-artifacts" / "bench-detection-scale.svg"
    out.parent.mkdir(exist_ok=True)
    out.write_text(svg_chart(series, [label for label, _ in SCALE_METRICS if label != "event→alert p50 s"]))
    print(f"chart: {out.relative_to(REPO)}")


COLOURS = {"soar fetch": "#1b9e77", "soar search": "#7570b3", "ElastAlert2": "#d95f02"}


def svg_chart(series: dict[str, dict[str, dict[str, list[tuple[int, float]]]]], metrics: list[str]) -> str:
    """Small multiples: one column per grown dimension, one row per metric; a line per tool (plain SVG)."""
    dims = list(series)
    w, h, pad = 260, 150, 46
    width, height = pad + len(dims) * (w + pad), 40 + len(metrics) * (h + pad)
    svg = 'xmlns="http://www.w3.org/2000/svg" font-family="sans-serif" font-size="10"'
    out = [f'<svg {svg} width="{width}" height="{height}">']
    out.append('<rect width="100%" height="100%" fill="white"/>')
    legend_x = pad
    for tool, colour in COLOURS.items():
        out.append(f'<rect x="{legend_x}" y="8" width="10" height="10" fill="{colour}"/>')
        out.append(f'<text x="{legend_x + 14}" y="17">{tool}</text>')
        legend_x += 110
    for col, dim in enumerate(dims):
        for row, metric in enumerate(metrics):
            x0, y0 = pad + col * (w + pad), 40 + row * (h + pad)
            lines = series[dim].get(metric, {})
            xs = sorted({x for pts in lines.values() for x, _ in pts})
            values = [v for pts in lines.values() for _, v in pts if v == v]
            top = max(values, default=1.0) * 1.1 or 1.0
            out.append(f'<rect x="{x0}" y="{y0}" width="{w}" height="{h}" fill="none" stroke="#999"/>')
            out.append(f'<text x="{x0}" y="{y0 - 4}">{metric} — {dim}</text>')
            out.append(f'<text x="{x0 - 4}" y="{y0 + 8}" text-anchor="end">{top:.3g}</text>')
            out.append(f'<text x="{x0 - 4}" y="{y0 + h}" text-anchor="end">0</text>')

            def px(x: int, xs: list[int] = xs, x0: int = x0) -> float:
                return x0 + 10 + (w - 20) * (xs.index(x) / max(1, len(xs) - 1))

            for x in xs:
                out.append(f'<text x="{px(x):.1f}" y="{y0 + h + 12}" text-anchor="middle">{x}</text>')
            for tool, pts in lines.items():
                coords = [(px(x), y0 + h - h * (v / top)) for x, v in pts if v == v]
                if not coords:
                    continue
                path = " ".join(f"{a:.1f},{b:.1f}" for a, b in coords)
                colour = COLOURS.get(tool, "#333")
                out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
                out += [f'<circle cx="{a:.1f}" cy="{b:.1f}" r="3" fill="{colour}"/>' for a, b in coords]
    out.append("</svg>")
    return "\n".join(out)


def print_correlations(es: Any, es_url: str, root_info: dict[str, Any]) -> None:
    title = (
        f"\nCorrelations in the cycle: 100 rules + {CORRELATIONS} correlations (event_count), one cycle; the anchor"
        " is soar's own earlier code path (each correlation fetched on its own), not another tool"
    )
    headers = ["metric", "soar (one _msearch)", "anchor (fetched one by one)", "anchor / soar"]
    print_table(title, headers, run_correlations(es, es_url, root_info))


if __name__ == "__main__":
    raise SystemExit(main())
