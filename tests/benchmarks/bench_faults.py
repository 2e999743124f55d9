"""Operability under faults (issue #21's measures; a benchmark, never a test): how soar's scheduler and worker
recover from each fault, how late alerts are during and after it, and how much they log while it lasts.

A real stack, all of it started here: ``soar scheduler`` and ``soar worker`` (Celery on a private
redis-server: a port and directory of its own), the SQLite store, Elasticsearch reached through a loopback TCP
proxy (so it can refuse or black-hole for soar alone), one rule at a 1 s interval and a steady stream of
matching events; once with the SQLite store, once with the Elasticsearch store (``BENCH_FAULT_STORES``), which
an Elasticsearch fault takes away too. Faults, each repeated ``BENCH_FAULT_REPS`` times (3):

- ``kill -9 scheduler`` / ``kill -9 worker`` (with its pool): down ``BENCH_FAULT_RESTART`` s (2), then
  started again, as a supervisor would;
- ``redis stopped``: SIGTERM, started again after ``BENCH_FAULT_SECONDS`` (6);
- ``es refused`` (the proxy closed) and ``es black-holed`` (connections accepted, never answered), as long.

Measured per fault: **recovery** — from the fault's end (restart, service back) until the rule's checkpoint
covers that moment (every event up to it searched and alerted), p50/p95 over the repetitions; the baseline row is
the same figure without a fault (a cycle's own lag: interval plus ingest delay). **Alert delay** — alert
creation minus the event's ``@timestamp``, p50/p95 for the events that happened during the fault and in the
10 s after it. **Log lines per minute** of the fault, of the scheduler and of the worker, all of them and (in
brackets) those at WARNING or worse (the worker logs at INFO, its default: lines for every task; the baseline
row shows those rates without a fault). Every run also checks 0 missed,
0 duplicate and ``alerts_total`` exact, and prints it.

Run: ``python -m tests.benchmarks.bench_faults`` (about 4 minutes per store).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from elasticsearch import Elasticsearch

from soar.scheduler.planning import iso, parse_time
from soar.store import Store
from soar.store.elastic import ElasticsearchStore
from soar.store.sqlite import SQLiteStore
from tests.faults import PrivateRedis
from tests.workers import REPO_ROOT

REPS = int(os.environ.get("BENCH_FAULT_REPS", "3"))
OUTAGE = float(os.environ.get("BENCH_FAULT_SECONDS", "6"))
RESTART = float(os.environ.get("BENCH_FAULT_RESTART", "2"))
STORES = os.environ.get("BENCH_FAULT_STORES", "sqlite,elasticsearch").split(",")  # empty: none
WORKER = os.environ.get("BENCH_FAULT_WORKER", "1") == "1"  # the worker row (Elasticsearch down under it)
AFTER = 10.0  # seconds after a fault whose events count as "after"
ES_URL = os.environ.get("SOARDEV_TEST_ES", "http://127.0.0.1:9200")
RULE = """\
title: Bench fault marker
id: {rule_id}
status: test
level: high
logsource: {{product: linux, category: process_creation}}
detection:
  sel: {{CommandLine|contains: '{marker}'}}
  condition: sel
