"""``Store.mutate(create=...)`` on the embedded store: create-or-update in one call, races included."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from soar.store import Conflict
from soar.store.sqlite import SQLiteStore


@pytest.fixture
def store(tmp_path: Path) -> SQLiteStore:
    return SQLiteStore(tmp_path / "state.sqlite3")


def _add(i: int) -> Any:
    return lambda doc: {**doc, "by": [*doc["by"], i]}


def test_a_missing_document_is_created_from_create_then_changed(store: SQLiteStore) -> None:
    first = store.mutate("breakers", "a", _add(1), create=lambda: {"by": []})
    assert first is not None and first.doc == {"by": [1]} and first.version == "1"
    second = store.mutate("breakers", "a", _add(2), create=lambda: {"by": []})
    assert second is not None and second.doc == {"by": [1, 2]}
    stored = store.get("breakers", "a")
    assert stored is not None and stored.version == second.version


def test_without_create_a_missing_document_stays_missing(store: SQLiteStore) -> None:
    assert store.mutate("breakers", "a", _add(1)) is None
    assert store.get("breakers", "a") is None


def test_a_change_that_leaves_a_missing_document_writes_nothing(store: SQLiteStore) -> None:
    assert store.mutate("breakers", "a", lambda doc: None, create=lambda: {"by": []}) is None
    assert store.get("breakers", "a") is None


def test_insert_returns_the_record_once(store: SQLiteStore) -> None:
    rec = store.insert("gaps", "g", {"n": 1})
    assert rec is not None and rec.doc == {"n": 1}
    assert store.insert("gaps", "g", {"n": 2}) is None
    assert store.create("gaps", "g", {"n": 3}) is False


def test_two_threads_that_both_find_it_missing_create_once_and_lose_nothing(store: SQLiteStore) -> None:
    """Both read "missing" before either writes (a barrier in create): one insert wins, the other becomes an update."""
    both_saw_missing = threading.Barrier(2, timeout=10)
    creates: list[int] = []
    errors: list[BaseException] = []

    def create() -> dict[str, Any]:
        creates.append(1)
        if len(creates) <= 2:
            both_saw_missing.wait()
        return {"by": []}

    def writer(i: int) -> None:
        try:
            store.mutate("bursts", "k", _add(i), create=create)
        except BaseException as exc:  # reported below: a thread's failure must fail the test
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(creates) == 2  # both took the create path; the loser retried on the winner's document
    final = store.get("bursts", "k")
    assert final is not None and sorted(final.doc["by"]) == [0, 1]


def test_many_writers_creating_and_updating_lose_no_change(store: SQLiteStore) -> None:
    def writer(i: int) -> None:
        for _ in range(5):
            store.mutate("bursts", "many", _add(i), create=lambda: {"by": []}, retries=500)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    final = store.get("bursts", "many")
    assert final is not None and sorted(final.doc["by"]) == sorted(list(range(6)) * 5)


def test_a_create_that_always_loses_raises_conflict_after_its_retries(tmp_path: Path) -> None:
    """Another writer creates the document between each read and insert (and it is gone by the next read)."""

    class Vanishing(SQLiteStore):
        def get(self, kind: str, id: str) -> Any:
            self.delete(kind, id)
            return None

    store = Vanishing(tmp_path / "state.sqlite3")

    def change(doc: dict[str, Any]) -> dict[str, Any]:
        store.put("bursts", "flaky", {"by": ["someone else"]})
        return {**doc, "by": [1]}

    with pytest.raises(Conflict, match="too many concurrent updates"):
        store.mutate("bursts", "flaky", change, create=lambda: {"by": []}, retries=3)
