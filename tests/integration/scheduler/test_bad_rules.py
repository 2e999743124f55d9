"""Bad rules as a user writes them (Sigma files) on real Elasticsearch: the rule at fault fails alone, visibly.

A query Elasticsearch rejects disables its rule (shown by ``soar detect status``, counted in
the metrics) while the other rules keep running cycle after cycle; a search slower than
``detection_search_timeout`` is that rule's ``timeout`` error, retried next cycle.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

from soar import metrics_prom
from soar.clock import FakeClock
from soar.config import Settings
from soar.connections import elasticsearch_client
from soar.scheduler.alerting import alert_id_for_event
from soar.scheduler.cycle import Detector
from soar.scheduler.loading import load_scheduled_rules
from soar.scheduler.loop import MemoryLeases, Scheduler
from soar.scheduler.planning import iso
from soar.scheduler.rules import ScheduledRule
from soar.scheduler.state import CHECKPOINTS
from tests.integration.scheduler.conftest import Ctx, event, index_events, wait_for
from tests.integration.scheduler.test_cli import soar
from tests.integration.scheduler.test_kill import detection_env, scheduler_process
from tests.integration.scheduler.test_metrics import samples

SIGMA = """\
title: {title}
id: {rule_id}
status: test
level: medium
logsource: {{product: linux, category: process_creation}}
detection:
  sel:
    CommandLine|{modifier}: {values}
  condition: sel
