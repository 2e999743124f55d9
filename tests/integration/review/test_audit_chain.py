"""The audit chain on both real stores: appends race safely, and every kind of tampering is named."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch

from soar.audit import export_bundle, iter_entries, record, verify
from soar.audit.chain import HEAD_ID, HEAD_KIND, KIND, seq_id
from soar.config import Settings, load_settings
from soar.errors import InputError
from soar.store import Store
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
    yield ElasticsearchStore(es, prefix)
    es.options(ignore_status=404).indices.delete(index=f"{prefix}-state-*")
    es.options(ignore_status=404).indices.delete_index_template(name=f"{prefix}-state")


def _fill(store: Store, settings: Settings, n: int = 6) -> list[dict[str, object]]:
    return [
        record(store, actor=f"user{i % 2}", action="step", target=f"run-{i}", details={"i": i}, settings=settings)
        for i in range(n)
    ]


def test_intact_chain_verifies(store: Store, settings: Settings) -> None:
    entries = _fill(store, settings)
    assert [e["seq"] for e in entries] == [1, 2, 3, 4, 5, 6]
    assert entries[1]["prev_hash"] == entries[0]["hash"]
    result = verify(store, settings)
    assert result.ok, result.findings
    assert result.entries == 6
    assert result.head_hash == entries[-1]["hash"]


def test_modified_entry_is_named(store: Store, settings: Settings) -> None:
    _fill(store, settings)
    rec = store.get(KIND, seq_id(3))
    assert rec is not None
    store.put(KIND, seq_id(3), {**rec.doc, "actor": "mallory"})
    result = verify(store, settings)
    assert not result.ok
    assert [(f.seq, f.problem) for f in result.findings] == [(3, "modified")]
    assert "entry 3 modified" in result.findings[0].message


def test_removed_entry_is_named(store: Store, settings: Settings) -> None:
    _fill(store, settings)
    store.delete(KIND, seq_id(4))
    result = verify(store, settings)
    assert [(f.seq, f.problem) for f in result.findings] == [(4, "removed")]


def test_removed_tail_is_named(store: Store, settings: Settings) -> None:
    _fill(store, settings)
    store.delete(KIND, seq_id(5))
    store.delete(KIND, seq_id(6))
    result = verify(store, settings)
    assert [(f.seq, f.problem) for f in result.findings] == [(5, "truncated")]
    assert "entry 5-6 removed" in result.findings[0].message


def test_reordered_entries_are_named(store: Store, settings: Settings) -> None:
    _fill(store, settings)
    a, b = store.get(KIND, seq_id(2)), store.get(KIND, seq_id(3))
    assert a is not None and b is not None
    store.put(KIND, seq_id(2), b.doc)
    store.put(KIND, seq_id(3), a.doc)
    result = verify(store, settings)
    assert {(f.seq, f.problem) for f in result.findings} == {(2, "reordered"), (3, "reordered")}


def test_rewritten_and_rehashed_entry_is_caught_by_the_next_link(store: Store, settings: Settings) -> None:
    """Someone who recomputes the edited entry's own hash (no key) is named, and breaks the next link."""
    from soar.audit.chain import entry_hash

    _fill(store, settings)
    rec = store.get(KIND, seq_id(2))
    assert rec is not None
    forged = {**rec.doc, "details": {"i": 99}}
    forged["hash"] = entry_hash(forged, None)
    store.put(KIND, seq_id(2), forged)
    result = verify(store, settings)
    assert [(f.seq, f.problem) for f in result.findings] == [(2, "rechained"), (3, "modified")]


def test_hmac_keyed_chain_refuses_an_unkeyed_forgery(store: Store, tmp_path: Path) -> None:
    keyed = load_settings(state_dir=tmp_path / "s", audit_hmac_key="k3y-for-the-audit-chain")
    _fill(store, keyed, 3)
    assert verify(store, keyed).ok
    # without the key (none configured, none in the state directory) only the links can be checked
    lost = verify(store, load_settings(state_dir=tmp_path / "s"))
    assert [(f.seq, f.problem) for f in lost.findings] == [(0, "unkeyed")] and not lost.keyed
    assert "audit_hmac_key is unset" in lost.findings[0].message and not (tmp_path / "s" / "audit").exists()
    from soar.audit.chain import entry_hash

    rec = store.get(KIND, seq_id(3))
    assert rec is not None
    forged = {**rec.doc, "actor": "mallory"}
    forged["hash"] = entry_hash(forged, b"a guessed key")
    store.put(KIND, seq_id(3), forged)
    assert [(f.seq, f.problem) for f in verify(store, keyed).findings] == [(3, "modified")]


