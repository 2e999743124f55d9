"""soar's own rule types on both engines: the same events give the same alerts on Elasticsearch and the embedded
store — window and bucket edges to the millisecond, multi-valued and IP fields, a restart and an outage between."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

from soar.detection.embedded import EventStore
from soar.scheduler import baselines
from soar.scheduler.cycle import Detector
from soar.scheduler.loading import load_scheduled_rules
from soar.scheduler.planning import Window, iso
from soar.scheduler.sources import EmbeddedSource
from soar.store.sqlite import SQLiteStore
from tests.integration.scheduler.conftest import Ctx, event, index_events

HEAD = """\
soar_rule: {kind}
title: {name}
id: {id}
status: test
level: medium
logsource: {{product: linux, category: process_creation}}
detection:
  sel: {{CommandLine|contains: 'soar-sched-marker'}}
  condition: sel
soar:
  interval: 20s
  lookback: 30s
{body}"""

RULES = {
    "terms_user_host": ("new_terms", "new_terms:\n  fields: [user.name, host.name]\n  history: 2h\n"),
    "terms_user_ip": ("new_terms", "new_terms:\n  fields: [user.name, source.ip]\n  history: 2h\n"),
    "spike_host": ("spike", "spike:\n  by: [host.name]\n  window: 1m\n  baseline: 5m\n  ratio: 2\n  min_count: 3\n"),
    "silence_host": ("silence", "silence:\n  window: 1m\n  min_count: 2\n  inventory: false\n  seen_within: 5m\n"),
}

H = 7200.0


def _events(t0: float) -> list[dict[str, Any]]:
    """Sightings on both sides of every edge: the history's start, buckets' starts and ends (to the ms)."""
    out = [
        event(1, t0 - H, user="u1"),  # exactly the history before u1's next sighting: not new then
        event(2, t0, user="u1"),
        event(3, t0 - H - 0.001, user="u2"),  # a millisecond more: u2 is new again at t0
        event(4, t0, user="u2"),
        event(5, t0 + 0.5, user="u3", ip="::ffff:10.9.9.9"),  # IPv4-mapped: the same address as 10.9.9.9
        event(6, t0 + 40, user="u3", ip="10.9.9.9"),
        event(7, t0 + 41, user="u4", host="db-01"),
    ]
    multi = event(8, t0 + 42, host="db-01")
    multi["user"] = {"name": ["u5", "u6"]}  # a multi-valued field: a sighting of each value
    out.append(multi)
    b = (t0 // 60) * 60 + 120  # a bucket two minutes on
    out += [event(20 + i, b - 300 + i * 60, host="web-02") for i in range(5)]  # 1 a minute: the baseline
    out += [event(30, b - 0.001, host="web-02")]  # the baseline's last millisecond
    out += [event(31 + i, b + i * 10, host="web-02") for i in range(5)]  # from the bucket's first millisecond
    out += [event(40, b + 59.999, host="web-02"), event(41, b + 60, host="web-02")]  # last ms, then the next one
    out += [event(50 + i, b - 240 + i * 60, host="app-01") for i in range(4)]  # reports 2 a minute, then stops
    out += [event(60 + i, b - 210 + i * 60, host="app-01") for i in range(4)]
    out += [event(70, b, host="app-01")]  # one event in the bucket: under min_count 2
    return out


def _run(detector: Detector, rules: list[Any], ticks: list[float], restart_at: int) -> None:
    for n, tick in enumerate(ticks):
        if n == restart_at:
            baselines.forget_process_state()  # a restarted process: nothing cached
        detector.run(rules, tick)


def _alerts(store: SQLiteStore, ids: dict[str, str]) -> set[tuple[str, str, str, str, Any, str]]:
    out = set()
    for rec in store.find("alerts", limit=10_000):
        doc = rec.doc
        group = doc.get("group") or {}
        when = str(group.get("first_seen") or group.get("window_start"))
        key = repr(sorted(group.get("key", {}).items()))
        out.add((ids[doc["rule"]["id"]], rec.id, key, when, group.get("count"), ",".join(doc.get("event_ids") or [])))
    return out


def test_both_engines_alert_alike_across_edges_restart_and_outage(ctx: Ctx, tmp_path: Path) -> None:
    names = {}
    for name, (kind, body) in RULES.items():
        rule_id = str(uuid.uuid4())
        names[rule_id] = name
        path = ctx.content / "rules" / f"{name}.soar.yml"
        path.write_text(HEAD.format(kind=kind, name=name, id=rule_id, body=body), encoding="utf-8")
    rules, errors = load_scheduled_rules(ctx.settings)
    assert not errors, [str(e) for e in errors]
    t0 = (time.time() // 60) * 60 - 1800 + 0.25  # half an hour ago, a quarter second into a minute
    events = _events(t0)
    index_events(ctx.es, ctx.index, [(str(i), e) for i, e in enumerate(events)])
    embedded = EventStore(tmp_path / "events.sqlite3")
    embedded.insert(events)  # ids 0.. in the same order: the same event ids on both sides

    ticks = [t0 - 20 + 20 * i for i in range(12)] + [t0 + 900 + 20 * i for i in range(4)]  # then a 10 min outage
    es_store = ctx.store
    emb_store = SQLiteStore(tmp_path / "embedded-state.sqlite3")
    _run(Detector(ctx.settings, es_store, ctx.es, lambda _id: None), rules, ticks, restart_at=6)
    baselines.forget_process_state()
    _run(Detector(ctx.settings, emb_store, EmbeddedSource(embedded, {}), lambda _id: None), rules, ticks, restart_at=6)

    on_es, on_embedded = _alerts(es_store, names), _alerts(emb_store, names)
    assert on_es == on_embedded
    by_rule: dict[str, set[str]] = {}
    for name, _id, key, *_ in on_es:
        by_rule.setdefault(name, set()).add(key)
    # what the events say, independently of either engine:
    users = by_rule["terms_user_host"]
    assert "[('host.name', 'web-01'), ('user.name', 'u1')]" not in users  # seen exactly 2 h before: not new
    assert "[('host.name', 'web-01'), ('user.name', 'u2')]" in users  # 2 h and 1 ms before: new
    assert {"[('host.name', 'db-01'), ('user.name', 'u5')]", "[('host.name', 'db-01'), ('user.name', 'u6')]"} <= users
    ips = by_rule["terms_user_ip"]
    assert sum("u3" in k for k in ips) == 1  # ::ffff:10.9.9.9 is 10.9.9.9
    # web-02: 6 in its minute against 1.2 a minute before; web-01: 4 at once with no baseline (a spike too)
    assert by_rule["spike_host"] == {"[('host.name', 'web-02')]", "[('host.name', 'web-01')]"}
    assert "[('host.name', 'app-01')]" in by_rule["silence_host"]
    # the outage left gaps that were filled on both sides (or are being filled in order)
    for store in (es_store, emb_store):
        ck = {r.doc["rule_id"]: r.doc for r in store.find("checkpoints")}
        assert all(ck[r.id]["end"] == iso(ticks[-1]) for r in rules if r.baseline is not None)
    # a backfill on each side adds nothing the cycles did not find
    for store, source in ((es_store, ctx.es), (emb_store, EmbeddedSource(embedded, {}))):
        det = Detector(ctx.settings, store, source, lambda _id: None)
        for rule in rules:
            det.backfill(rule, Window(t0 - 10, t0 + 300))
    assert _alerts(es_store, names) == _alerts(emb_store, names) == on_es
    emb_store.close()
    embedded.close()
