"""The embedded event store: ECS events in SQLite, searched with compiled Sigma SQL.

One row per event: ``doc`` is the event as given, ``flat`` the same event as one JSON object
of dotted field names (``{"process.args": ["sh", "-c"], ...}``) that the compiled SQL reads
through ``json_each``, and ``ts`` the ``@timestamp`` in epoch seconds for correlations.
Regular expressions and CIDR matching are SQL functions registered on the connection.
"""

from __future__ import annotations

import ipaddress
import json
import re
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import re2

from soar.detection._correlate import CorrelationEvent, chained_events, evaluate_correlation, group_key
from soar.detection._regex import search as regex_search
from soar.errors import InputError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    ts REAL,
    doc TEXT NOT NULL,
    flat TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_ts ON events (ts);
"""


def flatten(event: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested ECS objects to dotted names; lists of scalars stay lists, lists of objects are flattened per key."""
    out: dict[str, Any] = {}
    for key, value in event.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}."))
        elif isinstance(value, list) and any(isinstance(v, Mapping) for v in value):
            for item in value:
                if isinstance(item, Mapping):
                    for sub, sub_value in flatten(item, f"{name}.").items():
                        _append(out, sub, sub_value)
                else:
                    _append(out, name, item)
        else:
            _append(out, name, value)
    return out


def _append(out: dict[str, Any], name: str, value: Any) -> None:
    if name not in out:
        out[name] = value
        return
    existing = out[name]
    merged = existing if isinstance(existing, list) else [existing]
    merged.extend(value if isinstance(value, list) else [value])
    out[name] = merged


def parse_timestamp(value: Any) -> float | None:
    """Epoch seconds of an ISO 8601 ``@timestamp`` (or a number of epoch milliseconds)."""
    if value is None:
        return None
    if isinstance(value, int | float):
        return float(value) / 1000.0
    text = str(value).strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        from datetime import UTC

        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def _sql_regexp(pattern: str, value: Any) -> int:
    """``|re``: RE2, linear in the value (an attacker-written command line cannot make it backtrack)."""
    if value is None:
        return 0
    try:
        return 1 if regex_search(pattern, str(value)) else 0
    except re2.error:  # refused when the rule compiled (see soar.detection._regex); never raised here
        return 0


# Words as Elasticsearch's standard tokenizer cuts them (Unicode UAX #29, approximated): letters and
# digits, joined by '.', ':' or an apostrophe between two letters, by '.', an apostrophe, ',' or ';' between
# two digits (c9'é is two words there: a digit, an apostrophe, a letter).
_WORD = re.compile(r"\w+(?:(?:(?<=[^\W\d_])[.'\u2019:](?=[^\W\d_])|(?<=\d)[.'\u2019,;](?=\d))\w+)*")


@lru_cache(maxsize=4096)
def words(text: str) -> tuple[str, ...]:
    """The lower-cased tokens Elasticsearch indexes for ``text`` on a full-text (standard analyser) field."""
    # A run of underscores alone is no word there (UAX #29 emits no token without a letter or digit).
    return tuple(w.lower() for w in _WORD.findall(text) if any(c.isalnum() for c in w))


def _sql_phrase(value: Any, phrase: str) -> int:
    """1 when the words of ``phrase`` occur in ``value`` in that order, next to each other (``match_phrase``)."""
    if not isinstance(value, str):
        return 0
    want, have = words(phrase), words(value)
    if not want:
        return 0
    n = len(want)
    return 1 if any(have[i : i + n] == want for i in range(len(have) - n + 1)) else 0


