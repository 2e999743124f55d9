"""One detection cycle on real Elasticsearch: windows, exactly-once alerts, paging, noise control, errors."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from elasticsearch import Elasticsearch

from soar.config import Settings
from soar.connections import elasticsearch_client
from soar.detection.elastic import create_events_index
from soar.scheduler.alerting import alert_id_for_event
from soar.scheduler.cycle import Detector
from soar.scheduler.loading import load_scheduled_rules
from soar.scheduler.planning import iso, parse_time
from soar.scheduler.rules import ScheduledRule
from soar.scheduler.state import CHECKPOINTS, GAPS
from soar.store.sqlite import SQLiteStore
from tests.integration.scheduler.conftest import event, index_events
from tests.integration.scheduler.proxy import NoPointInTimeProxy


def rules_of(settings: Settings) -> list[ScheduledRule]:
    rules, errors = load_scheduled_rules(settings)
    assert not errors, [str(e) for e in errors]
    return rules


def test_cycle_alerts_once_per_event_and_persists_the_checkpoint(
    es: Elasticsearch, events_index: str, det_settings: Settings, store: SQLiteStore, write_rule: Callable[..., str]
) -> None:
    rule_id = write_rule(interval="1s")
    now = time.time()
    docs = [(f"e{i}", event(i, now - 10 + i)) for i in range(5)] + [("other", event(9, now - 5, marker="benign"))]
    index_events(es, events_index, docs)
    sent: list[str] = []
    detector = Detector(det_settings, store, es, sent.append)

    report = detector.run(rules_of(det_settings), now)
    assert report.runs[rule_id].error is None
    assert report.runs[rule_id].hits == 5
    expected = {alert_id_for_event(rule_id, events_index, f"e{i}") for i in range(5)}
    assert set(report.created) == expected and sorted(sent) == sorted(expected)
    assert report.requests.msearch == 1 and report.requests.total == 1

    alert = store.get("alerts", alert_id_for_event(rule_id, events_index, "e0"))
    assert alert is not None
    assert alert.doc["rule"]["id"] == rule_id and alert.doc["severity"] == "high" and alert.doc["risk_score"] == 73
    assert alert.doc["host"] == {"name": "web-01"} and alert.doc["user"] == {"name": "alice"}
    assert alert.doc["event_ids"] == ["e0"] and alert.doc["dispatched"] is True
    assert alert.doc["first_event_time"] == docs[0][1]["@timestamp"]
    # ECS-style: the rule's title and tags, source.ip, the matched event, the fingerprint id, detection time.
    assert alert.doc["rule"]["title"] == "Marker process started" and "attack.t1059.004" in alert.doc["rule"]["tags"]
    assert alert.doc["source"] == {"ip": "10.1.2.3"} and alert.doc["events"][0]["_id"] == "e0"
    detected = parse_time(alert.doc["@timestamp"])
    assert alert.id == alert.doc["id"] and detected is not None and now <= detected <= time.time()

    # The same window again (overlap, a retry, a redelivered task): nothing new, nothing handed off twice.
    again = detector.run(rules_of(det_settings), now + 1.5)
    assert again.runs[rule_id].hits == 5 and again.created == []
    assert store.count("alerts") == 5 and len(sent) == 5
    ck = store.get(CHECKPOINTS, rule_id)
    assert ck is not None and ck.doc["end"] is not None and ck.doc["runs_total"] == 2 and ck.doc["alerts_total"] == 5


def test_results_beyond_a_page_are_paged_with_a_point_in_time(
    es: Elasticsearch, events_index: str, det_settings: Settings, store: SQLiteStore, write_rule: Callable[..., str]
) -> None:
    settings = det_settings.model_copy(update={"detection_page_size": 1000})
    rule_id = write_rule(interval="1s", lookback="5m", suppress={"by": ["host.name"], "window": "1h"})
    now = time.time()
    n = 10_500  # more than Elasticsearch's 10,000 result window
    index_events(es, events_index, [(f"p{i}", event(i, now - 200 + i / 100, host=f"h{i % 3}")) for i in range(n)])
    report = Detector(settings, store, es, lambda _id: None).run(rules_of(settings), now)
    run = report.runs[rule_id]
    assert run.error is None and run.hits == n and run.capped == 0
    assert report.requests.pit >= 2  # opened and closed
    alerts = [r.doc for r in store.find("alerts", limit=100)]
    # One alert per host per suppression window; every event counted once across them.
    assert sum(a["suppressed_count"] + 1 for a in alerts) == n
    assert {a["group"]["key"]["host.name"] for a in alerts} == {"h0", "h1", "h2"}


def test_cap_on_alerts_per_run_is_reported(
    es: Elasticsearch, events_index: str, det_settings: Settings, store: SQLiteStore, write_rule: Callable[..., str]
) -> None:
    rule_id = write_rule(interval="1s", max_alerts=3)
    now = time.time()
    index_events(es, events_index, [(f"c{i}", event(i, now - 5)) for i in range(8)])
    report = Detector(det_settings, store, es, lambda _id: None).run(rules_of(det_settings), now)
    assert report.runs[rule_id].alerts == 3 and report.runs[rule_id].capped == 5
    assert store.get(CHECKPOINTS, rule_id).doc["last_capped"] == 5  # type: ignore[union-attr]


def test_exceptions_apply_inside_the_query(
    es: Elasticsearch, events_index: str, det_settings: Settings, store: SQLiteStore, write_rule: Callable[..., str]
) -> None:
    rule_id = write_rule(interval="1s")
    now = time.time()
    index_events(
        es,
        events_index,
        [
            ("in-cidr", event(1, now - 5, ip="192.168.7.20")),
            ("glob-user", event(2, now - 5, user="svc-backup")),
            ("exact-host", event(3, now - 5, host="build-07")),
            ("kept", event(4, now - 5, ip="10.9.9.9", user="bob", host="db-01")),
        ],
    )
    store.put(
        "exceptions",
        "x1",
        {"status": "approved", "rule_id": rule_id, "field": "source.ip", "values": ["192.168.0.0/16"]},
    )
    store.put("exceptions", "x2", {"status": "approved", "rule_id": None, "field": "user.name", "values": ["svc-*"]})
    store.put(
        "exceptions", "x3", {"status": "approved", "rule_ids": [rule_id], "field": "host.name", "values": ["BUILD-07"]}
    )
    store.put("exceptions", "x4", {"status": "proposed", "rule_id": rule_id, "field": "host.name", "values": ["db-01"]})
    store.put(
        "exceptions", "x5", {"status": "approved", "rule_id": "another-rule", "field": "host.name", "values": ["db-01"]}
    )
    report = Detector(det_settings, store, es, lambda _id: None).run(rules_of(det_settings), now)
    assert report.runs[rule_id].hits == 1
    assert [r.doc["event_ids"] for r in store.find("alerts")] == [["kept"]]


def test_rejected_query_disables_only_that_rule_and_missing_index_is_reported(
    es: Elasticsearch, events_index: str, det_settings: Settings, store: SQLiteStore, write_rule: Callable[..., str]
) -> None:
    good = write_rule("good", interval="1s")
    missing = write_rule("missing", interval="1s", index=f"{events_index}-does-not-exist")
    now = time.time()
    index_events(es, events_index, [("g1", event(1, now - 5))])
    rules = rules_of(det_settings)
    broken = ScheduledRule(
        id="broken-rule", title="Broken", level="low", tags=(), index=events_index, interval=1, lookback=30,
        max_alerts=10, content_hash="h1", source="test:1",
        query={"query_string": {"query": "process.command_line:(unclosed"}},
    )  # fmt: skip
    report = Detector(det_settings, store, es, lambda _id: None).run([*rules, broken], now)
    assert report.runs[good].alerts == 1 and report.runs[good].error is None
    assert report.runs["broken-rule"].error is not None and report.runs["broken-rule"].error.disable
    assert report.runs[missing].error is not None and report.runs[missing].error.kind == "missing_index"
    ck = store.get(CHECKPOINTS, "broken-rule")
    assert ck is not None and ck.doc["disabled"] is True and "rejected" in ck.doc["disabled_reason"]
    missing_ck = store.get(CHECKPOINTS, missing)
    assert missing_ck is not None and not missing_ck.doc.get("disabled") and "end" not in missing_ck.doc
    assert missing_ck.doc["errors_total"] == 1 and "index_not_found" in missing_ck.doc["last_error"]


def test_late_events_within_the_lookback_are_detected(
    es: Elasticsearch, events_index: str, det_settings: Settings, store: SQLiteStore, write_rule: Callable[..., str]
) -> None:
    rule_id = write_rule(interval="1s", lookback="30s")
    detector = Detector(det_settings, store, es, lambda _id: None)
    t0 = time.time()
    detector.run(rules_of(det_settings), t0)
    # Indexed now, stamped 25 s ago: older than the checkpoint, within the look-back.
    index_events(es, events_index, [("late", event("late", t0 - 25)), ("too-late", event("old", t0 - 120))])
    report = detector.run(rules_of(det_settings), t0 + 1)
    assert report.runs[rule_id].hits == 1
    assert [r.doc["event_ids"] for r in store.find("alerts")] == [["late"]]


def test_late_cycle_records_a_gap_and_fills_it(
    es: Elasticsearch, events_index: str, det_settings: Settings, store: SQLiteStore, write_rule: Callable[..., str]
) -> None:
    rule_id = write_rule(interval="1s", lookback="2s")
    detector = Detector(det_settings, store, es, lambda _id: None)
    t0 = time.time() - 600
    detector.run(rules_of(det_settings), t0)
    # Nothing ran for 10 minutes; events happened throughout.
    index_events(es, events_index, [(f"g{i}", event(i, t0 + 30 * i)) for i in range(1, 20)])
    report = detector.run(rules_of(det_settings), t0 + 600)
    gap = report.runs[rule_id].gap
    assert gap is not None and gap.seconds > 590
    assert report.runs[rule_id].gap_seconds_filled > 590
    gaps = store.find(GAPS)
    assert len(gaps) == 1 and gaps[0].doc["status"] == "filled"
    assert sorted(e for r in store.find("alerts", limit=100) for e in r.doc["event_ids"]) == sorted(
        f"g{i}" for i in range(1, 20)
    )


def test_concurrent_cycles_never_duplicate(
    es: Elasticsearch, events_index: str, det_settings: Settings, store: SQLiteStore, write_rule: Callable[..., str]
) -> None:
    rule_id = write_rule(interval="1s")
    now = time.time()
    index_events(es, events_index, [(f"d{i}", event(i, now - 10 + i / 10)) for i in range(50)])
    sent: list[str] = []
    created: list[str] = []

    def cycle() -> None:
        created.extend(Detector(det_settings, store, es, sent.append).run(rules_of(det_settings), now).created)

    threads = [threading.Thread(target=cycle) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(created) == 50 == len(set(created))
    assert store.count("alerts") == 50
    assert {e for r in store.find("alerts", limit=100) for e in r.doc["event_ids"]} == {f"d{i}" for i in range(50)}
    assert rule_id


def test_mapping_conflict_is_reported_for_that_rule_only(
    es: Elasticsearch, es_index: str, det_settings: Settings, store: SQLiteStore, write_rule: Callable[..., str]
) -> None:
    # process.pid is a number in one index and a keyword in the other: a wildcard on it fails on one shard.
    es.indices.create(
        index=f"{es_index}-a", mappings={"properties": {"process": {"properties": {"pid": {"type": "long"}}}}}
    )
    es.indices.create(
        index=f"{es_index}-b", mappings={"properties": {"process": {"properties": {"pid": {"type": "keyword"}}}}}
    )
    now = time.time()
    index_events(es, f"{es_index}-a", [("n1", {"@timestamp": iso(now - 3), "process": {"pid": 12}})])
    index_events(es, f"{es_index}-b", [("k1", {"@timestamp": iso(now - 3), "process": {"pid": "12ab"}})])
    conflicted = ScheduledRule(
        id="conflicted", title="Conflicted", level="low", tags=(), index=f"{es_index}-*", interval=1, lookback=30,
        max_alerts=10, content_hash="h", source="t:1", query={"wildcard": {"process.pid": "12a*"}},
    )  # fmt: skip
    good_id = write_rule(interval="1s", index=f"{es_index}-*")
    good = next(r for r in rules_of(det_settings) if r.id == good_id)
    report = Detector(det_settings, store, es, lambda _id: None).run([conflicted, good], now)
    error = report.runs["conflicted"].error
    assert error is not None and error.kind == "shard_failures" and not error.disable, error
    assert report.runs[good_id].error is None
    ck = store.get(CHECKPOINTS, "conflicted")
    assert ck is not None and ck.doc["error_kind"] == "shard_failures" and "end" not in ck.doc


def test_suppression_keeps_one_alert_per_group_and_window_across_runs(
    es: Elasticsearch, events_index: str, det_settings: Settings, store: SQLiteStore, write_rule: Callable[..., str]
) -> None:
    rule_id = write_rule(interval="1s", lookback="1m", suppress={"by": ["host.name"], "window": "1h"})
    detector = Detector(det_settings, store, es, lambda _id: None)
    now = time.time()
    index_events(
        es, events_index, [("s1", event(1, now - 6)), ("s2", event(2, now - 5)), ("o1", event(3, now - 5, host="db"))]
    )
    first = detector.run(rules_of(det_settings), now)
    assert first.runs[rule_id].alerts == 2  # web-01 and db
    index_events(es, events_index, [("s3", event(4, now - 1)), ("s4", event(5, now - 0.5))])
    second = detector.run(rules_of(det_settings), now + 1.5)
    third = detector.run(rules_of(det_settings), now + 3)  # the same events again: counted once
    assert second.created == [] and third.created == []
    web = [r.doc for r in store.find("alerts", {"host.name": "web-01"})]
    if len(web) == 2:  # the hour boundary fell between the events: two windows, each counted once
        assert sum(a["suppressed_count"] + 1 for a in web) == 4
    else:
        assert (
            len(web) == 1
            and web[0]["suppressed_count"] == 3
            and sorted(web[0]["event_ids"]) == ["s1", "s2", "s3", "s4"]
        )
    assert [r.doc["suppressed_count"] for r in store.find("alerts", {"host.name": "db"})] == [0]


def test_suppressed_count_stays_exact_past_the_event_ids_kept(
    es: Elasticsearch, events_index: str, det_settings: Settings, store: SQLiteStore, write_rule: Callable[..., str]
) -> None:
    rule_id = write_rule(interval="1s", lookback="5m", suppress={"by": ["host.name"], "window": "1h"})
    rules = rules_of(det_settings)
    now = (time.time() // 3600) * 3600 - 1800  # the middle of the last hour: one suppression window
    index_events(es, events_index, [(f"a{i}", event(i, now - 100 + i * 0.05)) for i in range(1500)])
    detector = Detector(det_settings, store, es, lambda _id: None)
    assert detector.run(rules, now - 50).runs[rule_id].hits == 1000  # the first 1000 ids fill the alert
    detector.run(rules, now)  # overlaps the first run: 500 new events, past the ids kept
    index_events(es, events_index, [(f"b{i}", event(i, now + 1 + i * 0.01)) for i in range(300)])
    detector.run(rules, now + 5)
    detector.run(rules, now + 6)  # the same events again: nothing more

    # Two workers merging the same new events at once still count each once.
    index_events(es, events_index, [(f"c{i}", event(i, now + 7 + i * 0.01)) for i in range(200)])
    racers = [Detector(det_settings, store, es, lambda _id: None) for _ in range(2)]
    threads = [threading.Thread(target=d.run, args=(rules, now + 10)) for d in racers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    [alert] = [r.doc for r in store.find("alerts", {"rule.id": rule_id})]
    assert alert["suppressed_count"] + 1 == 1500 + 300 + 200
    assert len(alert["event_ids"]) == 1000 and alert["suppressed_overflow"] == 1000
    assert store.count("suppressed_events", {"alert_id": alert["id"]}) == 2000


def test_events_alerted_earlier_never_take_the_room_of_new_ones_under_the_cap(
    es: Elasticsearch, events_index: str, det_settings: Settings, store: SQLiteStore, write_rule: Callable[..., str]
) -> None:
    rule_id = write_rule(interval="1s", lookback="30s", max_alerts=3)
    detector = Detector(det_settings, store, es, lambda _id: None)
    now = time.time()
    index_events(es, events_index, [(f"o{i}", event(i, now - 10 + i)) for i in range(3)])
    assert detector.run(rules_of(det_settings), now).runs[rule_id].alerts == 3
    # Two new events; the look-back still covers the three already alerted (found first, oldest first).
    index_events(es, events_index, [(f"n{i}", event(i, now + 0.5 + i * 0.1)) for i in range(2)])
    run = detector.run(rules_of(det_settings), now + 2).runs[rule_id]
    assert run.alerts == 2 and run.capped == 0  # the cap counts new alerts, not matches alerted before
    assert store.count("alerts") == 5
    # Five late events, older than all five alerted (so searched before them): three alerted, two capped;
    # the alerted ones found after the cap are not counted as capped.
    index_events(es, events_index, [(f"late{i}", event(i, now - 20 + i)) for i in range(5)])
    run = detector.run(rules_of(det_settings), now + 4).runs[rule_id]
    assert run.alerts == 3 and run.capped == 2, run


def test_an_alert_written_just_before_a_crash_is_handed_off_by_the_next_run_once(
    es: Elasticsearch, events_index: str, det_settings: Settings, store: SQLiteStore, write_rule: Callable[..., str]
) -> None:
    rule_id = write_rule(interval="1s")
    now = time.time()
    index_events(es, events_index, [("h1", event(1, now - 4)), ("h2", event(2, now - 3))])

    def dies(_alert_id: str) -> None:  # the process dies after the first alert is written, before its hand-off
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        Detector(det_settings, store, es, dies).run(rules_of(det_settings), now)
    [written] = [r.doc for r in store.find("alerts")]
    assert written["dispatched"] is False and store.get(CHECKPOINTS, rule_id) is None  # the window is searched again

    sent: list[str] = []
    report = Detector(det_settings, store, es, sent.append).run(rules_of(det_settings), now + 1.5)
    both = {alert_id_for_event(rule_id, events_index, e) for e in ("h1", "h2")}
    assert sorted(sent) == sorted(both) and len(report.created) == 1  # the first handed off again, not re-created
    assert store.count("alerts") == 2 and store.count("alerts", {"dispatched": True}) == 2


def test_without_a_point_in_time_results_past_a_page_are_fetched_by_halving_the_window(
    events_index: str,
    det_settings: Settings,
    store: SQLiteStore,
    write_rule: Callable[..., str],
    es: Elasticsearch,
    service_settings: Settings,
) -> None:
    rule_id = write_rule(interval="1s", lookback="5m", max_alerts=5000)
    now = time.time()
    n = 2500  # two and a half pages, several events per millisecond in places
    index_events(es, events_index, [(f"q{i}", event(i, now - 200 + (i // 4) * 0.05)) for i in range(n)])
    # Matching events in another index of the cluster (as another test's, or another data set's): not the rule's.
    # The parts searched without a point in time once named no index, so they searched every index.
    create_events_index(es, f"{events_index}-other")
    index_events(es, f"{events_index}-other", [(f"o{i}", event(i, now - 180 + i)) for i in range(20)])
    settings = det_settings.model_copy(update={"detection_page_size": 1000})
    with NoPointInTimeProxy(service_settings.elasticsearch_url) as server:
        client = elasticsearch_client(settings.model_copy(update={"elasticsearch_url": server.url}))
        report = Detector(settings, store, client, lambda _id: None).run(rules_of(settings), now)
        client.close()
    run = report.runs[rule_id]
    assert server.refused >= 1  # a point in time was asked for first
    assert run.error is None and run.hits == n and run.capped == 0, run
    assert store.count("alerts") == n  # every event once (fingerprints: a duplicate hit would not add one)


def test_a_rules_own_attributes_reach_its_alerts_and_scope_them(
    es: Elasticsearch, events_index: str, det_settings: Settings, store: SQLiteStore, write_rule: Callable[..., str]
) -> None:
    """soar: {attributes: {team: identity}}: the alert carries them in soar's inventory field, and a principal scoped
    to the identity team may read it while one scoped to another team may not (the rule file decides, not the event)."""
    from soar.access import Principal, authorize_in
    from soar.scope import scopes_for

    rule_id = write_rule(interval="1s", attributes={"team": "identity"})
    now = time.time()
    index_events(es, events_index, [("e0", event(0, now - 5))])
    Detector(det_settings, store, es, lambda _id: None).run(rules_of(det_settings), now)
    alert = store.get("alerts", alert_id_for_event(rule_id, events_index, "e0"))
    assert alert is not None
    assert alert.doc["inventory"]["rule"] == {"attributes": {"team": "identity"}}
    scopes = scopes_for(det_settings).of_alert(alert.doc)
    identity = Principal("ida", frozenset({"viewer"}), {"team": ("identity",)})
    network = Principal("nat", frozenset({"viewer"}), {"team": ("network",)})
    assert authorize_in(identity, "alerts:read", scopes).allowed
    assert not authorize_in(network, "alerts:read", scopes).allowed


def test_alerts_of_a_cycle_that_died_before_its_checkpoint_are_counted_once_by_the_next(
    es: Elasticsearch, events_index: str, det_settings: Settings, store: SQLiteStore, write_rule: Callable[..., str]
) -> None:
    """A kill between an alert's write and the checkpoint's leaves the alert uncounted; the run that finds it
    again counts it (issue #21: alerts_total exact under kill -9), and no later run counts it twice."""
    rule_id = write_rule(interval="1s")
    now = time.time()
    index_events(es, events_index, [(f"e{i}", event(i, now - 10 + i)) for i in range(3)])
    detector = Detector(det_settings, store, es, lambda _id: None)
    first = detector.run(rules_of(det_settings), now)
    assert len(first.created) == 3
    index_events(es, events_index, [(f"e{i}", event(i, now - 5 + i)) for i in range(3, 5)])

    class Killed(BaseException):
        pass

    def die(*_args: object) -> None:
        raise Killed

    dying = Detector(det_settings, store, es, lambda _id: None)
    dying._checkpoints = die  # type: ignore[method-assign,assignment]  # the process dies right before it
    with pytest.raises(Killed):
        dying.run(rules_of(det_settings), now + 1.5)
    assert store.count("alerts") == 5
    ck = store.get(CHECKPOINTS, rule_id)
    assert ck is not None and ck.doc["alerts_total"] == 3  # the dead cycle's two are not in it yet
    fresh = Detector(det_settings, store, es, lambda _id: None)  # a new process: nothing remembered
    again = fresh.run(rules_of(det_settings), now + 3)
    assert again.created == [] and again.runs[rule_id].recounted == 2
    fresh.run(rules_of(det_settings), now + 4.5)
    ck = store.get(CHECKPOINTS, rule_id)
    assert ck is not None and ck.doc["alerts_total"] == store.count("alerts") == 5 and ck.doc["runs_total"] == 3
