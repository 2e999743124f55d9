"""The exception guard (issue #15): a value that would except (almost) every event is refused.

Values are judged by what the matchers do with them: ``query.value_clause`` (a CIDR is a network on
an ``ip`` field, ``*``/``?`` make a wildcard query) and its embedded twin ``sources.excepted``.
"""

from __future__ import annotations

from typing import Any

import pytest

from soar.breadth import exception_value_problem
from soar.errors import InputError
from soar.review.feedback import TooBroad, decide_exception, parse_verdict
from soar.scheduler.query import exception_clauses
from soar.scheduler.sources import excepted
from soar.store.sqlite import SQLiteStore

ATTACKS = [
    "*",
    "?*",
    "**",
    "*?*?",
    " * ",
    "[!~]*",
    "[!~]",
    "[a-z]*[0-9]?",
    "[]]*",
    "\\*",
    "＊",  # fullwidth asterisk: NFKC makes it *
    "0.0.0.0/0",
    "::/0",
    "10.1.2.3/0",
    "0.0.0.0/1",
    "0.0.0.0/7",
    "::/15",
    "2000::/3",
    "::ffff:0:0/96",  # every IPv4-mapped address
    "::ffff:0:0/100",  # an IPv4 /4
    " 0.0.0.0/0 ",
]

NARROW = [
    "10.0.0.0/8",
    "192.0.2.7",
    "192.0.2.0/24",
    "2001:db8::/16",
    "backup-*",
    "*.corp.example",
    "svc_?",
    "a*b",
    "/tmp/x",
]


@pytest.mark.parametrize("value", ATTACKS)
def test_values_that_except_everything_are_refused(value: str) -> None:
    assert exception_value_problem(value) is not None
    with pytest.raises(InputError) as err:
        parse_verdict({"verdict": "fp", "exception": {"field": "source.ip", "values": ["192.0.2.7", value]}})
    assert "exception.values" in str(err.value) and repr(value) in str(err.value)
    assert "would except" in str(err.value)


@pytest.mark.parametrize("value", NARROW)
def test_narrow_values_pass(value: str) -> None:
    assert exception_value_problem(value) is None
    parsed = parse_verdict({"verdict": "fp", "exception": {"field": "source.ip", "values": [value]}})
    assert parsed.exception is not None and parsed.exception.values == [value]


def test_refusal_messages_say_why() -> None:
    assert "(almost) every address" in (exception_value_problem("0.0.0.0/0") or "")
    assert "/8 (IPv4) or /16 (IPv6)" in (exception_value_problem("0.0.0.0/1") or "")
    assert "literal characters" in (exception_value_problem("[!~]*") or "")


def _exc(values: list[Any], status: str = "approved") -> dict[str, Any]:
    return {"id": "exc-1", "status": status, "rule_id": None, "field": "user.name", "values": values}


def test_stored_over_broad_values_are_never_applied() -> None:
    # an exception stored before the guard (or by hand) keeps its narrow values only
    clauses = exception_clauses([_exc(["*", "[!~]*", "svc_backup"])], "rule-1")
    assert clauses == [{"term": {"user.name": {"value": "svc_backup", "case_insensitive": True}}}]
    ip = exception_clauses([{**_exc(["0.0.0.0/0", "::/0", "192.0.2.0/24"]), "field": "source.ip"}], "rule-1")
    assert ip == [{"term": {"source.ip": "192.0.2.0/24"}}]
    assert not excepted({"user.name": "alice"}, [_exc(["*", "?*", "[!~]*"])], "rule-1")
    assert excepted({"user.name": "svc_backup"}, [_exc(["*", "svc_*"])], "rule-1")
    assert not excepted({"source.ip": "203.0.113.9"}, [{**_exc(["0.0.0.0/0"]), "field": "source.ip"}], "rule-1")
    assert excepted({"source.ip": "192.0.2.9"}, [{**_exc(["192.0.2.0/24"]), "field": "source.ip"}], "rule-1")


def test_embedded_matcher_reads_brackets_like_elasticsearch() -> None:
    # Elasticsearch's wildcard query has no character classes: [ is a literal character
    assert not excepted({"user.name": "alice"}, [_exc(["[a]lic*"])], "rule-1")
    assert excepted({"user.name": "[a]lice"}, [_exc(["[a]lic*"])], "rule-1")


def test_approving_a_stored_over_broad_exception_is_refused(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from soar.access import Principal
    from soar.config import Settings

    admin = Principal("admin", frozenset({"admin"}))
    store = SQLiteStore(tmp_path / "state.sqlite3")
    store.create("exceptions", "exc-1", _exc(["svc_backup", "[!~]*"], status="proposed"))
    settings = Settings(state_dir=tmp_path)  # type: ignore[call-arg]
    with pytest.raises(TooBroad, match=r"exception exc-1: the value '\[!~\]\*' would except every event"):
        decide_exception(store, settings, "exc-1", principal=admin, approve=True)
    assert store.get("exceptions", "exc-1").doc["status"] == "proposed"  # type: ignore[union-attr]
    rejected = decide_exception(store, settings, "exc-1", principal=admin, approve=False)
    assert rejected["status"] == "rejected"