@lru_cache(maxsize=512)
def _network(cidr: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(cidr, strict=False)


def address(value: Any) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An IP address as an Elasticsearch ``ip`` field holds it: IPv4-mapped IPv6 (::ffff:10.0.0.1) is IPv4."""
    if value is None or isinstance(value, bool):
        return None
    try:
        parsed = ipaddress.ip_address(str(value))
    except ValueError:
        return None
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        return parsed.ipv4_mapped
    return parsed


def _sql_cidr(value: Any, cidr: str) -> int:
    found = address(value)
    return 1 if found is not None and found in _network(cidr) else 0


def _sql_same_address(value: Any, wanted: str) -> int:
    """An ``ip`` field equals an address however either is written (2001:DB8:0::1 is 2001:db8::1)."""
    found = address(value)
    return 1 if found is not None and found == address(wanted) else 0


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def ascii_lower(text: str) -> str:
    """Fold ASCII letters only: Elasticsearch's ``case_insensitive`` queries fold exactly these (É stays É)."""
    return text.translate(_ASCII_LOWER)


def _nocase(a: str, b: str) -> int:
    la, lb = ascii_lower(a), ascii_lower(b)
    return (la > lb) - (la < lb)


@lru_cache(maxsize=1024)
def _like_regex(pattern: str, escape: str | None) -> re.Pattern[str]:
    out: list[str] = []
    chars = iter(pattern)
    for char in chars:
        if escape is not None and char == escape:
            out.append(re.escape(next(chars, "")))
        elif char == "%":
            out.append(".*")
        elif char == "_":
            out.append(".")
        else:
            out.append(re.escape(char))
    return re.compile("".join(out), re.DOTALL)


def _sql_like(pattern: Any, value: Any, escape: Any = None) -> int | None:
    """SQL ``value LIKE pattern [ESCAPE e]`` folding ASCII letters, as Elasticsearch's ``case_insensitive`` does."""
    if pattern is None or value is None:
        return None
    return 1 if _like_regex(ascii_lower(str(pattern)), escape).fullmatch(ascii_lower(str(value))) else 0


class EventStore:
    """ECS events in SQLite (``":memory:"`` or a file); ids are 0-based in insertion order."""

    def __init__(self, path: str | Path = ":memory:") -> None:
        self.path = str(path)
        self.db = sqlite3.connect(self.path, check_same_thread=False)
        self.db.create_function("soar_regexp", 2, _sql_regexp, deterministic=True)
        self.db.create_function("soar_cidr", 2, _sql_cidr, deterministic=True)
        self.db.create_function("soar_same_address", 2, _sql_same_address, deterministic=True)
        self.db.create_function("soar_phrase", 2, _sql_phrase, deterministic=True)
        self.db.create_function("like", 3, _sql_like, deterministic=True)
        self.db.create_function("like", 2, _sql_like, deterministic=True)
        self.db.create_collation("soar_nocase", _nocase)
        self.db.executescript(_SCHEMA)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> EventStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def insert(self, events: Iterable[Mapping[str, Any]]) -> list[int]:
        """Store events; return their ids."""
        rows = []
        start = self._next_id()
        for i, event in enumerate(events):
            if not isinstance(event, Mapping):
                raise InputError(f"event {i}: must be a JSON object, got {type(event).__name__}")
            flat = flatten(event)
            rows.append(
                (
                    start + i,
                    parse_timestamp(flat.get("@timestamp")),
                    json.dumps(event, default=str),
                    json.dumps(flat, default=str),
                )
            )
        with self.db:
            self.db.executemany("INSERT INTO events (id, ts, doc, flat) VALUES (?, ?, ?, ?)", rows)
        return [row[0] for row in rows]

    def _next_id(self) -> int:
        (max_id,) = self.db.execute("SELECT COALESCE(MAX(id) + 1, 0) FROM events").fetchone()
        return int(max_id)

    def count(self) -> int:
        (n,) = self.db.execute("SELECT COUNT(*) FROM events").fetchone()
        return int(n)

    def search_sql(self, where: str, ids: Sequence[int] | None = None) -> list[int]:
        """Ids of the events matching a compiled WHERE expression (optionally only among ``ids``)."""
        sql = f"SELECT id FROM events WHERE ({where})"  # noqa: S608 - compiled by pySigma from a rule, values quoted
        params: list[Any] = []
        if ids is not None:
            sql += f" AND id IN ({','.join('?' * len(ids))})"
            params = list(ids)
        sql += " ORDER BY id"
        try:
            return [int(row[0]) for row in self.db.execute(sql, params)]
        except sqlite3.Error as exc:
            raise InputError(f"embedded query failed: {exc}") from exc

    def search(self, compiled: Any, ids: Sequence[int] | None = None) -> list[int]:
        """Ids of the events matching a non-correlation CompiledRule."""
        if compiled.query is None:
            raise InputError(f"rule {compiled.rule_id}: a correlation rule has no single query; use correlate()")
        return self.search_sql(compiled.query, ids)

    def events(self, ids: Sequence[int]) -> list[dict[str, Any]]:
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        rows = dict(self.db.execute(f"SELECT id, doc FROM events WHERE id IN ({marks})", list(ids)).fetchall())  # noqa: S608
        return [json.loads(rows[i]) for i in ids if i in rows]

    def flat(self, event_id: int) -> dict[str, Any]:
        row = self.db.execute("SELECT flat FROM events WHERE id = ?", (event_id,)).fetchone()
        return dict(json.loads(row[0])) if row else {}


def correlation_events(store: EventStore, spec: Any, ids: Sequence[int] | None = None) -> list[CorrelationEvent]:
    """The events of a correlation's base rules, as the pure evaluator wants them (a chained base: its matches)."""
    out: list[CorrelationEvent] = []
    for base in spec.rules:
        if base.correlation is not None:
            inner = evaluate_correlation(base.correlation, correlation_events(store, base.correlation, ids))
            out.extend(chained_events(spec, base.rule_id, inner))
            continue
        fields = spec.fields_of(base.rule_id)
        for event_id in store.search(base, ids):
            flat = store.flat(event_id)
            ts = parse_timestamp(flat.get("@timestamp"))
            if ts is None:
                continue
            value = flat.get(spec.field) if spec.field else None
            out.append(CorrelationEvent(base.rule_id, ts, group_key(flat, fields), value, event_id))
    return out
