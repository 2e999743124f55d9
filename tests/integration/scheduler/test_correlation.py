"""Correlation rules run in the same cycle and alert once per burst, however often their window is searched."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from soar.scheduler.cycle import Detector
from soar.scheduler.loading import load_scheduled_rules
from soar.scheduler.planning import iso
from soar.store.sqlite import SQLiteStore
from tests.integration.scheduler.conftest import Ctx, event, index_events
from tests.integration.scheduler.test_cli import soar, soar_in_process

CORRELATION = """\
title: Burst of marker processes on one host
id: {id}
status: test
level: critical
correlation:
  type: event_count
  rules: [{base}]
  group-by: [host.name]
  timespan: 1m
  condition: {{gte: 3}}
soar:
  interval: 1s
  lookback: 30s
"""


def test_correlation_alerts_once_per_group_and_burst(ctx: Ctx) -> None:
    es, events_index, det_settings, store, content, write_rule = ctx
    base = write_rule("base", interval="1s")
    corr_id = str(uuid.uuid4())
    (content / "rules" / "burst.yml").write_text(CORRELATION.format(id=corr_id, base=base), encoding="utf-8")
    rules, errors = load_scheduled_rules(det_settings)
    assert not errors, [str(e) for e in errors]
    by_id = {r.id: r for r in rules}
    assert by_id[corr_id].correlation is not None
    assert by_id[base].enabled is False  # generate: false (the default) keeps the base rule quiet

    now = time.time()
    docs = [(f"w{i}", event(i, now - 20 + i, host="web-01")) for i in range(4)]
    docs += [(f"d{i}", event(10 + i, now - 20 + i, host="db-01")) for i in range(2)]
    index_events(es, events_index, docs)
    detector = Detector(det_settings, store, es, lambda _id: None)
    report = detector.run(rules, now)
    run = report.runs[corr_id]
    assert run.error is None and run.hits >= 4 and run.alerts == 1  # the engine may prefilter groups below 3
    alert = store.find("alerts")[0].doc
    assert alert["rule"]["id"] == corr_id and alert["severity"] == "critical"
    assert alert["group"]["key"] == {"host.name": "web-01"} and alert["host"] == {"name": "web-01"}
    assert sorted(alert["event_ids"]) == ["w0", "w1", "w2", "w3"]  # the burst, not the other host
    # Searched again with an overlapping window that starts later: the same burst is not raised twice.
    again = detector.run(rules, now + 2)
    assert again.runs[corr_id].alerts == 0 and store.count("alerts") == 1


def test_a_correlation_over_no_index_fails_alone(ctx: Ctx) -> None:
    es, events_index, det_settings, store, content, write_rule = ctx
    base = write_rule("base", interval="1s", index=f"{events_index}-nothing-*")
    plain = write_rule("plain", interval="1s")
    corr_id = str(uuid.uuid4())
    text = CORRELATION.format(id=corr_id, base=base).replace(
        "  lookback: 30s\n", f"  lookback: 30s\n  index: {events_index}-nothing-*\n"
    )
    (content / "rules" / "burst.yml").write_text(text, encoding="utf-8")
    rules, errors = load_scheduled_rules(det_settings)
    assert not errors
    now = time.time()
    index_events(es, events_index, [("p1", event(1, now - 2))])
    report = Detector(det_settings, store, es, lambda _id: None).run(rules, now)
    assert report.runs[plain].alerts == 1 and report.runs[plain].error is None
    assert report.runs[corr_id].alerts == 0  # nothing to correlate; an error, if any, stays with this rule


VALUE_COUNT = """\
title: Many users on one host
id: {id}
status: test
level: high
correlation:
  type: value_count
  rules: [{base}]
  group-by: [host.name]
  timespan: 1m
  condition: {{field: user.name, gte: 3}}
soar:
  interval: 1s
  lookback: 30s