soar: {{interval: 1s, lookback: 30s}}
"""


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


WARNING_OR_WORSE = re.compile(rb"WARNING|ERROR|CRITICAL|Traceback")


def _lines(path: Path) -> tuple[int, int]:
    """(all lines, lines at WARNING or worse) of a log so far."""
    lines = path.read_bytes().splitlines() if path.exists() else []
    return len(lines), sum(1 for line in lines if WARNING_OR_WORSE.search(line))


class Process:
    """A soar subprocess in its own session (so kill -9 takes its pool too), appending to a log; started when
    the log shows ``marker`` once more (the scheduler's first line, Celery's "ready.")."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path, marker: bytes) -> None:
        self.args, self.env, self.log, self.marker = args, env, log, marker
        self.proc: subprocess.Popen[bytes] | None = None

    def _marks(self) -> int:
        return self.log.read_bytes().count(self.marker) if self.log.exists() else 0

    def start(self) -> None:
        before = self._marks()
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "soar", *self.args], env=self.env, stdout=out, stderr=subprocess.STDOUT,
                cwd=REPO_ROOT, start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + 60
        while self._marks() <= before and time.monotonic() < deadline:
            time.sleep(0.1)

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=20)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class Stream(threading.Thread):
    """One matching event every 0.2 s, stamped now."""

    def __init__(self, es: Elasticsearch, index: str, marker: str) -> None:
        super().__init__(daemon=True)
        self.es, self.index, self.marker = es, index, marker
        self.times: dict[str, float] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        n = 0
        while not self.stop.is_set():
            doc_id, now = f"b{n:06d}", time.time()
            doc = {
                "@timestamp": iso(now),
                "event": {"category": ["process"], "type": ["start"]},
                "process": {"command_line": f"run {self.marker} {n}", "executable": "/bin/sh"},
                "host": {"name": "bench"},
            }
            with contextlib.suppress(Exception):  # Elasticsearch itself stays up: only soar's path is cut
                self.es.index(index=self.index, id=doc_id, document=doc, refresh=True)
                self.times[doc_id] = now
            n += 1
            self.stop.wait(0.2)


@dataclass
class Row:
    name: str
    recovery: list[float] = field(default_factory=list)
    during: list[float] = field(default_factory=list)
    after: list[float] = field(default_factory=list)
    sched_lines: list[tuple[float, float]] = field(default_factory=list)  # per minute: all, warning or worse
    worker_lines: list[tuple[float, float]] = field(default_factory=list)


class Stack:
    def __init__(self, root: Path, es: Elasticsearch, backend: str) -> None:
        from tests.integration.scheduler.proxy import CuttableProxy

        self.root, self.es = root, es
        self.index = f"soar-bench-faults-{uuid.uuid4().hex[:8]}"
        self.marker = f"faultmark{uuid.uuid4().hex[:8]}"
        self.rule_id = str(uuid.uuid4())
        (root / "rules").mkdir(parents=True)
        (root / "rules" / "marker.yml").write_text(RULE.format(rule_id=self.rule_id, marker=self.marker))
        target = urlparse(ES_URL)
        self.proxy = CuttableProxy(target.hostname or "127.0.0.1", target.port or 9200).start()
        self.redis = PrivateRedis(root / "redis").start()
        env = {k: v for k, v in os.environ.items() if not k.startswith("SOAR_")}
        self.env = env | {
            "SOAR_CONTENT_ROOT": str(root),
            "SOAR_STATE_DIR": str(root / "state"),
            "SOAR_EVENTS_INDEX": self.index,
            "SOAR_ELASTICSEARCH_URL": self.proxy.url,
            "SOAR_REDIS_URL": self.redis.url,
            "SOAR_DETECTION_INTERVAL": "1",
            "SOAR_DETECTION_INGEST_DELAY": "1",
        }
        (root / "state").mkdir()
        self.prefix = f"soar-bench-faults-{uuid.uuid4().hex[:8]}"
        self.store: Store = SQLiteStore(root / "state" / "state.sqlite3")
        if backend == "elasticsearch":  # the processes reach it through the proxy; this view reads it directly
            self.env |= {"SOAR_STORE": "elasticsearch", "SOAR_INDEX_PREFIX": self.prefix}
            self.store = ElasticsearchStore(es, self.prefix)
        self.sched_log, self.worker_log = root / "scheduler.log", root / "worker.log"
        self.worker = Process(["worker", "-c", "1", "-l", "INFO"], self.env, self.worker_log, b" ready.")
        self.scheduler = Process(
            ["scheduler", "--tick", "0.5", "--lease", "4"], self.env, self.sched_log, b"soar scheduler:"
        )
        self.stream = Stream(es, self.index, self.marker)

    def covered(self) -> float:
        rec = self.store.get("checkpoints", self.rule_id)
        return (parse_time(rec.doc.get("end")) or 0.0) if rec else 0.0

    def wait_covered(self, t: float, timeout: float = 120) -> float:
        """Seconds until the checkpoint covers ``t`` (searched and alerted up to it)."""
        deadline = time.monotonic() + timeout
        while self.covered() < t and time.monotonic() < deadline:
            time.sleep(0.05)
        return time.time() - t

    def alerts(self) -> dict[str, float]:
        """event id -> its alert's creation time."""
        out: dict[str, float] = {}
        for rec in self.store.find("alerts", limit=1_000_000):
            for event_id in rec.doc.get("event_ids", []):
                out[event_id] = parse_time(rec.doc.get("@timestamp")) or 0.0
        return out

    def close(self) -> None:
        self.stream.stop.set()
        self.scheduler.kill9()
        self.worker.kill9()
        self.redis.close()
        self.proxy.close()
        with contextlib.suppress(Exception):
            self.es.indices.delete(index=self.index)
        with contextlib.suppress(Exception):
            self.es.options(ignore_status=404).indices.delete(index=f"{self.prefix}-*")
            self.es.options(ignore_status=404).indices.delete_index_template(name=f"{self.prefix}-state")


