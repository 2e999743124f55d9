"""What soar keeps in its state directory is private from the first byte: folders 0700, files 0600."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from soar.config import load_settings
from soar.private import private_dir, private_file, write_private


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def permissive_umask() -> Iterator[None]:
    """umask 000: every mode below comes from how soar creates the file, not from the umask."""
    before = os.umask(0)
    try:
        yield
    finally:
        os.umask(before)


def test_a_folder_and_every_missing_parent_are_created_0700(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    folder = private_dir(tmp_path / "state" / "evidence" / "run-1")
    for path in (folder, folder.parent, folder.parent.parent):
        assert mode(path) == 0o700, path
    assert mode(tmp_path) == 0o755  # an existing parent is not soar's: untouched


def test_an_existing_loose_folder_is_tightened_but_a_shared_sticky_one_is_left(tmp_path: Path) -> None:
    loose = tmp_path / "state"
    loose.mkdir(mode=0o755)
    private_dir(loose)
    assert mode(loose) == 0o700
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    private_dir(shared)
    assert mode(shared) == 0o1777


def test_a_file_is_created_0600_or_tightened(tmp_path: Path) -> None:
    new = private_file(tmp_path / "new")
    assert mode(new) == 0o600 and new.read_bytes() == b""
    old = tmp_path / "old"
    old.write_text("kept")
    old.chmod(0o644)
    private_file(old)
    assert mode(old) == 0o600 and old.read_text() == "kept"


def test_the_state_database_and_its_journal_are_0600_in_a_0700_state_directory(tmp_path: Path) -> None:
    from soar.store import open_store

    settings = load_settings(state_dir=tmp_path / "state")
    store = open_store(settings)
    try:
        store.create("alerts", "a1", {"rule": "r"})  # a write: SQLite makes its -wal and -shm files
        db = settings.state_dir / "state.sqlite3"
        assert mode(settings.state_dir) == 0o700
        for path in (db, db.with_name("state.sqlite3-wal"), db.with_name("state.sqlite3-shm")):
            assert path.exists() and mode(path) == 0o600, path
    finally:
        store.close()


def test_a_state_database_made_world_readable_before_is_tightened_when_opened(tmp_path: Path) -> None:
    from soar.store.sqlite import SQLiteStore

    state = tmp_path / "state"
    first = SQLiteStore(state / "state.sqlite3")
    first.create("alerts", "a1", {"rule": "r"})
    first.close()
    state.chmod(0o755)
    for path in state.iterdir():
        path.chmod(0o644)
    again = SQLiteStore(state / "state.sqlite3")
    try:
        assert again.get("alerts", "a1") is not None
        assert mode(state) == 0o700
        assert {p.name: mode(p) for p in state.iterdir()} == {p.name: 0o600 for p in state.iterdir()}
    finally:
        again.close()


def test_the_compile_cache_and_evidence_are_private(tmp_path: Path) -> None:
    from soar.detection._compiled import CompileCache
    from soar.hosts.procedures import store_evidence

    cache = CompileCache(tmp_path / "state" / "compile-cache")
    cache.put(cache.key("rule"), {"q": 1})
    cache.flush()
    assert mode(tmp_path / "state") == 0o700 and mode(tmp_path / "state" / "compile-cache") == 0o700
    assert mode(tmp_path / "state" / "compile-cache" / "compiled.sqlite") == 0o600
    described = store_evidence(tmp_path / "state", "run-1", "web1", "triage", b"ps output")
    evidence = Path(described["path"])
    assert evidence.read_bytes() == b"ps output" and mode(evidence) == 0o600
    assert mode(evidence.parent) == 0o700 and mode(evidence.parent.parent) == 0o700
    with pytest.raises(FileExistsError):  # evidence is written once, never overwritten
        write_private(evidence, b"other")


def test_the_generated_audit_key_is_0600_in_0700_folders(tmp_path: Path) -> None:
    from soar.audit.keys import chain_key, key_path

    settings = load_settings(state_dir=tmp_path / "state")
    assert chain_key(settings, create=True)
    assert mode(key_path(settings)) == 0o600
    assert mode(key_path(settings).parent) == 0o700 and mode(settings.state_dir) == 0o700
