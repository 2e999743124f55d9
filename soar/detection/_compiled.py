"""What a compilation produces, and the cache that keeps it — without importing pySigma.

Kept apart from :mod:`soar.detection._compile` so a warm ``soar rules convert`` (everything in
the cache) never pays for importing pySigma and its backends.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sqlite3
import threading
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from soar.errors import ContentError, SourceLocation
from soar.private import private_sqlite


@dataclass(frozen=True)
class CorrelationSpec:
    rule_id: str
    type: str
    rules: tuple[CompiledRule, ...]  # a base rule with its own ``correlation`` is a chained correlation
    group_by: tuple[str, ...]  # field names after the pipeline, or alias names (Sigma ``aliases``)
    timespan: int
    op: str | None
    count: float
    field: str | None = None
    # Base rule id -> the event fields behind group_by for that rule, when an alias names them.
    rule_fields: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)

    def fields_of(self, rule_id: str) -> tuple[str, ...]:
        """The fields holding the group-by values in the events of base rule ``rule_id``."""
        return self.rule_fields.get(rule_id, self.group_by)

    @property
    def reach(self) -> int:
        """Seconds before a match's last event that its events (through every chained correlation) can lie."""
        return self.timespan + max((r.correlation.reach for r in self.rules if r.correlation is not None), default=0)


@dataclass(frozen=True)
class CompiledRule:
    rule_id: str
    title: str
    level: str | None
    tags: tuple[str, ...]
    path: str
    target: str
    pipelines: tuple[str, ...]
    query: str | None = None
    dsl: dict[str, Any] | None = None
    sql: str | None = None
    correlation: CorrelationSpec | None = None
    name: str | None = None
    # The real sources the query searches (pipelines/sources.yml), and those left out with the reason.
    sources: tuple[str, ...] = ()
    left_out: dict[str, str] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data (shares the ``dsl`` dict: no deep copy, this runs per rule on every convert)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["tags"] = list(self.tags)
        out["pipelines"] = list(self.pipelines)
        out["sources"] = list(self.sources)
        spec = self.correlation
        if spec is not None:
            out["correlation"] = {f.name: getattr(spec, f.name) for f in fields(spec)}
            out["correlation"]["rules"] = [r.to_dict() for r in spec.rules]
            out["correlation"]["group_by"] = list(spec.group_by)
            out["correlation"]["rule_fields"] = {k: list(v) for k, v in spec.rule_fields.items()}
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CompiledRule:
        data = dict(data)
        corr = data.pop("correlation", None)
        spec = None
        if corr is not None:
            corr = dict(corr)
            corr["rules"] = tuple(cls.from_dict(r) for r in corr["rules"])
            corr["group_by"] = tuple(corr["group_by"])
            corr["rule_fields"] = {k: tuple(v) for k, v in corr.get("rule_fields", {}).items()}
            spec = CorrelationSpec(**corr)
        data["tags"] = tuple(data["tags"])
        data["pipelines"] = tuple(data["pipelines"])
        data["sources"] = tuple(data.get("sources", ()))
        return cls(**data, correlation=spec)


def backend_versions() -> str:
    """The versions a compilation depends on, read from dist-info files (importing metadata costs a warm run)."""
    from soar._version import __version__, installed_version

    # The upstream pipelines selectable by name (sysmon, windows-*) come from their own distributions.
    dists = (
        "pysigma",
        "pysigma-backend-elasticsearch",
        "pysigma-backend-sqlite",
        "pysigma-pipeline-sysmon",
        "pysigma-pipeline-windows",
    )
    return ",".join([*(f"{d}={installed_version(d) or '?'}" for d in dists), f"soar={__version__}"])


def error_to_cache(path: Path, error: ContentError) -> list[Any]:
    """A refusal as cached: [message, file (None: the rule's own file, wherever it is now), line, column].

    The cache is keyed by content, not by path: the same rule elsewhere is refused at its new place.
    """
    where = error.source
    if where is None:
        return [error.message, None, None, None]
    other = None if Path(where.path) == path else str(where.path)
    return [error.message, other, where.line, where.column]


def error_from_cache(path: Path, cached: list[Any]) -> ContentError:
    message, other, line, column = cached
    return ContentError(message, SourceLocation(Path(other) if other is not None else path, line, column))


CACHE_FORMAT = "19"  # bump when what is stored, or how it is compiled, changes without a version change


class CompileCache:
    """Compiled rules on disk (SQLite), keyed by rule content, pipelines, target and library versions."""

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)
        self._db = sqlite3.connect(private_sqlite(self.directory / "compiled.sqlite"), check_same_thread=False)
        # A cache, not a record: a lost write only costs a recompilation, so no fsync per rule.
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.execute("CREATE TABLE IF NOT EXISTS compiled (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        self._db.commit()
        self._lock = threading.Lock()
        self._versions = backend_versions()

    def key(self, *parts: str) -> str:
        return hashlib.sha256("\x1f".join((*parts, self._versions, CACHE_FORMAT)).encode()).hexdigest()

    def get(self, key: str) -> Any | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM compiled WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def get_many(self, keys: list[str]) -> dict[str, Any]:
        """The cached values of ``keys`` that are present, in one query per 500 keys."""
        found: dict[str, Any] = {}
        with self._lock:
            for i in range(0, len(keys), 500):
                chunk = keys[i : i + 500]
                marks = ",".join("?" * len(chunk))
                sql = f"SELECT key, value FROM compiled WHERE key IN ({marks})"  # noqa: S608 - placeholders only
                found.update((k, json.loads(v)) for k, v in self._db.execute(sql, chunk))
        return found

    def put(self, key: str, value: Any) -> None:
        """Store a value; it is committed by :meth:`flush` (or :meth:`close`), once per batch."""
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO compiled (key, value) VALUES (?, ?)", (key, json.dumps(value)))

    def flush(self) -> None:
        with self._lock:
            self._db.commit()

    def close(self) -> None:
        self.flush()
        self._db.close()
