"""soar's own rule types on Elasticsearch: first-seen values, spikes and silent hosts, once each, across restarts."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from soar.scheduler import baselines
from soar.scheduler.cycle import Detector
from soar.scheduler.loading import load_scheduled_rules
from soar.scheduler.planning import Window
from soar.scheduler.rules import ScheduledRule
from soar.scheduler.service import status
from soar.scheduler.state import GAPS
from tests.integration.scheduler.conftest import Ctx, event, index_events

HEAD = """\
soar_rule: {kind}
title: {kind} of marker processes
id: {id}
status: test
level: medium
logsource: {{product: linux, category: process_creation}}
detection:
  sel: {{CommandLine|contains: 'soar-sched-marker'}}
  condition: sel
soar:
  interval: 1s
  lookback: 30s
"""

NEW_TERMS = "new_terms:\n  fields: [user.name, host.name]\n  history: 2h\n"
SPIKE = "spike:\n  by: [host.name]\n  window: 1m\n  baseline: 10m\n  ratio: 3\n  min_count: 5\n"
SILENCE = "silence:\n  window: 1m\n  min_count: 1\n  seen_within: 10m\n"


def write(content: Path, kind: str, body: str, name: str | None = None) -> str:
    rule_id = str(uuid.uuid4())
    path = content / "rules" / f"{name or kind}.soar.yml"
    path.write_text(HEAD.format(kind=kind, id=rule_id) + body, encoding="utf-8")
    return rule_id


def loaded(ctx: Ctx, rule_id: str) -> list[ScheduledRule]:
    rules, errors = load_scheduled_rules(ctx.settings)
    assert not errors, [str(e) for e in errors]
    assert any(r.id == rule_id and r.baseline is not None for r in rules)
    return rules


def alerts(ctx: Ctx, rule_id: str) -> list[dict[str, Any]]:
    return [r.doc for r in ctx.store.find("alerts", {"rule.id": rule_id}, limit=1000)]


def fresh(ctx: Ctx) -> Detector:
    """A detector as a restarted process has it: nothing cached."""
    baselines.forget_process_state()
    return Detector(ctx.settings, ctx.store, ctx.es, lambda _id: None)


def test_new_terms_alerts_once_per_first_sighting_across_restarts(ctx: Ctx) -> None:
    rule_id = write(ctx.content, "new_terms", NEW_TERMS)
    rules = loaded(ctx, rule_id)
    now = time.time()
    index_events(
        ctx.es,
        ctx.index,
        [
            ("h1", event(1, now - 3600, user="alice")),  # history: alice on web-01 an hour ago
            ("h2", event(2, now - 3 * 3600, user="bob")),  # bob three hours ago: outside the 2 h history
            ("n1", event(3, now - 10, user="alice")),
            ("n2", event(4, now - 9, user="bob")),
            ("n3", event(5, now - 8, user="carol")),
            ("n4", event(6, now - 7, user="carol")),
        ],
    )
    report = fresh(ctx).run(rules, now)
    run = report.runs[rule_id]
    assert run.error is None and run.alerts == 2, run
    found = {a["group"]["key"]["user.name"]: a for a in alerts(ctx, rule_id)}
    assert set(found) == {"bob", "carol"}
    assert found["carol"]["event_ids"] == ["n3"]  # the first sighting, not the second
    assert found["carol"]["user"] == {"name": "carol"} and found["carol"]["host"] == {"name": "web-01"}
    state = ctx.store.find(baselines.STATE)[0].doc
    assert state["built"] and state["terms"] == 1  # alice (bob's old sighting is outside the history)

    # the overlapping window again, then a restarted process: nothing twice
    assert fresh(ctx).run(rules, now + 2).runs[rule_id].alerts == 0
    assert Detector(ctx.settings, ctx.store, ctx.es, lambda _id: None).run(rules, now + 4).runs[rule_id].alerts == 0
    assert len(alerts(ctx, rule_id)) == 2

    # a new user later; the history is not built again
    index_events(ctx.es, ctx.index, [("n5", event(7, now + 5, user="dave")), ("n6", event(8, now + 5, user="bob"))])
    assert fresh(ctx).run(rules, now + 8).runs[rule_id].alerts == 1
    assert {a["group"]["key"]["user.name"] for a in alerts(ctx, rule_id)} == {"bob", "carol", "dave"}
    assert ctx.store.count(baselines.STATE) == 1
    row = next(r for r in status(ctx.settings, ctx.store) if r.rule_id == rule_id)
    assert row.state == "ok" and row.last_run is not None


def test_new_terms_gap_and_backfill_stay_exact(ctx: Ctx) -> None:
    rule_id = write(ctx.content, "new_terms", NEW_TERMS)
    rules = loaded(ctx, rule_id)
    now = time.time()
    index_events(ctx.es, ctx.index, [("h1", event(1, now - 1800, user="alice"))])
    det = fresh(ctx)
    det.run(rules, now)
    # an outage of ten minutes: erin appears during it, and again after it
    index_events(
        ctx.es,
        ctx.index,
        [("g1", event(2, now + 300, user="erin")), ("g2", event(3, now + 595, user="erin"))],
    )
    report = fresh(ctx).run(rules, now + 600)
    assert report.runs[rule_id].gap is not None
    # filled in the same or a following cycle: erin alerted once, at her first sighting (inside the gap)
    fresh(ctx).run(rules, now + 602)
    found = alerts(ctx, rule_id)
    assert [a["group"]["key"]["user.name"] for a in found] == ["erin"] and found[0]["event_ids"] == ["g1"]
    assert not ctx.store.find(GAPS, {"status": "open"})
    # a backfill over the same time finds the same first sighting: nothing new
    rule = next(r for r in rules if r.id == rule_id)
    fresh(ctx).backfill(rule, Window(now - 600, now + 610))
    assert len(alerts(ctx, rule_id)) == 1
    # one reaching back to alice's sighting before the rule ran: that was a first sighting too
    fresh(ctx).backfill(rule, Window(now - 3600, now - 600))
    assert sorted(a["group"]["key"]["user.name"] for a in alerts(ctx, rule_id)) == ["alice", "erin"]


def test_spike_alerts_once_per_group_and_bucket(ctx: Ctx) -> None:
    rule_id = write(ctx.content, "spike", SPIKE)
    rules = loaded(ctx, rule_id)
    b = (time.time() // 60) * 60 - 60  # the last complete minute
    docs = [(f"base{i}", event(i, b - 600 + i * 60, host="web-01")) for i in range(10)]  # 1 a minute before
    docs += [(f"db{i}", event(100 + i, b - 600 + i * 60, host="db-01")) for i in range(10)]
    docs += [(f"s{i}", event(200 + i, b + 1 + i, host="web-01")) for i in range(6)]  # 6 in the minute: 6x
    docs += [(f"d{i}", event(300 + i, b + 1 + i, host="db-01")) for i in range(2)]  # 2: under min_count
    index_events(ctx.es, ctx.index, docs)
    now = b + 60.5
    report = fresh(ctx).run(rules, now)
    assert report.runs[rule_id].error is None and report.runs[rule_id].alerts == 1
    found = alerts(ctx, rule_id)[0]
    assert found["group"]["key"] == {"host.name": "web-01"} and found["group"]["count"] == 6
    assert found["group"]["baseline_count"] == 10 and found["host"] == {"name": "web-01"}
    assert fresh(ctx).run(rules, now + 5).runs[rule_id].alerts == 0
    assert len(alerts(ctx, rule_id)) == 1


def test_silence_alerts_once_per_episode_and_spares_isolated_hosts(ctx: Ctx) -> None:
    inventory = ctx.content / "inventory.yml"
    inventory.write_text(
        "hosts:\n"
        "  web-01: {address: 10.0.0.1}\n"
        "  db-01: {address: 10.0.0.2}\n"
        "  never-01: {address: 10.0.0.3}\n"
        "  isolated-01: {address: 10.0.0.4}\n",
        encoding="utf-8",
    )
    rule_id = write(ctx.content, "silence", SILENCE)
    rules = loaded(ctx, rule_id)
    ctx.store.put(
        "containments",
        "c1",
        {"state": "in_force", "action": "hosts.isolate_host", "host": "isolated-01"},
    )
    b = (time.time() // 60) * 60 - 120
    docs = [(f"w{i}", event(i, b + i * 30, host="web-01")) for i in range(6)]  # reports every minute
    docs += [("d0", event(10, b - 300, host="db-01")), ("d1", event(11, b + 5, host="db-01"))]  # stops after b
    docs += [("x0", event(20, b - 300, host="laptop-9"))]  # not in the inventory, seen 5 min before: expected
    index_events(ctx.es, ctx.index, docs)
    now = b + 120.5
    report = fresh(ctx).run(rules, now)
    assert report.runs[rule_id].error is None
    found = {a["group"]["key"]["host.name"]: a for a in alerts(ctx, rule_id)}
    assert set(found) == {"db-01", "never-01", "laptop-9"}, found.keys()  # isolated-01 is quiet on purpose
    assert found["never-01"]["group"]["in_inventory"] and found["never-01"]["group"]["events_before"] == 0
    assert found["db-01"]["group"]["window_start"].startswith(time.strftime("%Y-%m-%dT%H:%M", time.gmtime(b + 60)))
    # later buckets of the same silence extend the episode: no new alert
    assert fresh(ctx).run(rules, now + 60).runs[rule_id].alerts == 0
    assert len(alerts(ctx, rule_id)) == 3


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("new_terms:\n  fields: [user.name]\n  history: 1h\n", "new_terms.history: must be at least 2h"),
        ("new_terms:\n  fields: []\n  history: 1d\n", "new_terms.fields: expected one ECS field name"),
        ("spike:\n  by: host.name\n  window: 1m\n  baseline: 10m\n  ratio: x\n", "spike.ratio: expected a number"),
        ("silence:\n  window: 1m\n  min_count: 0\n", "silence.min_count: expected an integer of at least 1"),
    ],
)
def test_bad_soar_rules_are_reported_at_file_line(ctx: Ctx, body: str, message: str) -> None:
    kind = body.split(":")[0]
    write(ctx.content, kind, body)
    _, errors = load_scheduled_rules(ctx.settings)
    assert len(errors) == 1 and message in str(errors[0])
    where = str(errors[0].source)
    line = int(where.split(":")[1])
    text = (ctx.content / "rules" / f"{kind}.soar.yml").read_text().splitlines()
    assert message.split(":")[0].split(".")[-1] in text[line - 1] or kind in text[line - 1]


def test_exceptions_and_suppression_apply_to_baseline_rules(ctx: Ctx) -> None:
    terms = write(ctx.content, "new_terms", NEW_TERMS + "  \n", name="terms")
    text = (ctx.content / "rules" / "terms.soar.yml").read_text()
    (ctx.content / "rules" / "terms.soar.yml").write_text(
        text.replace("  lookback: 30s\n", "  lookback: 30s\n  suppress: {by: [host.name], window: 1h}\n")
    )
    silence = write(ctx.content, "silence", SILENCE.replace("seen_within: 10m", "seen_within: 10m\n  inventory: false"))
    rules, errors = load_scheduled_rules(ctx.settings)
    assert not errors, [str(e) for e in errors]
    ctx.store.put(
        "exceptions", "e1", {"status": "approved", "rule_id": terms, "field": "user.name", "values": ["Carol"]}
    )
    ctx.store.put(
        "exceptions", "e2", {"status": "approved", "rule_id": silence, "field": "host.name", "values": ["db-*"]}
    )
    b = (time.time() // 60) * 60 - 60
    index_events(
        ctx.es,
        ctx.index,
        [
            ("a", event(1, b + 41, user="bob")),
            ("c", event(2, b + 42, user="carol")),  # excepted (case-insensitive, as Sigma values)
            ("d", event(3, b + 43, user="dave")),
            ("x", event(4, b - 120, host="db-01")),  # silent in the bucket, but excepted
            ("y", event(5, b - 120, host="app-01")),  # silent in the bucket
        ],
    )
    report = fresh(ctx).run(rules, b + 60.5)
    assert report.runs[terms].error is None and report.runs[silence].error is None
    (grouped,) = alerts(ctx, terms)  # bob's and dave's first sightings, suppressed into one alert per host
    assert grouped["group"]["key"] == {"host.name": "web-01"} and sorted(grouped["event_ids"]) == ["a", "d"]
    assert [a["group"]["key"] for a in alerts(ctx, silence)] == [{"host.name": "app-01"}]
    assert fresh(ctx).run(rules, b + 62).runs[terms].alerts == 0
    assert alerts(ctx, terms)[0]["suppressed_count"] == 1


def test_new_terms_on_the_elasticsearch_store(ctx: Ctx) -> None:
    from soar.store.elastic import ElasticsearchStore

    rule_id = write(ctx.content, "new_terms", NEW_TERMS)
    rules = loaded(ctx, rule_id)
    store = ElasticsearchStore(ctx.es, f"soar-test-{uuid.uuid4().hex[:8]}")
    now = time.time()
    index_events(ctx.es, ctx.index, [("h", event(1, now - 3600, user="alice")), ("n", event(2, now - 5, user="bob"))])
    index_events(ctx.es, ctx.index, [("k", event(3, now - 4, user="alice"))])
    for tick in (now, now + 2):
        baselines.forget_process_state()
        Detector(ctx.settings, store, ctx.es, lambda _id: None).run(rules, tick)
    found = [r.doc for r in store.find("alerts", {"rule.id": rule_id})]
    assert [a["group"]["key"]["user.name"] for a in found] == ["bob"]
    assert store.count(baselines.TERMS) == 2 and store.count(baselines.STATE) == 1


def test_a_run_killed_between_claim_and_alert_is_completed_once(ctx: Ctx, monkeypatch: pytest.MonkeyPatch) -> None:
    rule_id = write(ctx.content, "new_terms", NEW_TERMS)
    rules = loaded(ctx, rule_id)
    now = time.time()
    index_events(ctx.es, ctx.index, [("n", event(1, now - 5, user="frank")), ("m", event(2, now - 4, user="grace"))])
    det = fresh(ctx)

    def killed(*_args: Any, **_kw: Any) -> None:
        raise SystemExit("killed after the claims, before the alerts")

    monkeypatch.setattr(det, "_commit", killed)
    with pytest.raises(SystemExit):
        det.run(rules, now)
    claims = [r.doc["alerted"] for r in ctx.store.find(baselines.TERMS, limit=100) if r.doc.get("alerted")]
    assert len(claims) == 2 and not alerts(ctx, rule_id)  # claimed, never written, checkpoint not moved
    for tick in (now + 1, now + 2):
        fresh(ctx).run(rules, tick)
    assert sorted(a["group"]["key"]["user.name"] for a in alerts(ctx, rule_id)) == ["frank", "grace"]
    ids = {a["id"] for a in alerts(ctx, rule_id)}
    assert ids == {c[0]["alert_id"] for c in claims}  # written under the ids claimed


def test_after_a_restart_known_combinations_are_known_from_the_store_not_searched_again(
    ctx: Ctx, monkeypatch: pytest.MonkeyPatch
) -> None:
    from soar.scheduler.aggregations import ElasticsearchAggregator

    confirmed: list[str] = []
    real = ElasticsearchAggregator.firsts

    def spy(self: ElasticsearchAggregator, asks: Any, *args: Any) -> Any:
        confirmed.extend(a.key[0] for a in asks)
        return real(self, asks, *args)

    monkeypatch.setattr(ElasticsearchAggregator, "firsts", spy)
    rule_id = write(ctx.content, "new_terms", NEW_TERMS)
    rules = loaded(ctx, rule_id)
    now = time.time()
    index_events(ctx.es, ctx.index, [("h", event(1, now - 3600, user="alice"))])
    first = fresh(ctx).run(rules, now)
    assert first.requests.msearch == 1  # the history and the window, in one _msearch
    index_events(ctx.es, ctx.index, [("k", event(2, now + 1, user="alice")), ("n", event(3, now + 1, user="zoe"))])
    report = fresh(ctx).run(rules, now + 2)  # a restarted process: its cache is empty, the store is not
    assert report.runs[rule_id].alerts == 1 and alerts(ctx, rule_id)[0]["group"]["key"]["user.name"] == "zoe"
    # the window's aggregation, and one confirmation search for zoe only (alice's marks came from the store)
    assert report.requests.msearch == 2 and confirmed == ["zoe"]
    (doc,) = [r.doc for r in ctx.store.find(baselines.TERMS, {"rule_id": rule_id}) if r.doc["key"][0] == "alice"]
    assert abs(doc["marks"][0] - (now - 3600) * 1000) < 1  # the sighting the history build found
