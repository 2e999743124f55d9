"""An attacker with write access to the store, on both real stores: every kind of tampering is named.

The chain is keyed by default (a key generated into the state directory) and its head is
checkpointed outside the store, so cutting the tail together with the head, rewinding the
head, wiping the log and re-chaining without the key are all caught — by ``soar audit verify``,
one line per finding and exit 3.
"""

from __future__ import annotations

import getpass
import json
import stat
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import Elasticsearch

from soar.audit import iter_entries, record, verify
from soar.audit.chain import HEAD_ID, HEAD_KIND, KIND, entry_hash, seq_id
from soar.audit.keys import checkpoint_path, flush_checkpoints, key_path
from soar.config import Settings, load_settings
from soar.store import Store
from soar.store.elastic import ElasticsearchStore
from soar.store.sqlite import SQLiteStore
from tests.conftest import REPO_ROOT
from tests.unit.detection.helpers import run_cli


@dataclass
class Chain:
    store: Store
    settings: Settings
    env: dict[str, str]
    head_at_4: dict[str, Any]  # the real head document when the log had 4 entries (an attacker's copy)


@pytest.fixture(params=["sqlite", "elasticsearch"])
def chain(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Chain]:
    """Six keyed entries (no key configured: one is generated), checkpointed after every append."""
    state = tmp_path / "state"
    env = {
        "SOAR_STATE_DIR": str(state),
        "SOAR_CONTENT_ROOT": str(REPO_ROOT),
        "SOAR_STORE": request.param,
        "SOAR_AUDIT_CHECKPOINT_EVERY": "1",
    }
    es: Elasticsearch | None = None
    prefix = f"soar-test-{uuid.uuid4().hex[:10]}"
    if request.param == "sqlite":
        store: Store = SQLiteStore(state / "state.sqlite3")
    else:
        es = request.getfixturevalue("es")
        store = ElasticsearchStore(es, prefix)
        env["SOAR_INDEX_PREFIX"] = prefix
    settings = load_settings(
        state_dir=state, content_root=REPO_ROOT, store=request.param, index_prefix=prefix, audit_checkpoint_every=1
    )
    for i in range(6):
        record(store, actor=f"user{i % 2}", action="step", target=f"run-{i}", details={"i": i}, settings=settings)
        if i == 3:
            head = store.get(HEAD_KIND, HEAD_ID)
            assert head is not None
            head_at_4 = dict(head.doc)
    yield Chain(store, settings, env, head_at_4)
    if es is None:
        store.close()  # (an Elasticsearch store's close would close the shared client)
    else:
        es.options(ignore_status=404).indices.delete(index=f"{prefix}-state-*")
        es.options(ignore_status=404).indices.delete_index_template(name=f"{prefix}-state")


def _doc(c: Chain, seq: int) -> dict[str, Any]:
    rec = c.store.get(KIND, seq_id(seq))
    assert rec is not None
    return dict(rec.doc)


def edit(c: Chain) -> None:
    c.store.put(KIND, seq_id(3), {**_doc(c, 3), "actor": "mallory"})


def delete_middle(c: Chain) -> None:
    c.store.delete(KIND, seq_id(3))


def reorder(c: Chain) -> None:
    a, b = _doc(c, 2), _doc(c, 3)
    c.store.put(KIND, seq_id(2), b)
    c.store.put(KIND, seq_id(3), a)


def truncate_tail(c: Chain) -> None:
    """Cut entries 5-6 and put back the real head of when the log ended at 4: the store is consistent."""
    c.store.delete(KIND, seq_id(5))
    c.store.delete(KIND, seq_id(6))
    c.store.put(HEAD_KIND, HEAD_ID, c.head_at_4)


def wipe(c: Chain) -> None:
    for seq in range(1, 7):
        c.store.delete(KIND, seq_id(seq))
    c.store.delete(HEAD_KIND, HEAD_ID)


def rewind_head(c: Chain) -> None:
    c.store.put(HEAD_KIND, HEAD_ID, c.head_at_4)


def rechain_without_key(c: Chain) -> None:
    """Edit entry 3, re-hash it and every later entry (plain SHA-256: no key), and fix the head."""
    prev = _doc(c, 2)["hash"]
    for seq in range(3, 7):
        doc = _doc(c, seq)
        if seq == 3:
            doc["actor"] = "mallory"
        doc.update(prev_hash=prev, alg="sha256")
        doc["hash"] = prev = entry_hash(doc, None)
        c.store.put(KIND, seq_id(seq), doc)
    c.store.put(HEAD_KIND, HEAD_ID, {"seq": 6, "hash": prev})


def junk_row(c: Chain) -> None:
    c.store.put(KIND, "zz-not-an-entry", {"hello": "world"})


