"""The embedded store: one SQLite file, a table of JSON documents."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from soar.private import private_sqlite
from soar.store.base import Conflict, Mutates, Prefix, Range, Record, Where, check_field, check_kind, normalise_where

SCHEMA = """
CREATE TABLE IF NOT EXISTS docs (
    kind    TEXT NOT NULL,
    id      TEXT NOT NULL,
    version INTEGER NOT NULL,
    doc     TEXT NOT NULL,
    PRIMARY KEY (kind, id)
);
CREATE INDEX IF NOT EXISTS docs_status ON docs (kind, json_extract(doc, '$."status"'));
CREATE INDEX IF NOT EXISTS docs_time ON docs (kind, json_extract(doc, '$."@timestamp"'), id);
"""


def _json_expr(field: str) -> str:
    """``json_extract(doc, '<path>')`` with the path inline (not bound) so an expression index can serve it.

    Safe to inline: ``check_field`` admits no quote of either kind.
    """
    return f"json_extract(doc, '{_json_path(field)}')"


def _json_path(field: str) -> str:
    """A JSON path for SQLite's json_extract: each dotted segment quoted, so '@timestamp' works."""
    check_field(field)
    return "$" + "".join('."' + part.replace('"', "") + '"' for part in field.split("."))


def _dumps(doc: Mapping[str, Any]) -> str:
    return json.dumps(doc, sort_keys=True, default=str, ensure_ascii=False)


class SQLiteStore(Mutates):
    """A Store on SQLite; safe to share between threads (a connection per thread) and processes (WAL)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        if str(path) != ":memory:":
            private_sqlite(self.path)  # 0600 in a 0700 folder before SQLite opens it: never world-readable
        self._local = threading.local()
        self._conn().executescript(SCHEMA)

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(str(self.path), timeout=30, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=30000")
            self._local.conn = conn
        return conn

    def create(self, kind: str, id: str, doc: Mapping[str, Any]) -> bool:
        return self.insert(kind, id, doc) is not None

    def insert(self, kind: str, id: str, doc: Mapping[str, Any]) -> Record | None:
        row = (
            self._conn()
            .execute(
                "INSERT OR IGNORE INTO docs (kind, id, version, doc) VALUES (?, ?, 1, ?) RETURNING version",
                (check_kind(kind), id, _dumps(doc)),
            )
            .fetchone()
        )
        return Record(id, dict(doc), str(row[0])) if row else None

    def put(self, kind: str, id: str, doc: Mapping[str, Any]) -> Record:
        row = (
            self._conn()
            .execute(
                "INSERT INTO docs (kind, id, version, doc) VALUES (?, ?, 1, ?) "
                "ON CONFLICT (kind, id) DO UPDATE SET version = version + 1, doc = excluded.doc "
                "RETURNING version",
                (check_kind(kind), id, _dumps(doc)),
            )
            .fetchone()
        )
        return Record(id, dict(doc), str(row[0]))

    def put_many(self, kind: str, docs: Mapping[str, Mapping[str, Any]]) -> int:
        rows = [(check_kind(kind), id, _dumps(doc)) for id, doc in docs.items()]
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(
                "INSERT INTO docs (kind, id, version, doc) VALUES (?, ?, 1, ?) "
                "ON CONFLICT (kind, id) DO UPDATE SET version = version + 1, doc = excluded.doc",
                rows,
            )
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return len(rows)

    def put_many_if(self, kind: str, docs: Mapping[str, tuple[Mapping[str, Any], str | None]]) -> set[str]:
        check_kind(kind)
        lost: set[str] = set()
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")  # one transaction: the version checks and the writes see no other writer
        try:
            for id, (doc, version) in docs.items():
                if version is None:
                    cur = conn.execute(
                        "INSERT OR IGNORE INTO docs (kind, id, version, doc) VALUES (?, ?, 1, ?)",
                        (kind, id, _dumps(doc)),
                    )
                else:
                    cur = conn.execute(
                        "UPDATE docs SET version = version + 1, doc = ? WHERE kind = ? AND id = ? AND version = ?",
                        (_dumps(doc), kind, id, int(version)),
                    )
                if cur.rowcount != 1:
                    lost.add(id)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return lost

    def get(self, kind: str, id: str) -> Record | None:
        row = (
            self._conn()
            .execute("SELECT version, doc FROM docs WHERE kind = ? AND id = ?", (check_kind(kind), id))
            .fetchone()
        )
        return Record(id, json.loads(row[1]), str(row[0])) if row else None

    def update(self, kind: str, id: str, doc: Mapping[str, Any], *, version: str) -> Record:
        row = (
            self._conn()
            .execute(
                "UPDATE docs SET version = version + 1, doc = ? WHERE kind = ? AND id = ? AND version = ? "
                "RETURNING version",
                (_dumps(doc), check_kind(kind), id, int(version)),
            )
            .fetchone()
        )
        if row is None:
            raise Conflict(f"{kind}/{id} changed since version {version}")
        return Record(id, dict(doc), str(row[0]))

    def delete(self, kind: str, id: str) -> bool:
        cur = self._conn().execute("DELETE FROM docs WHERE kind = ? AND id = ?", (check_kind(kind), id))
        return cur.rowcount == 1

    def _where_sql(self, kind: str, where: Where | None) -> tuple[str, list[Any]]:
        clauses = ["kind = ?"]
        params: list[Any] = [check_kind(kind)]
        for field, cond in normalise_where(where):
            expr = "id" if field == "id" else _json_expr(field)  # ``id`` is the record's id, stored or not
            if isinstance(cond, Range):
                for op, value in ((">=", cond.gte), (">", cond.gt), ("<=", cond.lte), ("<", cond.lt)):
                    if value is not None:
                        clauses.append(f"{expr} {op} ?")
                        params.append(value)
            elif isinstance(cond, Prefix):  # substr, not LIKE: LIKE folds ASCII case and reads % and _
                clauses.append(f"substr({expr}, 1, ?) = ?")
                params += [len(cond.value), cond.value]
            elif isinstance(cond, tuple):
                if not cond:
                    clauses.append("0")
                    continue
                clauses.append(f"{expr} IN ({', '.join('?' * len(cond))})")
                params += list(cond)
            elif cond is None:
                clauses.append(f"{expr} IS NULL")
            else:
                clauses.append(f"{expr} = ?")
                params.append(cond)
        return " AND ".join(clauses), params

    def find(
        self,
        kind: str,
        where: Where | None = None,
        *,
        order_by: str | None = None,
        descending: bool = False,
        limit: int = 1000,
    ) -> list[Record]:
        sql, params = self._where_sql(kind, where)
        query = f"SELECT id, version, doc FROM docs WHERE {sql}"  # noqa: S608 (field paths are bound parameters)
        if order_by:
            query += f" ORDER BY {_json_expr(order_by)} {'DESC' if descending else 'ASC'}, id"
        else:
            query += " ORDER BY id"
        query += " LIMIT ?"
        params.append(int(limit))
        rows = self._conn().execute(query, params).fetchall()
        return [Record(r[0], json.loads(r[2]), str(r[1])) for r in rows]

    def count(self, kind: str, where: Where | None = None) -> int:
        sql, params = self._where_sql(kind, where)
        row = self._conn().execute(f"SELECT COUNT(*) FROM docs WHERE {sql}", params).fetchone()  # noqa: S608
        return int(row[0])

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