soar: {{interval: 1s, lookback: 30s}}
"""


def sigma_rule(content: Path, name: str, rule_id: str, modifier: str, values: object) -> None:
    text = SIGMA.format(title=name, rule_id=rule_id, modifier=modifier, values=json.dumps(values))
    (content / "rules" / f"{name}.yml").write_text(text, encoding="utf-8")


def errors_metric(rule_id: str, kind: str) -> float:
    key = ("soar_detection_rule_errors_total", (("kind", kind), ("rule", rule_id)))
    return samples(metrics_prom.exposition().decode()).get(key, 0.0)


def gap_seconds_metric(rule_id: str) -> float:
    key = ("soar_detection_gap_seconds_total", (("rule", rule_id),))
    return samples(metrics_prom.exposition().decode()).get(key, 0.0)


def loaded(settings: Settings) -> list[ScheduledRule]:
    rules, errors = load_scheduled_rules(settings)
    assert not errors, [str(e) for e in errors]
    return rules


def status_rows(content: Path, index: str, **env: str) -> tuple[int, dict[str, dict[str, object]]]:
    out = soar(content, index, "detect", "status", "--json", **env)
    assert "Traceback" not in out.stderr, out.stderr
    return out.returncode, {str(r["rule_id"]): r for r in json.loads(out.stdout)}


def test_a_rule_elasticsearch_rejects_is_disabled_shown_and_counted_while_the_others_run(ctx: Ctx) -> None:
    es, events_index, det_settings, store, content, write_rule = ctx
    good = write_rule("good", interval="1s")
    rejected = "5f1c7d2e-0000-4000-8000-00000000bad1"
    # Valid Sigma and a regex soar accepts (under the default index.max_regex_length of 1000, which it refuses
    # at the rule's line), on a cluster whose events index allows less: only Elasticsearch can say no.
    es.indices.put_settings(index=events_index, settings={"index.max_regex_length": 100})
    sigma_rule(content, "long_regex", rejected, "re", "a" * 300)
    before = errors_metric(rejected, "rejected")
    now = time.time()
    index_events(es, events_index, [("r1", event(1, now - 3))])
    detector = Detector(det_settings, store, es, lambda _id: None)

    first = detector.run(loaded(det_settings), now)
    assert first.runs[good].alerts == 1
    error = first.runs[rejected].error
    assert error is not None and error.kind == "rejected" and error.disable
    assert errors_metric(rejected, "rejected") == before + 1

    # Later cycles: the good rule keeps alerting; the disabled rule is not searched again.
    for n, t in enumerate((now + 2, now + 4), start=2):
        index_events(es, events_index, [(f"r{n}", event(n, t - 1))])
        report = detector.run(loaded(det_settings), t)
        assert report.runs[good].alerts == 1 and report.runs[good].error is None
        assert rejected not in report.runs
    assert store.get("alerts", alert_id_for_event(good, events_index, "r3")) is not None
    assert errors_metric(rejected, "rejected") == before + 1  # counted once, when it was rejected

    code, rows = status_rows(content, events_index)
    assert code == 1  # a disabled rule makes status fail
    assert rows[good]["state"] == "ok" and rows[good]["errors"] == 0
    assert rows[rejected]["state"] == "disabled" and rows[rejected]["errors"] == 1
    reason = str(rows[rejected]["last_error"])
    assert reason.startswith("Elasticsearch rejected the query:") and "max_regex_length" in reason

    # A scheduler started afterwards (a restart: the error counter starts again from zero) shows the
    # disabled rule in its gauges at its first tick, from the stored checkpoint.
    restarted = Scheduler(det_settings, store, MemoryLeases(), lambda _ids: None, clock=FakeClock(now + 5))
    restarted.tick()
    assert disabled_gauges(rejected) == (1.0, 1.0)

    # Fixing the rule (its content changes) enables it again.
    sigma_rule(content, "long_regex", rejected, "contains", "soar-sched-marker")
    fixed = detector.run(loaded(det_settings), now + 6)
    assert fixed.runs[rejected].error is None and fixed.runs[rejected].alerts == 3
    ck = store.get(CHECKPOINTS, rejected)
    assert ck is not None and ck.doc["disabled"] is False and ck.doc["last_error"] is None
    restarted.tick()
    assert disabled_gauges(rejected) == (0.0, 0.0)


def disabled_gauges(rule_id: str) -> tuple[float, float]:
    """(soar_detection_rule_disabled for the rule, soar_detection_rules in state disabled)."""
    now = samples(metrics_prom.exposition().decode())
    return (
        now.get(("soar_detection_rule_disabled", (("rule", rule_id),)), -1.0),
        now.get(("soar_detection_rules", (("state", "disabled"),)), -1.0),
    )


DB_BAD = 5
NOISE = 100_000  # distinct command lines: each leading-wildcard term scans them all


def test_a_search_slower_than_the_search_timeout_is_that_rules_timeout_error(ctx: Ctx) -> None:
    es, events_index, det_settings, store, content, write_rule = ctx
    settings = det_settings.model_copy(update={"detection_search_timeout": 0.5})
    good = write_rule("good", interval="1s")
    slow = "5f1c7d2e-0000-4000-8000-0000000051a0"
    # 256 substrings, each scanning 100,000 distinct command lines: seconds of work, far past 0.5 s.
    # The node's query cache is off for this index, so a repeated search is as slow as the first.
    es.indices.close(index=events_index)
    es.indices.put_settings(index=events_index, settings={"index.queries.cache.enabled": False})
    es.indices.open(index=events_index, wait_for_active_shards=1)
    sigma_rule(content, "slow", slow, "contains", [f"{c}{d}" for c in "0123456789abcdef" for d in "0123456789abcdef"])
    now = time.time()
    rng = random.Random(7)
    kind = {"category": ["process"], "type": ["start"]}  # the rule's other conditions hold: no shortcut
    noise = [
        (f"n{i}", {"@timestamp": iso(now - 20), "event": kind, "process": {"command_line": f"{rng.getrandbits(64):x}"}})
        for i in range(NOISE)
    ]
    index_events(es, events_index, [*noise, ("t1", event(1, now - 3))], refresh=False)
    es.indices.refresh(index=events_index)
    before = errors_metric(slow, "timeout")
    detector = Detector(settings, store, es, lambda _id: None)

    report = detector.run(loaded(settings), now)
    assert report.runs[good].error is None and report.runs[good].alerts == 1  # the slow rule did not hold it back
    error = report.runs[slow].error
    assert error is not None and error.kind == "timeout" and not error.disable, error
    assert report.runs[slow].seconds >= 0.4  # its duration includes the search it timed out in
    assert errors_metric(slow, "timeout") == before + 1
    ck = store.get(CHECKPOINTS, slow)
    assert ck is not None and ck.doc["error_kind"] == "timeout" and "end" not in ck.doc  # its window is searched again

    again = detector.run(loaded(settings), now + 2)
    assert again.runs[slow].error is not None and again.runs[slow].error.kind == "timeout"  # not disabled: retried

    code, rows = status_rows(content, events_index, SOAR_DETECTION_SEARCH_TIMEOUT="0.5")
    assert code == 1
    assert rows[good]["state"] == "ok"
    assert rows[slow]["state"] == "error" and rows[slow]["errors"] == 2
    assert float(str(rows[slow]["duration_ms"])) >= 400  # the slow rule shows as slow
    assert "timed out" in str(rows[slow]["last_error"])


def test_an_outage_is_one_open_gap_in_status_however_many_cycles_fail_and_none_once_filled(ctx: Ctx) -> None:
    es, events_index, det_settings, store, content, write_rule = ctx
    rule_id = write_rule(interval="1s", lookback="2s")
    t0 = time.time() - 600
    Detector(det_settings, store, es, lambda _id: None).run(loaded(det_settings), t0)
    index_events(es, events_index, [(f"o{i}", event(i, t0 + 60 * i)) for i in range(1, 9)])
    before = gap_seconds_metric(rule_id)
    down = elasticsearch_client(det_settings.model_copy(update={"elasticsearch_url": "http://127.0.0.1:9"}))
    for late in (t0 + 600, t0 + 602, t0 + 604):  # Elasticsearch stays unreachable for three cycles
        report = Detector(det_settings, store, down, lambda _id: None).run(loaded(det_settings), late)
        error = report.runs[rule_id].error
        assert error is not None and error.kind == "unavailable"

    code, rows = status_rows(content, events_index)
    row = rows[rule_id]
    assert code == 1 and row["state"] == "error" and "not reachable" in str(row["last_error"])
    assert row["open_gaps"] == 1  # one outage, one gap: later cycles extend it
    assert 600 < float(str(row["gap_seconds"])) < 610  # the missed stretch and its look-back
    assert 600 < gap_seconds_metric(rule_id) - before < 610  # counted once, not once per failed cycle

    Detector(det_settings, store, es, lambda _id: None).run(loaded(det_settings), t0 + 605)
    code, rows = status_rows(content, events_index)
    assert code == 0 and rows[rule_id]["state"] == "ok" and rows[rule_id]["open_gaps"] == 0
    alerted = sorted(e for r in store.find("alerts", limit=100) for e in r.doc["event_ids"])
    assert alerted == [f"o{i}" for i in range(1, 9)]


def test_a_scheduler_process_keeps_running_past_bad_rules(ctx: Ctx) -> None:
    es, events_index, _, store, content, write_rule = ctx
    good = write_rule("good", interval="1s")
    write_rule("missing", interval="1s", index=f"{events_index}-nope")
    write_rule("invalid", every="5s")
    es.indices.put_settings(index=events_index, settings={"index.max_regex_length": 100})  # stricter than soar's
    sigma_rule(content, "long_regex", "5f1c7d2e-0000-4000-8000-00000000bad2", "re", "b" * 300)
    index_events(es, events_index, [("k1", event(1, time.time() - 1))])
    env = detection_env(content, events_index, DB_BAD) | {"SOAR_CELERY_EAGER": "true"}
    log = content / "scheduler.log"
    with scheduler_process(env, log) as sched:
        assert wait_for(lambda: store.count("alerts") == 1, 30), log.read_text()[-2000:]
        index_events(es, events_index, [("k2", event(2, time.time()))])
        assert wait_for(lambda: store.count("alerts") == 2, 30), log.read_text()[-2000:]
        assert sched.poll() is None  # still running, cycle after cycle
        code, rows = status_rows(content, events_index)
    states = sorted(str(r["state"]) for r in rows.values())
    assert code == 1 and states == ["disabled", "error", "invalid", "ok"], rows
    assert rows[good]["alerts"] is not None and "Traceback" not in log.read_text()
