"""Playbook engine benchmark (not a test): alert-to-first-step latency and per-step overhead on the Redis
broker with a real worker, and the throughput of a 1,000-alert storm.

Anchors: a bare Celery round trip (``soar.system.ping``) on the same broker and worker — the floor of
any engine built on Celery — and a direct call of the action function for per-step overhead. Ratios are
ours / anchor.

Run: ``python -m tests.benchmarks.bench_playbooks`` (needs Redis: ``scripts/services.sh up redis``).
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from celery import Celery

from soar.actions import ActionContext
from soar.config import get_settings, load_settings
from soar.playbooks import dispatch, engine
from soar.playbooks.records import RUNS
from soar.playbooks.runtime import Runtime
from soar.store import open_store
from tests.playbook_kit import INVENTORY, TESTKIT, alert
from tests.playbook_kit.testkit import calls
from tests.unit.playbooks.test_parallel import WIDE
from tests.workers import flush_db, redis_url_for_db, running_worker

DB = 8
LATENCY_ALERTS = 40
STEPS = 10
STORM = 1000
WORKER_STORM = 200

FIRST_STEP = """\
name: first
trigger: {rules: [bench-first]}
steps:
  - id: note
    uses: testkit.note
    with: {text: "{{ alert.host.name }}"}
"""
MANY_STEPS = "name: many\ntrigger: {rules: [bench-many]}\nsteps:\n" + "".join(
    f'  - id: s{i}\n    uses: testkit.note\n    with: {{text: "{{{{ alert.host.name }}}} {i}"}}\n' for i in range(STEPS)
)
WIDE_HOSTS = 50
STORM_PB = """\
name: storm
trigger: {rules: [bench-storm]}
steps:
  - id: contain
    uses: testkit.contain
    with: {host: "{{ alert.host.name }}"}
