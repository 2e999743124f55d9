"""Console sessions: server-side, expiring, ended by sign-out or by a change of the principal's token."""

from __future__ import annotations

from pathlib import Path

from soar.config import load_settings
from soar.console import sessions
from soar.store.sqlite import SQLiteStore

PRINCIPALS = """
principals:
  - {name: alice, token: alice-token-0123456789, roles: [approver]}
"""


def _setup(tmp_path: Path, text: str = PRINCIPALS) -> tuple[SQLiteStore, object]:
    tokens = tmp_path / "tokens.yml"
    tokens.write_text(text)
    return SQLiteStore(tmp_path / "s.sqlite3"), load_settings(api_tokens_file=tokens, state_dir=tmp_path / "state")


def test_a_session_lasts_its_lifetime_and_no_longer(tmp_path: Path) -> None:
    from soar.access import load_principals

    store, settings = _setup(tmp_path)
    alice = load_principals(settings).items[0]  # type: ignore[arg-type]
    raw, session = sessions.start(store, alice, now=1000.0)
    found = sessions.lookup(store, settings, raw, now=1000.0 + sessions.LIFETIME - 1)  # type: ignore[arg-type]
    assert found is not None and found.principal.name == "alice" and found.csrf == session.csrf
    assert sessions.lookup(store, settings, raw, now=1000.0 + sessions.LIFETIME) is None  # type: ignore[arg-type]
    assert store.count(sessions.KIND) == 0  # an expired session is deleted when met
    sessions.start(store, alice, now=0.0)  # one nobody comes back with ...
    sessions.start(store, alice, now=sessions.LIFETIME + 1.0)  # ... is swept by the next sign-in after it expired
    assert store.count(sessions.KIND) == 1


def test_the_store_keeps_no_cookie_and_sign_out_ends_it(tmp_path: Path) -> None:
    from soar.access import load_principals

    store, settings = _setup(tmp_path)
    raw, _ = sessions.start(store, load_principals(settings).items[0])  # type: ignore[arg-type]
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("s.sqlite3*"))
    assert raw.encode() not in stored and len(stored) > 0
    assert sessions.lookup(store, settings, "x" + raw) is None  # type: ignore[arg-type]
    sessions.end(store, raw)
    assert sessions.lookup(store, settings, raw) is None  # type: ignore[arg-type]


def test_a_changed_token_ends_the_session(tmp_path: Path) -> None:
    from soar.access import load_principals

    store, settings = _setup(tmp_path)
    raw, _ = sessions.start(store, load_principals(settings).items[0])  # type: ignore[arg-type]
    (tmp_path / "tokens.yml").write_text(PRINCIPALS.replace("alice-token-0123456789", "alice-token-rotated-999"))
    assert sessions.lookup(store, settings, raw) is None  # type: ignore[arg-type]