# each case: what the attacker does, the problem verify names, and words of its line
CASES: dict[str, tuple[Callable[[Chain], None], set[str], str]] = {
    "edit": (edit, {"modified"}, "entry 3 modified"),
    "delete_middle": (delete_middle, {"removed"}, "entry 3 removed"),
    "reorder": (reorder, {"reordered"}, "entry 2 reordered"),
    "truncate_tail": (truncate_tail, {"truncated"}, "entry 5-6 removed: the log ends at 4, but the checkpoint"),
    "wipe": (wipe, {"wiped"}, "audit log wiped: the store holds no entries, but the checkpoint"),
    "rewind_head": (rewind_head, {"rewound"}, "head anchor rewound to entry 4: the entries run to 6"),
    "rechain_without_key": (rechain_without_key, {"rechained", "head"}, "entry 3-6 re-chained without the key"),
    "junk_row": (junk_row, {"junk"}, "junk row 'zz-not-an-entry'"),
}


def test_untampered_chain_verifies_clean(chain: Chain, capsys: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    result = verify(chain.store, chain.settings)
    assert result.ok and result.keyed, result.findings
    assert result.entries == 6 and result.checkpoint_seq == 6
    cli = run_cli(capsys, monkeypatch, "audit", "verify", env=chain.env)
    assert cli.returncode == 0, cli.stdout + cli.stderr
    assert cli.stdout.startswith("audit log intact (HMAC-keyed): 6 entries") and "checkpoint at entry 6" in cli.stdout


@pytest.mark.parametrize("case", list(CASES))
def test_tampering_is_detected_and_named(chain: Chain, case: str, capsys: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    tamper, problems, words = CASES[case]
    tamper(chain)
    result = verify(chain.store, chain.settings)
    assert {f.problem for f in result.findings} == problems, result.findings
    cli = run_cli(capsys, monkeypatch, "audit", "verify", env=chain.env)
    assert cli.returncode == 3, cli.stdout + cli.stderr
    lines = cli.stdout.splitlines()
    tampered = [line for line in lines if line.startswith("TAMPERED: ")]
    assert len(tampered) == len(result.findings) and any(words in line for line in tampered), lines
    assert lines[-1].startswith(f"audit log NOT intact: {len(result.findings)} findings")


# -- the key, the checkpoint, the exports (SQLite: what they do does not depend on the store)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_key_is_generated_privately_once_and_a_configured_key_wins(
    tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "state"
    settings = load_settings(state_dir=state)
    store = SQLiteStore(state / "state.sqlite3")
    assert not key_path(settings).exists()
    assert verify(store, settings).ok and not key_path(settings).exists()  # verifying never makes a key
    record(store, actor="a", action="x", settings=settings)
    path = key_path(settings)
    key = path.read_text().strip()
    assert len(key) == 64 and _mode(path) == 0o600 and _mode(path.parent) == 0o700
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".")] == []  # no temporary left behind
    entry = record(store, actor="a", action="y", settings=load_settings(state_dir=state))
    assert entry["alg"] == "hmac-sha256" and path.read_text().strip() == key
    shown = run_cli(capsys, monkeypatch, "config", "show", "--json", env={"SOAR_STATE_DIR": str(state)})
    assert key not in shown.stdout + shown.stderr
    assert json.loads(shown.stdout)["audit_hmac_key"] == f"******** (generated: {path})"
    # a configured key wins: nothing generated, and the generated key no longer verifies its entries
    other = tmp_path / "other"
    configured = load_settings(state_dir=other, audit_hmac_key="configured-key-0123")
    store2 = SQLiteStore(other / "state.sqlite3")
    record(store2, actor="a", action="x", settings=configured)
    assert not key_path(configured).exists() and verify(store2, configured).ok
    store.close()
    store2.close()


def test_checkpoint_is_written_in_batches_and_at_the_end(tmp_path: Path) -> None:
    settings = load_settings(state_dir=tmp_path / "state", audit_checkpoint_every=3, audit_checkpoint_interval=3600)
    store = SQLiteStore(tmp_path / "state" / "state.sqlite3")
    for i in range(7):
        record(store, actor="a", action="x", details={"i": i}, settings=settings)
    path = checkpoint_path(settings)
    assert [json.loads(line)["seq"] for line in path.read_text().splitlines()] == [3, 6]
    assert _mode(path) == 0o600
    flush_checkpoints()  # what the timer and the process's exit do
    assert [json.loads(line)["seq"] for line in path.read_text().splitlines()] == [3, 6, 7]
    assert verify(store, settings).checkpoint_seq == 7
    store.close()