@contextlib.contextmanager
def stack(es: Elasticsearch, backend: str) -> Iterator[Stack]:
    with tempfile.TemporaryDirectory(prefix="soar-bench-faults-") as tmp:
        s = Stack(Path(tmp), es, backend)
        try:
            s.es.indices.create(index=s.index)
            s.worker.start()
            s.scheduler.start()
            s.stream.start()
            s.wait_covered(time.time() + 2)
            yield s
        finally:
            s.close()


def _faults(s: Stack) -> dict[str, tuple[Callable[[], object], Callable[[], object], float]]:
    """name -> (begin, end, seconds between them)."""
    return {
        "none (baseline)": (lambda: None, lambda: None, OUTAGE),
        "kill -9 scheduler": (s.scheduler.kill9, s.scheduler.start, RESTART),
        "kill -9 worker": (s.worker.kill9, s.worker.start, RESTART),
        "redis stopped": (s.redis.stop, s.redis.start, OUTAGE),
        "es refused": (s.proxy.cut, s.proxy.restore, OUTAGE),
        "es black-holed": (s.proxy.black_hole, s.proxy.restore_hole, OUTAGE),
    }


def measure(s: Stack) -> list[Row]:
    rows: list[Row] = []
    windows: list[tuple[Row, float, float]] = []
    for name, (begin, end, seconds) in _faults(s).items():
        row = Row(name)
        rows.append(row)
        for _ in range(REPS):
            lines0 = (_lines(s.sched_log), _lines(s.worker_log))
            t0 = time.time()
            begin()
            time.sleep(seconds)
            t1 = time.time()
            lines1 = (_lines(s.sched_log), _lines(s.worker_log))
            end()  # a restart takes its start-up time: part of the recovery
            row.recovery.append(s.wait_covered(t1))
            per_minute = 60 / (t1 - t0)
            for out, before, after in (
                (row.sched_lines, lines0[0], lines1[0]),
                (row.worker_lines, lines0[1], lines1[1]),
            ):
                out.append(((after[0] - before[0]) * per_minute, (after[1] - before[1]) * per_minute))
            windows.append((row, t0, t1))
            time.sleep(3)  # steady again before the next one
            s.wait_covered(time.time())
    s.wait_covered(time.time() + AFTER)
    s.stream.stop.set()
    s.stream.join(5)
    s.wait_covered(time.time() + 2)
    alerted = s.alerts()
    for row, t0, t1 in windows:
        for event_id, at in list(s.stream.times.items()):
            if event_id in alerted and t0 <= at < t1:
                row.during.append(alerted[event_id] - at)
            elif event_id in alerted and t1 <= at < t1 + AFTER:
                row.after.append(alerted[event_id] - at)
    expected = set(s.stream.times)
    missed = expected - set(alerted)
    ids = [e for r in s.store.find("alerts", limit=1_000_000) for e in r.doc.get("event_ids", [])]
    ck = s.store.get("checkpoints", s.rule_id)
    total = int(ck.doc.get("alerts_total", 0)) if ck else 0
    print(
        f"events {len(expected)}: missed {len(missed)}, duplicate {len(ids) - len(set(ids))},"
        f" alerts {s.store.count('alerts')}, alerts_total {total} ({'exact' if total == len(ids) else 'NOT exact'}),"
        f" open gaps {s.store.count('gaps', {'status': 'open'})}"
    )
    return rows


