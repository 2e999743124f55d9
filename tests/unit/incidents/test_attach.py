"""Attaching stored alerts to incidents on the embedded store: the same incidents in any order, merges that
move no alert, a scope that covers every alert, a closed incident reopened by a new alert."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any, ClassVar

import pytest

from soar.config import Settings
from soar.incidents import KIND, MEMBERS, attach, incident_of_alert
from soar.scope import Scopes
from soar.store.sqlite import SQLiteStore


def alert(
    aid: str, minute: int, host: str | None = "web1", user: str | None = "bob", level: str = "high"
) -> dict[str, Any]:
    return {
        "id": aid,
        "@timestamp": f"2026-12-01T{10 + minute // 60:02d}:{minute % 60:02d}:00.000Z",
        "rule": {"id": f"rule-{aid}", "title": f"Rule {aid}", "level": level},
        "severity": level,
        "host": {"name": host} if host else {},
        "user": {"name": user} if user else {},
    }


def live(store: SQLiteStore) -> list[tuple[str, int, str, str]]:
    rows = store.find(KIND, {"merged_into": None}, order_by="first_at", limit=100)
    out = []
    for r in rows:
        members = store.find(MEMBERS, {"incident_id": [r.id, *r.doc["absorbed"]]}, limit=100)
        out.append((r.id, r.doc["alert_count"], r.doc["first_at"], ",".join(sorted(m.id for m in members))))
    return out


ALERTS = [
    alert("a", 0),
    alert("b", 25, level="critical"),
    alert("c", 50),  # joins b (25 min): a-b-c is one incident
    alert("d", 200),  # alone on web1
    alert("u", 10, host=None, user="carol"),  # keyed by user
    alert("n", 10, host=None, user=None),  # an incident of its own
]


def test_every_order_gives_the_same_live_incidents(tmp_path: Path, settings: Settings) -> None:
    results = set()
    for n, order in enumerate(itertools.permutations(ALERTS[:4])):
        if n % 3:  # 8 of the 24 orders keep the test quick; the pure grouping is tested over all of them
            continue
        store = SQLiteStore(tmp_path / f"s{n}.sqlite3")
        for doc in [*order, *ALERTS[4:]]:
            store.put("alerts", doc["id"], doc)
            attach(store, settings, doc)
        results.add(tuple(live(store)))
        store.close()
    assert len(results) == 1
    (incidents,) = results
    assert [(count, members) for _, count, _, members in incidents] == [(3, "a,b,c"), (1, "n"), (1, "u"), (1, "d")]


def test_attaching_again_counts_nothing_twice(tmp_path: Path, settings: Settings) -> None:
    store = SQLiteStore(tmp_path / "s.sqlite3")
    first = attach(store, settings, ALERTS[0])
    again = attach(store, settings, ALERTS[0])
    assert first.new_alert and not again.new_alert and first.incident_id == again.incident_id
    assert store.get(KIND, first.incident_id).doc["alert_count"] == 1  # type: ignore[union-attr]
    assert incident_of_alert(store, "a") == first.incident_id


def test_a_merge_folds_notes_owner_and_summary_and_the_old_id_resolves(tmp_path: Path, settings: Settings) -> None:
    from soar.incidents.changes import add_note, assign, set_status

    store = SQLiteStore(tmp_path / "s.sqlite3")
    late = attach(store, settings, alert("late", 20, level="low")).incident_id
    add_note(store, settings, late, "looked at <b>it</b>", actor="ana", role="responder")
    assign(store, settings, late, "ana", actor="ana", role="responder")
    set_status(store, settings, late, "closed", actor="ana", role="responder")
    early = attach(store, settings, alert("early", 0, level="critical")).incident_id
    assert early != late
    doc = store.get(KIND, early).doc  # type: ignore[union-attr]
    assert doc["absorbed"] == [late] and doc["owner"] == "ana" and doc["severity"] == "critical"
    assert [n["text"] for n in doc["notes"]] == ["looked at <b>it</b>"]
    assert doc["status"] == "open" and doc["alert_count"] == 2  # a new alert reopens what was closed
    assert store.get(KIND, late).doc["merged_into"] == early  # type: ignore[union-attr]
    assert incident_of_alert(store, "late") == early
    # acting on the old id acts on the live incident
    assert set_status(store, settings, late, "acknowledged", actor="ana", role="responder")[0]["id"] == early


def test_the_incident_is_scoped_by_every_alert_in_it(tmp_path: Path, settings: Settings) -> None:
    class Inventory:
        labels: ClassVar[dict[str, dict[str, str]]] = {"web1": {"env": "prod"}, "stage1": {"env": "staging"}}

        def resolve(self, value: str) -> Any:
            from soar.errors import NotFound

            if value not in self.labels:
                raise NotFound(value)
            return type("Host", (), {"name": value, "labels": self.labels[value]})()

    store = SQLiteStore(tmp_path / "s.sqlite3")
    one = attach(store, settings, alert("x", 0, host="web1", user="bob")).incident_id
    grouped_by_user = {**settings.model_dump(), "incident_group_by": ["user.name"]}
    by_user = Settings.model_validate(grouped_by_user)
    attach(store, by_user, alert("y", 1, host="web1", user="eve"))
    two = attach(store, by_user, alert("z", 2, host="stage1", user="eve")).incident_id
    scopes = Scopes(Inventory())
    assert [s.host for s in scopes.of_incident(store.get(KIND, one).doc)] == ["web1"]  # type: ignore[union-attr]
    assert sorted(str(s.host) for s in scopes.of_incident(store.get(KIND, two).doc)) == ["stage1", "web1"]  # type: ignore[union-attr]


def test_a_detector_with_no_engine_to_hand_to_attaches_itself(
    tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from soar import dispatch
    from soar.scheduler.runtime import alert_handoff

    monkeypatch.delitem(dispatch._HANDLERS, dispatch.Task.HANDLE_ALERT, raising=False)  # a bare eager detector
    eager = Settings.model_validate({**settings.model_dump(), "celery_eager": True})
    store = SQLiteStore(tmp_path / "s.sqlite3")
    store.put("alerts", "a", ALERTS[0])
    alert_handoff(eager, store)("a")  # queued for the background attacher: the cycle does not wait for it
    from soar.incidents.deferred import attacher_for

    assert attacher_for(store, eager).drain(timeout=30)
    assert incident_of_alert(store, "a") is not None


def test_the_sweep_attaches_the_recent_alerts_no_incident_holds_once(tmp_path: Path, settings: Settings) -> None:
    from datetime import UTC, datetime

    from soar.incidents.attach import attach_id
    from soar.incidents.deferred import sweep

    store = SQLiteStore(tmp_path / "s.sqlite3")
    for doc in (alert("a", 0), alert("b", 25), alert("old", -600)):  # "old": outside the incident window
        store.put("alerts", doc["id"], doc)
    attach_id(store, settings, "a")  # attached by its worker; "b" was queued when the process stopped
    now = datetime(2026, 12, 1, 10, 30, tzinfo=UTC)
    assert sweep(store, settings, now) == 1
    assert incident_of_alert(store, "b") == incident_of_alert(store, "a") is not None
    assert incident_of_alert(store, "old") is None  # past the window: not the sweep's to attach
    assert sweep(store, settings, now) == 0  # nothing left
