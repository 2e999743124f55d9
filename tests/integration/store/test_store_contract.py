"""One contract, two stores: SQLite (embedded) and Elasticsearch indices (production)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import Elasticsearch

from soar.records import Approval, Vote
from soar.store import Conflict, Range, Store
from soar.store.elastic import ElasticsearchStore
from soar.store.sqlite import SQLiteStore


@pytest.fixture(params=["sqlite", "elasticsearch"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        s: Store = SQLiteStore(tmp_path / "state.sqlite3")
        yield s
        s.close()
        return
    es: Elasticsearch = request.getfixturevalue("es")
    prefix = f"soar-test-{uuid.uuid4().hex[:10]}"
    s = ElasticsearchStore(es, prefix)
    yield s
    es.options(ignore_status=404).indices.delete(index=f"{prefix}-state-*")
    es.options(ignore_status=404).indices.delete_index_template(name=f"{prefix}-state")


def test_create_is_exactly_once(store: Store) -> None:
    assert store.create("alerts", "fp-1", {"rule": {"id": "r1"}, "n": 1}) is True
    assert store.create("alerts", "fp-1", {"rule": {"id": "r1"}, "n": 2}) is False
    rec = store.get("alerts", "fp-1")
    assert rec is not None and rec.doc["n"] == 1


def test_concurrent_creates_yield_one_winner(store: Store) -> None:
    wins: list[bool] = []

    def attempt(i: int) -> None:
        wins.append(store.create("alerts", "same-fingerprint", {"writer": i}))

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wins.count(True) == 1
    assert store.count("alerts") == 1


def test_optimistic_update_detects_lost_races(store: Store) -> None:
    first = store.put("runs", "run-1", {"state": "running"})
    second = store.update("runs", "run-1", {"state": "paused"}, version=first.version)
    with pytest.raises(Conflict):
        store.update("runs", "run-1", {"state": "done"}, version=first.version)
    current = store.get("runs", "run-1")
    assert current is not None
    assert current.doc["state"] == "paused"
    assert current.version == second.version


def test_mutate_loses_no_update_under_concurrency(store: Store) -> None:
    """Eight writers each add 10 to a counter through Store.mutate: every increment lands exactly once."""
    store.put("runs", "counter", {"n": 0, "by": []})

    def add(i: int) -> None:
        for _ in range(10):
            store.mutate("runs", "counter", lambda doc: {**doc, "n": doc["n"] + 1, "by": [*doc["by"], i]}, retries=500)

    threads = [threading.Thread(target=add, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    final = store.get("runs", "counter")
    assert final is not None and final.doc["n"] == 80 and sorted(final.doc["by"]) == sorted(list(range(8)) * 10)


def test_mutate_leaves_a_document_when_told_and_answers_none_for_a_missing_one(store: Store) -> None:
    first = store.put("runs", "run-1", {"state": "running"})
    same = store.mutate("runs", "run-1", lambda doc: None)
    assert same is not None and same.version == first.version and same.doc == {"state": "running"}
    assert store.mutate("runs", "nope", lambda doc: {"state": "x"}) is None
    assert store.get("runs", "nope") is None
    calls: list[int] = []

    def always_loses(doc: dict[str, object]) -> dict[str, object]:
        calls.append(1)
        store.put("runs", "run-1", {"state": f"raced-{len(calls)}"})  # another writer gets in first every time
        return {**doc, "state": "mine"}

    with pytest.raises(Conflict, match="runs run-1: too many concurrent updates \\(3 attempts\\)"):
        store.mutate("runs", "run-1", always_loses, retries=3)
    assert len(calls) == 3 and store.get("runs", "run-1").doc["state"] == "raced-3"  # type: ignore[union-attr]


def _add(i: int) -> Any:
    return lambda doc: {**doc, "by": [*doc["by"], i]}


def test_mutate_with_create_makes_a_missing_document_then_changes_it(store: Store) -> None:
    add = _add
    first = store.mutate("breakers", "a", add(1), create=lambda: {"by": []})
    assert first is not None and first.doc == {"by": [1]}
    second = store.mutate("breakers", "a", add(2), create=lambda: {"by": []})
    assert second is not None and second.doc == {"by": [1, 2]}
    current = store.get("breakers", "a")
    assert current is not None and current.version == second.version  # the version returned is the stored one
    assert store.mutate("breakers", "b", lambda doc: None, create=lambda: {"by": []}) is None
    assert store.get("breakers", "b") is None
    inserted = store.insert("breakers", "c", {"by": []})
    assert inserted is not None and store.insert("breakers", "c", {"by": [9]}) is None
    assert store.update("breakers", "c", {"by": [3]}, version=inserted.version).doc == {"by": [3]}


def test_mutate_with_create_racing_writers_create_once_and_lose_nothing(store: Store) -> None:
    """Two writers both find the document missing (a barrier holds them in create): one insert wins,
    the other's change is applied to the winner's document; then eight writers create-or-update at once."""
    both_saw_missing = threading.Barrier(2, timeout=30)
    creates: list[int] = []
    errors: list[BaseException] = []

    def create() -> dict[str, Any]:
        creates.append(1)
        if len(creates) <= 2:
            both_saw_missing.wait()
        return {"by": []}

    def writer(doc_id: str, i: int, times: int, make: Any) -> None:
        try:
            for _ in range(times):
                store.mutate("bursts", doc_id, lambda doc: {**doc, "by": [*doc["by"], i]}, create=make, retries=500)
        except BaseException as exc:  # a thread's failure must fail the test
            errors.append(exc)

    pair = [threading.Thread(target=writer, args=("pair", i, 1, create)) for i in range(2)]
    many = [threading.Thread(target=writer, args=("many", i, 5, lambda: {"by": []})) for i in range(8)]
    for group in (pair, many):
        for t in group:
            t.start()
        for t in group:
            t.join()
    assert not errors and len(creates) == 2
    pair_doc, many_doc = store.get("bursts", "pair"), store.get("bursts", "many")
    assert pair_doc is not None and sorted(pair_doc.doc["by"]) == [0, 1]
    assert many_doc is not None and sorted(many_doc.doc["by"]) == sorted(list(range(8)) * 5)


def test_typed_records_round_trip_and_are_found_by_schema_version(store: Store) -> None:
    """What a model writes (schema_version included) comes back as written, and is searchable, on both stores."""
    approval = Approval(
        id="run-1.isolate[web-1]",
        run_id="run-1",
        step="isolate[web-1]",
        step_id="isolate",
        status="pending",
        expires_at=1796573820.25,
        required=2,
        roles=["approver"],
        approvers=[Vote("alice", role="approver", via="slack", at="t", slack_user="U1")],
    )
    store.create("approvals", approval.id, approval.to_doc())
    rec = store.get("approvals", approval.id)
    assert rec is not None and Approval.from_doc(rec.doc, rec.id) == approval
    assert [r.id for r in store.find("approvals", {"schema_version": 1, "step_id": "isolate"})] == [approval.id]
    changed = store.mutate(
        "approvals",
        approval.id,
        lambda doc: Approval.from_doc(doc).to_doc() | {"status": "approved"},
    )
    assert changed is not None and Approval.from_doc(changed.doc).status == "approved"


def test_get_missing_and_delete(store: Store) -> None:
    assert store.get("runs", "nope") is None
    store.put("runs", "r", {"a": 1})
    assert store.delete("runs", "r") is True
    assert store.delete("runs", "r") is False
    assert store.get("runs", "r") is None


def test_find_by_nested_fields_ranges_and_order(store: Store) -> None:
    for i, (host, level) in enumerate([("web-01", "high"), ("db-01", "low"), ("web-01", "critical")]):
        store.put(
            "alerts",
            f"a{i}",
            {"host": {"name": host}, "rule": {"level": level}, "@timestamp": f"2026-11-28T10:0{i}:00Z", "open": i != 1},
        )
    web = store.find("alerts", {"host.name": "web-01"}, order_by="@timestamp", descending=True)
    assert [r.id for r in web] == ["a2", "a0"]
    some = store.find("alerts", {"rule.level": ["high", "low"]}, order_by="@timestamp")
    assert [r.id for r in some] == ["a0", "a1"]
    window = store.find("alerts", {"@timestamp": Range(gte="2026-11-28T10:01:00Z", lt="2026-11-28T10:02:00Z")})
    assert [r.id for r in window] == ["a1"]
    assert store.count("alerts", {"open": True}) == 2
    assert store.count("alerts", {"missing.field": None}) == 3
    assert [r.id for r in store.find("alerts", limit=2, order_by="@timestamp")] == ["a0", "a1"]


def test_hostile_values_are_stored_verbatim(store: Store) -> None:
    hostile = {"user": {"name": "$(reboot)'; DROP TABLE docs;--"}, "note": "{{ ''.__class__ }}\n\u202e"}
    store.put("alerts", "h", hostile)
    found = store.find("alerts", {"user.name": hostile["user"]["name"]})
    assert [r.doc for r in found] == [hostile]


def test_bad_kind_and_field_are_refused(store: Store) -> None:
    from soar.errors import InputError

    with pytest.raises(InputError):
        store.put("Alerts; drop", "x", {})
    with pytest.raises(InputError):
        store.find("alerts", {"a') OR 1=1 --": 1})


def test_put_many_writes_and_replaces_in_one_call(store: Store) -> None:
    store.put("checkpoints", "r1", {"end": "2026-11-28T10:00:00Z"})
    written = store.put_many(
        "checkpoints", {"r1": {"end": "2026-11-28T10:05:00Z"}, "r2": {"end": "2026-11-28T10:01:00Z", "n": 2}}
    )
    assert written == 2
    first = store.get("checkpoints", "r1")
    assert first is not None and first.doc == {"end": "2026-11-28T10:05:00Z"}
    assert [r.id for r in store.find("checkpoints", {"end": Range(gte="2026-11-28T10:01:00Z")})] == ["r1", "r2"]
    updated = store.update("checkpoints", "r2", {"end": "x"}, version=store.get("checkpoints", "r2").version)  # type: ignore[union-attr]
    assert updated.doc == {"end": "x"}
    assert store.put_many("checkpoints", {}) == 0


def test_prefix_finds_ids_and_fields_by_their_start_case_sensitively(store: Store) -> None:
    """What a command line resolves a short id with: ``id`` is the record id; %, _ and case are literal."""
    from soar.store import Prefix

    for i in ["abc1", "abc2", "ab_x", "abd", "a%b", "ABC9"]:
        store.put("alerts", i, {"id": i, "rule": {"id": f"r-{i}"}})
    assert [r.id for r in store.find("alerts", {"id": Prefix("abc")})] == ["abc1", "abc2"]
    assert [r.id for r in store.find("alerts", {"id": Prefix("ab_")})] == ["ab_x"]
    assert [r.id for r in store.find("alerts", {"id": Prefix("a%")})] == ["a%b"]
    assert [r.id for r in store.find("alerts", {"rule.id": Prefix("r-ab")})] == ["ab_x", "abc1", "abc2", "abd"]
    assert store.count("alerts", {"id": Prefix("ABC")}) == 1


def test_id_in_a_filter_is_the_record_id_whether_the_document_stores_it_or_not(store: Store) -> None:
    store.put("gaps", "g1", {"rule_id": "r1"})  # a kind whose documents do not carry their id
    store.put("gaps", "g2", {"rule_id": "r2"})
    store.put("gaps", "g3", {"rule_id": "r3", "id": "stale"})  # a stored "id" does not change which record it is
    assert [r.id for r in store.find("gaps", {"id": ["g1", "g3"]})] == ["g1", "g3"]
    assert [r.id for r in store.find("gaps", {"id": "g2"})] == ["g2"]
    assert store.count("gaps", {"id": ["g1", "g2", "nope"]}) == 2
    assert store.find("gaps", {"id": "stale"}) == []


def test_put_many_if_writes_the_current_and_reports_the_stale(store: Store) -> None:
    a = store.put("checkpoints", "a", {"n": 1})
    b = store.put("checkpoints", "b", {"n": 1})
    store.put("checkpoints", "b", {"n": 2})  # b moved on since it was read
    lost = store.put_many_if(
        "checkpoints",
        {"a": ({"n": 10}, a.version), "b": ({"n": 10}, b.version), "c": ({"n": 10}, None), "d": ({"n": 1}, None)},
    )
    assert lost == {"b"}
    assert [store.get("checkpoints", i).doc["n"] for i in "abcd"] == [10, 2, 10, 1]  # type: ignore[union-attr]
    assert store.put_many_if("checkpoints", {"c": ({"n": 11}, None)}) == {"c"}  # create-only when no version


def test_two_concurrent_cycle_writers_keep_exact_counters(store: Store) -> None:
    """Two writers (two schedulers' cycles) adding to the same checkpoints lose no count; ``end`` never goes back."""
    from soar.scheduler.planning import iso, parse_time
    from soar.scheduler.state import CHECKPOINTS, Tally, load_checkpoints, write_tallies

    rules = ["r1", "r2", "r3"]
    ends: dict[int, list[float]] = {0: [], 1: []}

    def writer(n: int) -> None:
        for i in range(15):
            read = load_checkpoints(store, rules)  # read at the cycle's start, as a cycle does
            at = 1_000_000 + 2 * i + n
            tallies = [Tally(r, r, "h", iso(at), alerts=n + 1, hits=n + 1, end=at) for r in rules]
            assert len(write_tallies(store, tallies, read)) == len(rules)
            ends[n].append(parse_time(load_checkpoints(store, ["r1"])["r1"]["end"]) or 0.0)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for rec in store.find(CHECKPOINTS):
        assert rec.doc["runs_total"] == 30, rec.doc
        assert rec.doc["alerts_total"] == 15 * (1 + 2), rec.doc
        assert parse_time(rec.doc["end"]) == 1_000_000 + 2 * 14 + 1
    assert all(seen == sorted(seen) for seen in ends.values())
