"""The store interface every backend implements, and the factory that picks one from settings."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from soar.errors import InputError, SoarError

KIND_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,40}$")
FIELD_PATTERN = re.compile(r"^[@A-Za-z_][A-Za-z0-9_@.\-]{0,200}$")


class Conflict(SoarError):
    """A versioned write lost a race: someone else changed the document first."""


@dataclass(frozen=True)
class Range:
    """A range condition for ``find``: any bound may be omitted. Values compare as stored (ISO times sort)."""

    gte: Any = None
    gt: Any = None
    lte: Any = None
    lt: Any = None


@dataclass(frozen=True)
class Prefix:
    """A string condition for ``find``: the field starts with ``value`` (case-sensitive); ``id`` is the record id."""

    value: str


Condition = Any  # a value (equality), a list/tuple of values (any of), a Range or a Prefix
Where = Mapping[str, Condition]

# what Store.mutate calls: the stored document (a copy) -> the document to write, or None to leave it
Change = Callable[[dict[str, Any]], "dict[str, Any] | None"]
# what Store.mutate(create=...) calls when no document has the id: the document ``change`` then starts from
Create = Callable[[], dict[str, Any]]
MUTATE_RETRIES = 50


@dataclass(frozen=True)
class Record:
    id: str
    doc: dict[str, Any]
    version: str  # opaque; pass back to update()


@runtime_checkable
class Store(Protocol):
    """What soar keeps: JSON documents by kind and id."""

    def create(self, kind: str, id: str, doc: Mapping[str, Any]) -> bool:
        """Write only if no document has this id; False if one exists (the exactly-once primitive)."""
        ...

    def insert(self, kind: str, id: str, doc: Mapping[str, Any]) -> Record | None:
        """``create`` that returns the written record (with its version), or None if a document has this id."""
        ...

    def put(self, kind: str, id: str, doc: Mapping[str, Any]) -> Record:
        """Create or replace unconditionally."""
        ...

    def put_many(self, kind: str, docs: Mapping[str, Mapping[str, Any]]) -> int:
        """Create or replace several documents (id -> doc) in one write; returns how many were written."""
        ...

    def put_many_if(self, kind: str, docs: Mapping[str, tuple[Mapping[str, Any], str | None]]) -> set[str]:
        """Write several documents (id -> (doc, expected version)) in one request, each only if it is still at its
        expected version (None: only if no document has the id yet); returns the ids that lost that race (not
        written). The others are written; callers re-read the losers, merge and try them again."""
        ...

    def get(self, kind: str, id: str) -> Record | None: ...

    def update(self, kind: str, id: str, doc: Mapping[str, Any], *, version: str) -> Record:
        """Replace the document if it is still at ``version``; raise Conflict otherwise."""
        ...

    def delete(self, kind: str, id: str) -> bool: ...

    def mutate(
        self, kind: str, id: str, change: Change, *, create: Create | None = None, retries: int = MUTATE_RETRIES
    ) -> Record | None:
        """Read, change and write one document under optimistic concurrency, retrying on Conflict.

        ``change`` gets the stored document (freshly read, its own to edit) and returns the document to
        write, or None to leave it as it is (then the record as read is returned). It may run several times, so it must
        only compute. None when no document has this id; Conflict after ``retries`` lost races.

        With ``create``, a missing document is no reason to stop: ``change`` gets ``create()`` instead and
        what it returns is written create-only; if another writer created the document first, the attempt
        counts as a lost race and ``change`` runs again on theirs. So one function says what to do with
        the document whether or not it exists yet. None when ``change`` leaves a missing document unwritten.
        """
        ...

    def find(
        self,
        kind: str,
        where: Where | None = None,
        *,
        order_by: str | None = None,
        descending: bool = False,
        limit: int = 1000,
    ) -> list[Record]:
        """Documents matching every condition; dotted field names reach into nested objects.

        Ordered by ``order_by`` then id (by id alone when no order is given).
        """
        ...

    def count(self, kind: str, where: Where | None = None) -> int: ...

    def close(self) -> None: ...


class Mutates:
    """``Store.mutate`` written once over ``get`` and ``update``, for every backend to inherit."""

    def mutate(
        self, kind: str, id: str, change: Change, *, create: Create | None = None, retries: int = MUTATE_RETRIES
    ) -> Record | None:
        store: Any = self
        for _ in range(retries):
            rec: Record | None = store.get(kind, id)
            if rec is None:
                if create is None:
                    return None
                doc = change(create())
                if doc is None:
                    return None
                inserted: Record | None = store.insert(kind, id, doc)
                if inserted is not None:
                    return inserted
                continue  # created meanwhile by someone else: change theirs
            doc = change(rec.doc)  # every get() decodes a fresh document: no copy needed
            if doc is None:
                return rec
            try:
                written: Record = store.update(kind, id, doc, version=rec.version)
                return written
            except Conflict:
                continue
        raise Conflict(f"{kind} {id}: too many concurrent updates ({retries} attempts)")


def check_kind(kind: str) -> str:
    if not KIND_PATTERN.match(kind):
        raise InputError(f"invalid store kind {kind!r}: lower-case letters, digits and _")
    return kind


def check_field(name: str) -> str:
    if not FIELD_PATTERN.match(name):
        raise InputError(f"invalid field name {name!r}")
    return name


def get_path(doc: Mapping[str, Any], dotted: str) -> Any:
    """``doc['a']['b']`` for ``a.b``; also accepts a literal dotted key (ECS documents use both)."""
    if dotted in doc:
        return doc[dotted]
    cur: Any = doc
    for part in dotted.split("."):
        if not isinstance(cur, Mapping) or part not in cur:
            return None
        cur = cur[part]
    return cur


def normalise_where(where: Where | None) -> list[tuple[str, Condition]]:
    out: list[tuple[str, Condition]] = []
    for name, cond in (where or {}).items():
        check_field(name)
        if isinstance(cond, Sequence) and not isinstance(cond, str | bytes):
            cond = tuple(cond)
        out.append((name, cond))
    return out