"""


def _content(tmp: Path) -> Path:
    root = tmp / "content"
    (root / "integrations").mkdir(parents=True)
    (root / "playbooks").mkdir()
    shutil.copy(TESTKIT, root / "integrations" / "testkit.py")
    (root / "inventory.yml").write_text(INVENTORY, encoding="utf-8")
    (root / "policy.yml").write_text("rate_caps: {contain_per_hour: 100000}\n", encoding="utf-8")
    for name, text in (("first", FIRST_STEP), ("many", MANY_STEPS), ("storm", STORM_PB)):
        (root / "playbooks" / f"{name}.yml").write_text(text, encoding="utf-8")
    for width in (1, 10):
        text = WIDE.replace("{width}", str(width)).replace("seconds: 0.4", "seconds: 0.1")
        text = text.replace("name: wide", f"name: wide{width}").replace("rule-contain", f"bench-wide{width}")
        (root / "playbooks" / f"wide{width}.yml").write_text(text, encoding="utf-8")
    return root


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(round(p / 100 * (len(ordered) - 1)), len(ordered) - 1)]


def _wait(pred: Any, timeout: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = pred()
        if out:
            return out
        time.sleep(0.005)
    raise TimeoutError("benchmark step did not finish")


def with_worker(tmp: Path) -> dict[str, float]:
    root, state = _content(tmp), tmp / "state-worker"
    settings = load_settings(content_root=root, state_dir=state)
    store = open_store(settings)
    env = {
        "SOAR_CONTENT_ROOT": str(root),
        "SOAR_STATE_DIR": str(state),
        "SOAR_CELERY_EAGER": "false",
        "SOAR_REDIS_URL": redis_url_for_db(DB),
    }
    flush_db(DB)
    out: dict[str, float] = {}
    client = Celery("bench", broker=redis_url_for_db(DB), backend=redis_url_for_db(DB))
    with running_worker(DB, env, concurrency=2, log_path=tmp / "worker.log"):
        pings = []
        for _ in range(LATENCY_ALERTS):
            t0 = time.time()
            client.send_task("soar.system.ping", args=["x"], queue="default").get(timeout=30)
            pings.append(time.time() - t0)
        firsts = []
        for i in range(LATENCY_ALERTS):
            doc = alert(f"lat-{i}", rule_id="bench-first", host=f"h{i}")
            store.create(engine.ALERTS, doc["id"], doc)
            seen = len(calls(state))
            t0 = time.time()
            client.send_task("soar.playbooks.handle_alert", args=[doc["id"]], queue="response")
            first = _wait(lambda seen=seen: calls(state)[seen:])
            firsts.append(first[0]["t"] - t0)
        out.update(
            ping_p50=_pct(pings, 50), ping_p95=_pct(pings, 95), first_p50=_pct(firsts, 50), first_p95=_pct(firsts, 95)
        )
        doc = alert("many-1", rule_id="bench-many", host="dev1")
        store.create(engine.ALERTS, doc["id"], doc)
        t0 = time.time()
        client.send_task("soar.playbooks.handle_alert", args=[doc["id"]], queue="response")
        run = _wait(lambda: [r.doc for r in store.find(RUNS, {"alert_id": "many-1", "status": "succeeded"})])
        notes = [c["t"] for c in calls(state) if c["run"] == run[0]["id"]]
        out["worker_per_step"] = (notes[-1] - notes[0]) / (STEPS - 1)
        t0 = time.time()
        for i in range(WORKER_STORM):
            doc = alert(f"wstorm-{i}", rule_id="bench-storm", host=f"s{i}")
            store.create(engine.ALERTS, doc["id"], doc)
            client.send_task("soar.playbooks.handle_alert", args=[doc["id"]], queue="response")
        _wait(lambda: store.count(RUNS, {"rule_id": "bench-storm", "status": "succeeded"}) >= WORKER_STORM, 600)
        out["worker_storm_per_s"] = WORKER_STORM / (time.time() - t0)
    client.close()
    store.close()
    flush_db(DB)
    return out


def embedded(tmp: Path) -> dict[str, float]:
    root = _content(tmp)
    # The notify task reads the process settings (as `soar` does): make them this runtime's, or the
    # eager run's notifications would go out as Celery tasks to whatever Redis the environment names.
    os.environ.update(SOAR_CONTENT_ROOT=str(root), SOAR_STATE_DIR=str(tmp / "state-eager"), SOAR_CELERY_EAGER="true")
    get_settings.cache_clear()
    settings = get_settings()
    rt = Runtime.build(settings)
    action = rt.registry.get("testkit.note")
    ctx = ActionContext(settings=settings, run_id="direct", step_id="s")
    t0 = time.perf_counter()
    for i in range(STEPS * 20):
        action.call(ctx, {"text": f"dev1 {i}"})
    direct = (time.perf_counter() - t0) / (STEPS * 20)
    per_run = []
    for i in range(20):
        doc = alert(f"many-e{i}", rule_id="bench-many", host="dev1")
        rt.store.create(engine.ALERTS, doc["id"], doc)
        t0 = time.perf_counter()
        for run_id in engine.handle_alert(rt, doc["id"]):
            dispatch.drive(rt, run_id)
        per_run.append(time.perf_counter() - t0)
    per_step = statistics.median(per_run) / STEPS
    t0 = time.perf_counter()
    for i in range(STORM):
        doc = alert(f"storm-{i}", rule_id="bench-storm", host=f"s{i % 300}")
        rt.store.create(engine.ALERTS, doc["id"], doc)
        for run_id in engine.handle_alert(rt, doc["id"]):
            dispatch.drive(rt, run_id)
    storm = STORM / (time.perf_counter() - t0)
    wide: dict[str, float] = {}
    for width in (1, 10):  # one for_each step over 50 hosts, each containment taking 0.1 s
        hosts = [f"w{width}-{i}" for i in range(WIDE_HOSTS)]
        doc = alert(f"wide-{width}", rule_id=f"bench-wide{width}", related={"hosts": hosts})
        rt.store.create(engine.ALERTS, doc["id"], doc)
        t0 = time.perf_counter()
        for run_id in engine.handle_alert(rt, doc["id"]):
            dispatch.drive(rt, run_id)
        wide[f"wide_{width}"] = time.perf_counter() - t0
    return {"direct_call": direct, "eager_per_step": per_step, "eager_storm_per_s": storm, **wide}


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="soar-bench-pb-") as tmp_name:
        tmp = Path(tmp_name)
        saved = dict(os.environ)
        try:
            e = embedded(tmp / uuid.uuid4().hex)
        finally:  # the worker part must not inherit the embedded settings
            os.environ.clear()
            os.environ.update(saved)
            get_settings.cache_clear()
        w = with_worker(tmp / uuid.uuid4().hex)
    ms = 1000.0
    rows = [
        ("alert -> first step p50 (Redis, worker)", w["first_p50"] * ms, w["ping_p50"] * ms, "ms"),
        ("alert -> first step p95 (Redis, worker)", w["first_p95"] * ms, w["ping_p95"] * ms, "ms"),
        ("per-step time (Redis, worker)", w["worker_per_step"] * ms, w["ping_p50"] * ms, "ms"),
        ("per-step time (embedded, SQLite)", e["eager_per_step"] * ms, e["direct_call"] * ms, "ms"),
        ("storm throughput (embedded), alerts/s", e["eager_storm_per_s"], None, "/s"),
        (
            f"for_each over {WIDE_HOSTS} hosts (0.1 s each), parallel 10",
            e["wide_10"],
            e["wide_1"],
            "s; anchor: one at a time",
        ),
        (f"storm throughput ({WORKER_STORM}, worker c=2), alerts/s", w["worker_storm_per_s"], None, "/s"),
    ]
    print(f"{'measure':48} {'ours':>10} {'anchor':>10} {'ratio':>8}")
    for name, ours, anchor, unit in rows:
        ratio = f"{ours / anchor:8.1f}" if anchor else "       -"
        anchor_s = f"{anchor:10.2f}" if anchor is not None else "         -"
        print(f"{name:48} {ours:10.2f} {anchor_s} {ratio}  ({unit})")
    print("anchors: a bare Celery round trip (soar.system.ping) on the same broker; a direct action call")
    return 0


if __name__ == "__main__":
    sys.exit(main())
