"""The fixtures of soar's own rule types (``<name>.soar.tests.yml``: docs/baseline-rules.md), for ``soar rules test``.

A Sigma fixture is one event that matches or not; a first sighting, a spike or a silence exists only against a
past, so each case is a timeline: real shipper documents placed ``at`` offsets from the end of the run
(``repeat: {count, every}``), the cycles run every interval from ``from`` to the end on the embedded engine (the
scheduler's own cycle: history build, windows, buckets, claims), optional ``inventory`` and ``isolated`` hosts,
and the ``alerts`` (group keys) the timeline must give — no more, no fewer.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from soar import _yaml
from soar.detection._fixtures import RuleTestResult
from soar.detection._soar_rules import duration
from soar.errors import ContentError, SourceLocation
from soar.scheduler.planning import iso
from soar.scheduler.rules import ScheduledRule


def offset(text: str) -> float:
    """Seconds from ``-3d``, ``-9m50s``, ``1h30m``: negative before the end of the run."""
    sign = -1.0 if text.startswith("-") else 1.0
    total, parts = 0.0, text.lstrip("-+").replace("d", "d ").replace("h", "h ").replace("m", "m ").split()
    for part in parts:
        seconds = duration(part)
        if seconds is None:
            raise ValueError(f"not an offset like -3d or -9m50s: {text!r}")
        total += seconds
    return sign * total


def timeline(case: Mapping[str, Any], end: float) -> list[dict[str, Any]]:
    """The case's events, each at its time (``end`` + its offset), in time order."""
    out = []
    for item in case["events"]:
        repeat = item.get("repeat") or {"count": 1, "every": "1s"}
        for n in range(int(repeat["count"])):
            doc = json.loads(json.dumps(item["event"]))
            doc["@timestamp"] = iso(end + offset(str(item["at"])) + n * offset(str(repeat["every"])))
            out.append(doc)
    return sorted(out, key=lambda e: e["@timestamp"])


def run_case(rule: ScheduledRule, case: Mapping[str, Any], content: Path) -> list[str]:
    """Run one case on the embedded engine; the differences from its ``alerts`` (empty: it passed)."""
    from soar.config import load_settings
    from soar.detection.embedded import EventStore
    from soar.scheduler import baselines
    from soar.scheduler.cycle import Detector
    from soar.scheduler.sources import EmbeddedSource
    from soar.store.sqlite import SQLiteStore

    hosts = case.get("inventory") or []
    inventory = "".join(f"  {h}: {{address: 192.0.2.{n + 1}}}\n" for n, h in enumerate(hosts))
    (content / "inventory.yml").write_text("hosts:\n" + inventory if hosts else "hosts: {}\n", encoding="utf-8")
    settings = load_settings(
        content_root=content, state_dir=content / "state", celery_eager=True, detection_ingest_delay=0.0
    )
    end = (time.time() // 3600) * 3600  # the last full hour: buckets of every size align on it
    start = offset(str(case["from"]))
    ticks = [end + start + n * rule.interval for n in range(int(-start // rule.interval) + 2)]
    events = EventStore()
    store = SQLiteStore(content / "state" / f"fixture-{time.monotonic_ns()}.sqlite3")
    try:
        events.insert(timeline(case, end))
        for host in case.get("isolated") or []:
            store.put("containments", host, {"state": "in_force", "action": "hosts.isolate_host", "host": host})
        baselines.forget_process_state()
        detector = Detector(settings, store, EmbeddedSource(events, {}), lambda _id: None)
        for tick in ticks:
            error = detector.run([rule], tick).runs[rule.id].error
            if error is not None:
                return [f"the cycle at {iso(tick)} failed: {error.message}"]
        found = sorted(json.dumps(r.doc["group"]["key"], sort_keys=True) for r in store.find("alerts", limit=1000))
    finally:
        store.close()
        events.close()
        baselines.forget_process_state()
    expected = sorted(json.dumps(a, sort_keys=True) for a in case.get("alerts") or [])
    failures = [f"expected an alert for {a}, none came" for a in expected if a not in found]
    failures += [f"an alert no case expects: {a}" for a in found if a not in expected]
    if len(found) != len(set(found)):
        failures.append(f"an alert raised twice: {sorted({a for a in found if found.count(a) > 1})}")
    return failures


def run_soar_fixtures(paths: Sequence[Path]) -> tuple[list[RuleTestResult], list[ContentError]]:
    """Every soar rule under ``paths`` with a ``.soar.tests.yml`` beside it, its cases on the embedded engine."""
    from soar.config import load_settings
    from soar.scheduler.loading import load_scheduled_rules

    results: list[RuleTestResult] = []
    errors: list[ContentError] = []
    with tempfile.TemporaryDirectory(prefix="soar-fixtures-") as tmp:
        content = Path(tmp)
        settings = load_settings(content_root=content, state_dir=content / "state", celery_eager=True)
        rules, load_errors = load_scheduled_rules(settings, paths)
        errors += [e for e in load_errors if str(e.source or "").split(":")[0].endswith((".soar.yml", ".soar.yaml"))]
        for rule in (r for r in rules if r.baseline is not None):
            path = Path(rule.source.rsplit(":", 1)[0])
            fixtures = path.with_name(path.name.replace(".soar.y", ".soar.tests.y"))
            if not fixtures.is_file():
                continue
            try:
                cases = _yaml.load(fixtures.read_text(encoding="utf-8"))["cases"]
                failures = []
                for n, case in enumerate(cases):
                    failures += [f"case {n} ({case.get('name', '')}): {f}" for f in run_case(rule, case, content)]
            except (KeyError, TypeError, ValueError) as exc:
                errors.append(ContentError(f"malformed soar rule fixtures: {exc}", SourceLocation(fixtures)))
                continue
            results.append(RuleTestResult(rule.id, rule.title, str(path), not failures, failures, len(cases)))
    return results, errors