def test_concurrent_writers_keep_one_chain(store: Store, settings: Settings) -> None:
    # the first append creates the indices; racing index creation is the store's concern, not the chain's
    record(store, actor="setup", action="start", settings=settings)
    errors: list[BaseException] = []

    def writer(w: int) -> None:
        try:
            for i in range(5):
                record(store, actor=f"worker-{w}", action="step", details={"i": i}, settings=settings)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    entries = list(iter_entries(store))
    assert [e["seq"] for e in entries] == list(range(1, 22))
    assert verify(store, settings).ok
    head = store.get(HEAD_KIND, HEAD_ID)
    assert head is not None and head.doc["seq"] == 21


def test_secrets_never_reach_entries(store: Store, tmp_path: Path) -> None:
    s = load_settings(state_dir=tmp_path / "s", slack_bot_token="xoxb-very-secret-token-123")
    entry = record(
        store,
        actor="automation",
        action="config.changed",
        details={"note": "token xoxb-very-secret-token-123 rotated", "password": "hunter2!", "n": 1},
        settings=s,
    )
    stored = store.get(KIND, seq_id(entry["seq"]))
    assert stored is not None
    text = json.dumps(stored.doc)
    assert "xoxb-very-secret-token-123" not in text and "hunter2!" not in text
    assert stored.doc["details"]["n"] == 1
    assert verify(store, s).ok


def test_export_bundle_writes_json_and_html(store: Store, settings: Settings, tmp_path: Path) -> None:
    record(store, actor="alice", action="verdict", target="<script>alert(1)</script>", settings=settings)
    record(store, actor="automation", action="run.finished", target="run-1", settings=settings)
    out = tmp_path / "evidence" / "bundle.json"
    now = datetime.now(UTC)
    result = export_bundle(store, settings, out, start=now - timedelta(hours=1), end=now + timedelta(hours=1))
    bundle = json.loads(out.read_text())
    assert bundle["count"] == 2 and bundle["verification"]["ok"] is True
    assert result["sha256"] and bundle["entries_sha256"]
    html = out.with_suffix(".html").read_text()
    assert "Intact: 2 entries" in html
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html


def test_export_range_the_wrong_way_writes_nothing(store: Store, settings: Settings, tmp_path: Path) -> None:
    out = tmp_path / "bundle.json"
    now = datetime.now(UTC)
    with pytest.raises(InputError, match="is after the end"):
        export_bundle(store, settings, out, start=now, end=now - timedelta(days=1))
    assert not out.exists() and not out.with_suffix(".html").exists()


def test_appending_after_a_deleted_tail_keeps_the_gap_visible(store: Store, settings: Settings, tmp_path: Path) -> None:
    """A writer that did not see the deletion (a fresh process) must not silently refill the slot."""
    _fill(store, settings, 4)
    store.delete(KIND, seq_id(4))
    if isinstance(store, SQLiteStore):
        fresh: Store = SQLiteStore(store.path)
    else:
        fresh = ElasticsearchStore(store.client, store.prefix)  # type: ignore[attr-defined]
    entry = record(fresh, actor="later", action="step", settings=settings)
    assert entry["seq"] == 5
    assert [(f.seq, f.problem) for f in verify(fresh, settings).findings] == [(4, "removed")]


def test_a_replaced_last_entry_is_caught_by_the_head(store: Store, settings: Settings) -> None:
    from soar.audit.chain import entry_hash

    entries = _fill(store, settings, 3)
    forged = {**entries[-1], "actor": "mallory"}
    forged["hash"] = entry_hash(forged, None)
    store.put(KIND, seq_id(3), forged)
    assert [(f.seq, f.problem) for f in verify(store, settings).findings] == [(3, "rechained")]