def _fmt(values: list[float]) -> str:
    p50, p95 = _percentile(values, 0.5), _percentile(values, 0.95)
    return "-" if p50 is None or p95 is None else f"{p50:5.1f} / {p95:5.1f}"


def _rate(values: list[tuple[float, float]]) -> str:
    return f"{statistics.fmean(v[0] for v in values):6.1f} ({statistics.fmean(v[1] for v in values):5.1f})"


WORKER_BATCH = 6  # alerts handed to the worker before each outage


def worker_store_outage(es: Elasticsearch) -> None:
    """Elasticsearch down under a worker handling alerts, on the Elasticsearch store (its runs' store): each
    repetition hands ``WORKER_BATCH`` alerts to a ``soar worker`` (2 processes; the playbook of
    tests/integration/playbooks/test_store_outage.py: a note, a 1 s step, a non-idempotent lock, a note),
    cuts Elasticsearch (refused, through the proxy) once their runs are under way, for ``BENCH_FAULT_SECONDS``.
    **Recovery**: Elasticsearch back → every run of the batch finished. **Runs lost**: alerts without a
    finished run 120 s after; duplicates: alerts with two runs; the lock run twice for one alert."""
    import shutil

    from celery import Celery

    from soar.playbooks.records import RUNS
    from tests.integration.playbooks.test_store_outage import PLAYBOOK
    from tests.integration.scheduler.proxy import CuttableProxy
    from tests.playbook_kit import INVENTORY, POLICY, TESTKIT, Content, alert, content_env
    from tests.playbook_kit.testkit import calls

    with tempfile.TemporaryDirectory(prefix="soar-bench-wout-") as tmp:
        root = Path(tmp)
        content = Content(root / "content", root / "state")
        (content.root / "integrations").mkdir(parents=True)
        (content.root / "playbooks").mkdir()
        shutil.copy(TESTKIT, content.root / "integrations" / "testkit.py")
        (content.root / "inventory.yml").write_text(INVENTORY, encoding="utf-8")
        (content.root / "policy.yml").write_text(POLICY, encoding="utf-8")
        content.playbook("outage", PLAYBOOK)
        prefix = f"soar-bench-wout-{uuid.uuid4().hex[:8]}"
        store = ElasticsearchStore(es, prefix)
        target = urlparse(ES_URL)
        proxy = CuttableProxy(target.hostname or "127.0.0.1", target.port or 9200).start()
        redis_ = PrivateRedis(root / "redis").start()
        env = {k: v for k, v in os.environ.items() if not k.startswith("SOAR_")} | content_env(content, eager=False)
        env |= {"SOAR_REDIS_URL": redis_.url, "SOAR_STORE": "elasticsearch", "SOAR_INDEX_PREFIX": prefix,
                "SOAR_ELASTICSEARCH_URL": proxy.url}  # fmt: skip
        log = root / "worker.log"
        worker = Process(["worker", "-c", "2", "-l", "INFO"], env, log, b" ready.")
        client = Celery("bench", broker=redis_.url)
        recovery: list[float] = []
        lines: list[tuple[float, float]] = []
        sent: list[str] = []
        try:
            worker.start()
            for rep in range(REPS):
                batch = [f"wout-{rep}-{i}" for i in range(WORKER_BATCH)]
                for alert_id in batch:
                    store.create("alerts", alert_id, alert(alert_id, host="dev1", user=alert_id))
                    client.send_task("soar.playbooks.handle_alert", args=[alert_id], queue="response")
                sent += batch
                deadline = time.monotonic() + 60  # the outage begins with the batch's runs under way
                while len(calls(content.state)) < 4 * len(sent) - 2 * WORKER_BATCH and time.monotonic() < deadline:
                    time.sleep(0.05)
                before, t0 = _lines(log), time.time()
                proxy.cut()
                time.sleep(OUTAGE)
                t1 = time.time()
                after = _lines(log)
                proxy.restore()
                lines.append(((after[0] - before[0]) * 60 / (t1 - t0), (after[1] - before[1]) * 60 / (t1 - t0)))

                def finished(ids: list[str] = batch) -> bool:
                    runs = store.find(RUNS, {"alert_id": ids}, limit=1000)
                    done = {
                        r.doc["alert_id"] for r in runs if r.doc["status"] in ("succeeded", "failed", "rolled_back")
                    }
                    return done >= set(ids)

                deadline = time.monotonic() + 120
                while not finished() and time.monotonic() < deadline:
                    time.sleep(0.1)
                recovery.append(time.time() - t1)
            runs = [r.doc for r in store.find(RUNS, limit=10_000)]
        finally:
            client.close()
            worker.kill9()
            redis_.close()
            proxy.close()
            with contextlib.suppress(Exception):
                es.options(ignore_status=404).indices.delete(index=f"{prefix}-*")
                es.options(ignore_status=404).indices.delete_index_template(name=f"{prefix}-state")
        per_alert: dict[str, int] = {}
        for run in runs:
            per_alert[run["alert_id"]] = per_alert.get(run["alert_id"], 0) + 1
        done = {r["alert_id"] for r in runs if r["status"] in ("succeeded", "failed", "rolled_back")}
        locks = [c["user"] for c in calls(content.state) if c["action"] == "testkit.lock"]
        statuses = [r["status"] for r in runs]
        text = log.read_text(encoding="utf-8", errors="replace")
    print(f"\nElasticsearch down under the worker (its store), {REPS}x {OUTAGE:g} s, {WORKER_BATCH} alerts a time:")
    head = f"{'fault':<28} {'recovery s p50/p95':>19} {'runs lost':>10} {'duplicate':>10} {'lock twice':>11}"
    print(head + f" {'worker lines/min (warn+)':>25}")
    print(
        f"{'es refused under the worker':<28} {_fmt(recovery):>19} {len(set(sent) - done):>10}"
        f" {sum(1 for n in per_alert.values() if n > 1):>10} {len(locks) - len(set(locks)):>11} {_rate(lines):>25}"
    )
    print(
        f"runs {len(runs)} for {len(sent)} alerts: {statuses.count('succeeded')} succeeded,"
        f" {statuses.count('failed')} failed (a lock interrupted by the outage is not run again);"
        f" worker log: {text.count(' is down: ')} down lines, {text.count(' is back after ')} back lines,"
        f" {text.count('Traceback')} tracebacks"
    )