def test_export_is_audited_signed_and_verifiable(tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    state = tmp_path / "state"
    env = {"SOAR_STATE_DIR": str(state), "SOAR_CONTENT_ROOT": str(REPO_ROOT)}
    settings = load_settings(state_dir=state)
    store = SQLiteStore(state / "state.sqlite3")
    for i in range(3):
        record(store, actor="alice", action="verdict", target=f"a{i}", settings=settings)
    bundle_path = tmp_path / "evidence.json"
    out = run_cli(capsys, monkeypatch, "audit", "export", "--from", "1d", "--out", str(bundle_path), env=env)
    assert out.returncode == 0, out.stderr
    assert "signed (hmac-sha256, key id" in out.stdout
    last = list(iter_entries(store))[-1]
    assert last["action"] == "audit.exported" and last["actor"] == f"cli:{getpass.getuser()}"
    assert last["target"] == str(bundle_path) and last["details"]["count"] == 3
    assert last["details"]["os_user"] == getpass.getuser() and last["details"]["last_seq"] == 3

    good = run_cli(capsys, monkeypatch, "audit", "verify-bundle", str(bundle_path), env=env)
    assert good.returncode == 0 and good.stdout.startswith("bundle signature valid: 3 entries 1-3"), good.stdout

    bundle = json.loads(bundle_path.read_text())
    bundle["entries"][1]["actor"] = "mallory"
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps(bundle))
    bad = run_cli(capsys, monkeypatch, "audit", "verify-bundle", str(forged), env=env)
    assert bad.returncode == 3
    assert "BAD: the signature does not match" in bad.stdout and "BAD: entry 2 does not match its hash" in bad.stdout

    other = run_cli(
        capsys,
        monkeypatch,
        "audit",
        "verify-bundle",
        str(bundle_path),
        env={**env, "SOAR_STATE_DIR": str(tmp_path / "elsewhere")},
    )
    assert other.returncode == 3 and "no HMAC key" in other.stdout
    store.close()


def test_verify_while_appending_reports_nothing(tmp_path: Path) -> None:
    """Appends racing the walk (entry created, then head advanced, then checkpointed) are no tampering."""
    import threading

    settings = load_settings(state_dir=tmp_path / "state", audit_checkpoint_every=1)
    store = SQLiteStore(tmp_path / "state" / "state.sqlite3")
    record(store, actor="setup", action="start", settings=settings)
    done = threading.Event()

    def writer() -> None:
        for i in range(150):
            record(store, actor="w", action="step", details={"i": i}, settings=settings)
        done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    results = []
    while not done.is_set():
        results.append(verify(store, settings))
    thread.join()
    assert results and all(r.ok for r in results), [r.findings for r in results if not r.ok][:1]
    assert verify(store, settings).entries == 151
    store.close()


# -- a copy of the checkpoints off the host: syslog


def _collector(kind: str, tmp_path: Path) -> tuple[Any, str]:
    """A datagram socket standing in for a syslog daemon: a Unix socket path or a UDP host:port."""
    import socket

    if kind == "unix":
        path = str(tmp_path / "log.sock")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(path)
        return sock, path
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    return sock, f"127.0.0.1:{sock.getsockname()[1]}"


@pytest.mark.parametrize("kind", ["unix", "udp"])
def test_checkpoints_sent_to_syslog_catch_a_truncation_after_the_local_file_is_deleted(
    tmp_path: Path, kind: str, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    sock, address = _collector(kind, tmp_path)
    sock.settimeout(5)
    state = tmp_path / "state"
    env = {"SOAR_STATE_DIR": str(state), "SOAR_CONTENT_ROOT": str(REPO_ROOT), "SOAR_AUDIT_CHECKPOINT_EVERY": "1"}
    settings = load_settings(state_dir=state, audit_checkpoint_every=1, audit_checkpoint_syslog=address)
    store = SQLiteStore(state / "state.sqlite3")
    head_at_4: dict[str, Any] = {}
    for i in range(6):
        record(store, actor="alice", action="step", target=f"run-{i}", details={"i": i}, settings=settings)
        if i == 3:
            head_at_4 = dict(store.get(HEAD_KIND, HEAD_ID).doc)  # type: ignore[union-attr]
    received = [sock.recv(65536).decode() for _ in range(6)]
    sock.close()
    assert all(r.startswith("<85>soar-audit-checkpoint: {") for r in received), received
    # what a collector writes: its own timestamp and host before the message, among other programs' lines
    collected = tmp_path / "collector-auth.log"
    lines = [f"2026-12-06T14:0{n}:00+00:00 web1 {r.removeprefix('<85>')}" for n, r in enumerate(received)]
    collected.write_text("2026-12-06T14:00:00+00:00 web1 sshd[1]: Accepted publickey for alice\n" + "\n".join(lines))

    # the attacker cuts the tail, puts back the head of when the log ended at 4, and deletes the local checkpoints
    store.delete(KIND, seq_id(5))
    store.delete(KIND, seq_id(6))
    store.put(HEAD_KIND, HEAD_ID, head_at_4)
    checkpoint_path(settings).unlink()
    assert verify(store, settings).ok  # locally nothing is left that says the log was longer
    result = verify(store, settings, [collected])
    assert [f.problem for f in result.findings] == ["truncated"] and result.checkpoint_seq == 6
    cli = run_cli(capsys, monkeypatch, "audit", "verify", "--checkpoints", str(collected), env=env)
    assert cli.returncode == 3 and "TAMPERED: entry 5-6 removed: the log ends at 4" in cli.stdout, cli.stdout
    missing = run_cli(capsys, monkeypatch, "audit", "verify", "--checkpoints", str(tmp_path / "nope.log"), env=env)
    assert missing.returncode != 0 and "--checkpoints" in missing.stderr and "no such file" in missing.stderr
    store.close()


def test_a_bad_syslog_address_is_one_message_naming_the_setting() -> None:
    from soar.errors import ConfigError

    with pytest.raises(ConfigError, match="audit_checkpoint_syslog"):
        load_settings(audit_checkpoint_syslog="loghost")
