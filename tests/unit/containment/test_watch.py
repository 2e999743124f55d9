"""The containment watch without hosts: the record, what a look means, what the policy makes of it, the claim."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from soar.actions.model import ActionResult
from soar.config import load_settings
from soar.containment import ledger
from soar.containment.watch import Seen, claim, decide, seen, watch_pass
from soar.dispatch import Task
from soar.errors import RecordError
from soar.policy import ContainmentWatch
from soar.records.containment import KIND, MAX_CHECKS, Check, Containment
from soar.store.sqlite import SQLiteStore


def containment(**changes: Any) -> Containment:
    values: dict[str, Any] = {
        "id": "ctn-1", "run_id": "run-1", "step": "isolate", "action": "hosts.isolate_host",
        "verify": "hosts.check_isolation", "host": "app1", "params": {"host": "app1"},
        "applied_at": "2026-12-06T20:00:00.000Z", "applied_ts": 1000.0, "interval": 60.0, "next_check": 1060.0,
        "boot_id": "boot-a",
    }  # fmt: skip
    values.update(changes)
    return Containment(**values)


def test_a_record_round_trips_and_a_malformed_one_names_its_field() -> None:
    rec = containment(escalated=True, history=[Check(at="t", outcome="drifted", found=["rules missing"])])
    assert Containment.from_doc(rec.to_doc()).to_doc() == rec.to_doc()
    bad = {**rec.to_doc(), "state": "gone"}
    with pytest.raises(RecordError, match="state"):
        Containment.from_doc(bad)


def test_looks_move_the_counters_and_the_history_is_capped() -> None:
    rec = containment()
    for outcome in ("held", "unreachable", "unreachable", "drifted", "repaired"):
        rec.add(Check(at="t", outcome=outcome))  # type: ignore[arg-type]
    assert (rec.checks, rec.drifts, rec.repairs, rec.unreachable_in_a_row) == (4, 1, 1, 0)
    for _ in range(MAX_CHECKS + 5):
        rec.add(Check(at="t", outcome="held"))
    assert len(rec.history) == MAX_CHECKS and rec.checks == 4 + MAX_CHECKS + 5


def test_a_look_is_held_unreachable_or_drifted_and_a_reboot_is_noted() -> None:
    rec = containment()
    held = ActionResult(ok=True, verified=True, output={"boot_id": "boot-a"})
    assert seen(rec, held) == Seen("held", (), "boot-a")
    rebooted = seen(rec, ActionResult(ok=True, verified=True, output={"boot_id": "boot-b"}))
    assert rebooted.outcome == "held" and "host rebooted" in rebooted.found[0]  # it came back at boot
    gone = ActionResult.failure("x", verified=False, output={"found": ["rules missing"], "boot_id": "boot-b"})
    assert seen(rec, gone).outcome == "drifted"
    assert seen(rec, gone).found == ("host rebooted (boot id boot-a -> boot-b)", "rules missing")
    silent = ActionResult.failure("no SSH handshake", output={"unreachable": "app1"})
    assert seen(rec, silent).outcome == "unreachable"  # not a drift


def test_the_policy_repairs_asks_or_escalates() -> None:
    drift, away = Seen("drifted", ("rules missing",)), Seen("unreachable")
    repair, ask = ContainmentWatch(), ContainmentWatch(on_drift="ask")
    assert decide(repair, containment(), drift) == "repair"
    assert decide(ask, containment(), drift) == "ask"
    assert decide(repair, containment(repairs=3), drift) == "escalate"  # max_repairs: 3
    assert decide(repair, containment(last_outcome="drifted"), drift) == "none"  # already told
    assert decide(repair, containment(), Seen("held")) == "none"
    assert decide(repair, containment(unreachable_in_a_row=1), away) == "none"
    assert decide(repair, containment(unreachable_in_a_row=2), away) == "escalate"  # the 3rd in a row, once
    assert decide(repair, containment(unreachable_in_a_row=3), away) == "none"


class Sent:
    in_process = False

    def __init__(self) -> None:
        self.sent: list[tuple[Task, list[Any]]] = []

    def send(self, name: Task, args: Any = (), **_: Any) -> bool:
        self.sent.append((name, list(args)))
        return True


def test_a_due_containment_is_claimed_by_one_watcher_and_a_released_one_by_none(tmp_path: Path) -> None:
    settings = load_settings(state_dir=tmp_path)
    store = SQLiteStore(tmp_path / "store.db")
    store.put(KIND, "ctn-1", containment().to_doc())
    store.put(KIND, "ctn-2", containment(id="ctn-2", next_check=5000.0).to_doc())
    first, second = Sent(), Sent()
    assert watch_pass(settings, store, first, now=1100.0) == ["ctn-1"]  # ctn-2 is not due
    assert watch_pass(settings, store, second, now=1101.0) == []  # under the first one's lease
    [(task, (cid, holder))] = first.sent
    assert task == Task.CHECK_CONTAINMENT and cid == "ctn-1"
    leased = Containment.from_doc(store.get(KIND, "ctn-1").doc)  # type: ignore[union-attr]
    assert leased.lease is not None and leased.lease.owner == holder  # the task knows the lease it works under
    assert not claim(store, "ctn-1", "someone-else", 60, 1102.0)
    assert claim(store, "ctn-1", "someone-else", 60, 1100.0 + 10_000)  # a lost watcher's lease runs out
    assert ledger.released(store, settings, "ctn-1", "run run-2 (revert_isolate)")
    assert watch_pass(settings, store, Sent(), now=99_999.0) == ["ctn-2"]  # the released one is not watched
    released = Containment.from_doc(store.get(KIND, "ctn-1").doc)  # type: ignore[union-attr]
    assert (released.state, released.lease) == ("released", None)


def test_uptime_is_the_share_of_verdicts_that_found_it_in_force_and_the_metrics_average_it() -> None:
    from datetime import UTC, datetime

    from soar.review.metrics import period_metrics

    rec = containment()
    assert rec.uptime is None  # no verdict yet
    for outcome in ("held", "unreachable", "drifted", "repaired", "held", "held"):
        rec.add(Check(at="t", outcome=outcome))  # type: ignore[arg-type]
    assert rec.uptime == 3 / 4  # the unreachable look says nothing either way
    alert = {"id": "a1", "@timestamp": "2026-12-06T20:00:00.000Z", "rule": {"id": "r1"}}
    run = {"id": "run-1", "playbook": {"name": "pb"}, "alert_id": "a1", "status": "succeeded", "steps": {}}
    run["containment_watch"] = [rec.shown()]
    start, end = datetime(2026, 12, 6, tzinfo=UTC), datetime(2026, 12, 7, tzinfo=UTC)
    metrics = period_metrics([alert], [run], [], [], start=start, end=end)
    assert metrics["containment_uptime"] == 3 / 4
    assert metrics["incidents"][0]["containment_uptime"] == 3 / 4


def test_a_containment_past_its_own_lifetime_is_released_as_expired_without_a_look(tmp_path: Path) -> None:
    from soar.containment.watch import check

    settings = load_settings(state_dir=tmp_path)
    store = SQLiteStore(tmp_path / "store.db")
    store.put(KIND, "ctn-1", containment(expires_ts=1050.0).to_doc())  # release_after: 50 s
    assert claim(store, "ctn-1", "me", 60, 1100.0)
    after = check(settings, store, "ctn-1", "me", now=1100.0)  # no host is asked: nothing to connect to here
    assert after is not None and (after.state, after.released_by, after.drifts) == ("released", "expired", 0)


def test_the_scheduler_runs_the_watch_as_one_of_its_chores(tmp_path: Path) -> None:
    from soar.scheduler.service import scheduler_chores

    settings = load_settings(state_dir=tmp_path, celery_eager=True)
    chores = {c.name: c for c in scheduler_chores(settings, SQLiteStore(tmp_path / "store.db"))}
    assert "containment-watch" in chores
    assert chores["containment-watch"].run() == []  # nothing in force, nothing sent


def _guard_setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, SQLiteStore, list[str]]:
    from soar.containment import watch

    settings = load_settings(state_dir=tmp_path, celery_eager=True)  # locks in the store, as in embedded mode
    store = SQLiteStore(tmp_path / "store.db")
    store.put(KIND, "ctn-1", containment().to_doc())
    assert claim(store, "ctn-1", "me", 60, 1100.0)
    called: list[str] = []

    def fake_repair(settings: Any, rec: Containment, params: Any, resources: Any) -> Check:
        called.append(rec.id)
        return Check(at="t", outcome="repair_failed", found=["not verified"])

    monkeypatch.setattr(watch, "_repair", fake_repair)
    return settings, store, called


def test_a_repair_waits_for_the_targets_lock_and_the_circuit_breaker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from soar.containment.watch import _guarded_repair
    from soar.playbooks.guards import BREAKERS
    from soar.playbooks.locks import LOCKS, StoreLocks

    settings, store, called = _guard_setup(tmp_path, monkeypatch)
    rec = containment()
    locks = StoreLocks(store)
    assert locks.acquire(["host:app1"], "run-9", 60)  # a run acting on the host (a release, say)
    held = _guarded_repair(settings, store, rec, "me", {"host": "app1"}, {})
    assert held is not None and held.outcome == "repair_failed" and "locked" in held.found[0] and called == []
    locks.release(["host:app1"], "run-9")

    store.put(BREAKERS, rec.action, {"action": rec.action, "failures": 0, "open_until": 9e12})
    opened = _guarded_repair(settings, store, rec, "me", {"host": "app1"}, {})
    assert opened is not None and "circuit breaker" in opened.found[0] and called == []
    store.delete(BREAKERS, rec.action)

    tried = _guarded_repair(settings, store, rec, "me", {"host": "app1"}, {})
    assert tried is not None and tried.outcome == "repair_failed" and called == ["ctn-1"]
    assert store.get(LOCKS, "host:app1") is None  # given back
    assert store.get(BREAKERS, rec.action).doc["failures"] == 1  # type: ignore[union-attr]  # counted

    ledger.released(store, settings, "ctn-1", "run run-9 (revert_isolate)")
    assert _guarded_repair(settings, store, rec, "me", {"host": "app1"}, {}) is None  # released: nothing to repair
    assert called == ["ctn-1"]