def main() -> int:
    es = Elasticsearch(ES_URL, request_timeout=30)
    try:
        es.nodes.info(node_id="_local", metric="_none")
    except Exception as exc:
        print(f"bench_faults: Elasticsearch at {ES_URL} not reachable ({exc}); nothing measured")
        return 1
    print(f"faults {REPS}x each; outage {OUTAGE:g} s, restart after {RESTART:g} s; rule interval 1 s, ingest delay 1 s")
    for backend in filter(None, STORES):
        print(f"\n{backend} store:")
        with stack(es, backend) as s:
            rows = measure(s)
        head = f"{'fault':<20} {'recovery s p50/p95':>19} {'delay during p50/p95':>21} {'delay after p50/p95':>20}"
        print(head + f" {'scheduler lines/min (warn+)':>28} {'worker lines/min (warn+)':>25}")
        for row in rows:
            print(
                f"{row.name:<20} {_fmt(row.recovery):>19} {_fmt(row.during):>21} {_fmt(row.after):>20}"
                f" {_rate(row.sched_lines):>28} {_rate(row.worker_lines):>25}"
            )
    print("(recovery: fault end → checkpoint past it; the baseline row is a cycle's own lag. Printed, never asserted.)")
    if WORKER:
        worker_store_outage(es)
    return 0


if __name__ == "__main__":
    sys.exit(main())