"""


def _write(content: Path, name: str, template: str, base: str) -> str:
    rule_id = str(uuid.uuid4())
    (content / "rules" / f"{name}.yml").write_text(template.format(id=rule_id, base=base), encoding="utf-8")
    return rule_id


def test_correlations_search_in_the_cycles_msearch_and_page_with_the_others(ctx: Ctx) -> None:
    es, events_index, det_settings, store, content, write_rule = ctx
    base = write_rule("base", interval="1s")
    plain = [write_rule(f"plain{i}", interval="1s", marker=f"plain-{i}") for i in range(3)]
    burst = _write(content, "burst", CORRELATION, base)
    users = _write(content, "users", VALUE_COUNT, base)
    rules, errors = load_scheduled_rules(det_settings)
    assert not errors, [str(e) for e in errors]
    now = time.time()
    docs = [(f"w{i}", event(i, now - 25 + i, host="web-01", user=f"u{i % 4}")) for i in range(23)]
    docs += [(f"p{i}", event(i, now - 5, marker=f"plain-{i}")) for i in range(3)]
    index_events(es, events_index, docs)

    # One page holds everything: the whole cycle (3 rules, 2 correlations) is one request.
    report = Detector(det_settings, store, es, lambda _id: None).run(rules, now)
    assert (report.requests.msearch, report.requests.search, report.requests.pit) == (1, 0, 0)
    assert [report.runs[p].alerts for p in plain] == [1, 1, 1]
    assert report.runs[burst].alerts == 1 and report.runs[users].alerts == 1
    alert = store.find("alerts", {"rule.id": burst})[0].doc
    assert sorted(alert["event_ids"]) == sorted(f"w{i}" for i in range(23))

    # Pages of 5: the combined search is paged in a point in time, still no search of the correlations' own.
    small = det_settings.model_copy(update={"detection_page_size": 5})
    fresh = SQLiteStore(content / "state" / "fresh.sqlite3")
    try:
        paged = Detector(small, fresh, es, lambda _id: None).run(rules, now)
        hits = 23 * 2 + 3  # each burst event matches both correlations' clauses, once per hit
        assert paged.requests.msearch == 1 and paged.requests.pit == 2  # open and close
        assert paged.requests.search == -(-(23 + 3) // 5)  # the 26 distinct events, five a page
        assert paged.runs[burst].hits + paged.runs[users].hits + sum(paged.runs[p].hits for p in plain) == hits
        again = fresh.find("alerts", {"rule.id": burst})[0].doc
        assert sorted(again["event_ids"]) == sorted(alert["event_ids"])  # complete beyond one page
        assert fresh.count("alerts") == store.count("alerts") == 5
    finally:
        fresh.close()


def test_a_late_correlation_records_its_gap_and_fills_it_in_the_same_request(ctx: Ctx) -> None:
    es, events_index, det_settings, store, content, write_rule = ctx
    base = write_rule("base", interval="1s")
    corr_id = _write(content, "burst", CORRELATION, base)
    rules, _ = load_scheduled_rules(det_settings)
    now = time.time()
    detector = Detector(det_settings, store, es, lambda _id: None)
    detector.run(rules, now - 600)  # the last run before an outage
    index_events(es, events_index, [(f"g{i}", event(i, now - 300 + i, host="db-01")) for i in range(4)])

    report = detector.run(rules, now)
    run = report.runs[corr_id]
    assert run.gap is not None and run.gap.start <= now - 600 and run.gap.end >= now - 300
    assert report.requests.total == 1  # the window and the gap chunk, in the one _msearch
    gaps = store.find("gaps", {"rule_id": corr_id})
    assert [g.doc["status"] for g in gaps] == ["filled"]
    alerts = store.find("alerts", {"rule.id": corr_id})
    assert [sorted(a.doc["event_ids"]) for a in alerts] == [["g0", "g1", "g2", "g3"]]
    assert run.alerts == 1 and detector.run(rules, now + 1).runs[corr_id].alerts == 0


def test_backfill_of_a_correlation_alerts_once_however_the_range_is_cut(
    ctx: Ctx, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    es, events_index, _, store, content, write_rule = ctx
    base = write_rule("base", interval="1s")
    corr_id = _write(content, "burst", CORRELATION, base)
    t0 = float(int(time.time()) - 7200)
    # Every 10 s for 2 minutes: from t0 the sliding windows give two matches ([t0, t0+60], [t0+70, t0+110]).
    index_events(es, events_index, [(f"s{i}", event(i, t0 + 10 * i, host="app-01")) for i in range(12)])
    full = ("detect", "backfill", "--rule", corr_id, "--from", iso(t0 - 1), "--to", iso(t0 + 3600))
    first = soar(content, events_index, *full)
    assert first.returncode == 0, first.stderr
    assert "12 hits, 2 new alerts" in first.stdout

    def run(*argv: str) -> tuple[int, str, str]:
        return soar_in_process(monkeypatch, capsys, content, events_index, *argv)

    code, out, _ = run(*full)
    assert code == 0 and "12 hits, 0 new alerts" in out
    # Cut at t0+90: the widened search starts at t0+30 and slides into [t0+30, t0+90], which overlaps both.
    code, out, _ = run("detect", "backfill", "--rule", corr_id, "--from", iso(t0 + 90), "--to", iso(t0 + 1800))
    assert code == 0 and "0 new alerts" in out
    alerts = sorted(store.find("alerts", {"rule.id": corr_id}), key=lambda r: r.doc["first_event_time"])
    assert [(a.doc["first_event_time"], a.doc["last_event_time"]) for a in alerts] == [
        (iso(t0), iso(t0 + 60)),
        (iso(t0 + 70), iso(t0 + 110)),
    ]


# Over the burst correlation: a host with a burst twice in ten minutes.
CHAINED = CORRELATION.replace("timespan: 1m", "timespan: 10m").replace("gte: 3", "gte: 2")


def test_a_chained_correlation_runs_in_the_cycle_through_the_engine(ctx: Ctx) -> None:
    es, events_index, det_settings, store, content, write_rule = ctx
    base = write_rule("base", interval="1s")
    inner = _write(content, "burst", CORRELATION, base)
    outer = _write(content, "twice", CHAINED, inner)
    rules, errors = load_scheduled_rules(det_settings)
    assert not errors, [str(e) for e in errors]
    assert {r.id: r.enabled for r in rules if r.id in (base, inner)} == {base: False, inner: False}
    now = time.time()
    docs = [(f"x{i}", event(i, now - 200 + i, host="web-01")) for i in range(3)]
    docs += [(f"y{i}", event(i, now - 20 + i, host="web-01")) for i in range(3)]
    docs += [(f"z{i}", event(i, now - 20 + i, host="db-01")) for i in range(3)]  # one burst only
    index_events(es, events_index, docs)
    report = Detector(det_settings, store, es, lambda _id: None).run(rules, now)  # widened by the chain's reach
    assert report.runs[outer].error is None and report.runs[outer].alerts == 1
    [alert] = [r.doc for r in store.find("alerts")]
    assert alert["rule"]["id"] == outer and alert["host"] == {"name": "web-01"}
    assert sorted(alert["event_ids"]) == ["x0", "x1", "x2", "y0", "y1", "y2"]
