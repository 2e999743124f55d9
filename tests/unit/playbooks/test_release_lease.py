"""Giving a run's lease back after the holder's own save lost a race: only while the lease is still ours."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from soar.clock import FakeClock
from soar.playbooks.records import RUNS
from soar.playbooks.runner import _release_lease
from soar.playbooks.state import HeldRun
from soar.records import Lease, PlaybookRef, Run
from soar.store.sqlite import SQLiteStore


def _held(tmp_path: Path, owner: str) -> tuple[SQLiteStore, HeldRun]:
    store = SQLiteStore(tmp_path / "state.sqlite3")
    run = Run(
        id="run-1",
        playbook=PlaybookRef("p"),
        alert_id="a1",
        status="running",
        lease=Lease(owner, time.time() + 30),
    )
    rec = store.put(RUNS, "run-1", run.to_doc())
    rt: Any = SimpleNamespace(store=store, clock=FakeClock())
    return store, HeldRun(rt, rec, owner)


def test_a_lost_save_still_gives_the_lease_back_on_the_stored_run(tmp_path: Path) -> None:
    store, run = _held(tmp_path, "w1")
    store.mutate(RUNS, "run-1", lambda doc: {**doc, "note": "written meanwhile"})  # our version is stale now
    run.record.status = "failed"  # not saved
    _release_lease(run)
    stored = store.get(RUNS, "run-1")
    assert stored is not None and stored.doc["lease"] is None and stored.doc["note"] == "written meanwhile"
    assert stored.doc["status"] == "running"  # what we had not saved is not forced over the newer run
    assert run.record.to_doc() == stored.doc and run.version == stored.version  # the held run follows the stored one


def test_a_lease_taken_over_meanwhile_is_left_to_its_new_holder(tmp_path: Path) -> None:
    store, run = _held(tmp_path, "w1")
    store.mutate(RUNS, "run-1", lambda doc: {**doc, "lease": {"owner": "w2", "until": time.time() + 30}})
    _release_lease(run)
    stored = store.get(RUNS, "run-1")
    assert stored is not None and stored.doc["lease"]["owner"] == "w2"


def test_an_uncontested_release_saves_the_run_without_the_lease(tmp_path: Path) -> None:
    store, run = _held(tmp_path, "w1")
    run.record.status = "waiting_approval"
    _release_lease(run)
    stored = store.get(RUNS, "run-1")
    assert stored is not None and stored.doc["lease"] is None and stored.doc["status"] == "waiting_approval"
