"""Reading a stored document field by field: every problem names the kind, the id and the field.

Pure. ``Reader`` wraps one document (or one nested object of it, under a dotted prefix) and
returns typed values; a missing required field, a value of the wrong type or a status outside its
set raises :class:`~soar.errors.RecordError`. ``check_version`` reads ``schema_version``: a
document without one is version 1 (what soar wrote before versions), a newer one is refused.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

from soar.errors import RecordError

VERSION_FIELD = "schema_version"

T = TypeVar("T")

_MISSING: Any = object()


def check_version(kind: str, id: str, doc: Mapping[str, Any], current: int) -> int:
    """The document's schema version (1 when absent); RecordError when a newer soar wrote it."""
    raw = doc.get(VERSION_FIELD, 1)
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 1:
        raise RecordError(kind, id, VERSION_FIELD, f"expected a positive integer, got {raw!r}")
    if raw > current:
        raise RecordError(
            kind, id, VERSION_FIELD, f"version {raw} was written by a newer soar (this one reads up to {current})"
        )
    return raw


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


class Reader:
    """Typed access to one stored object; ``prefix`` is its dotted place in the document, for messages."""

    def __init__(self, kind: str, id: str, doc: Any, prefix: str = "") -> None:
        if not isinstance(doc, Mapping):
            raise RecordError(kind, id, prefix or None, f"expected an object, got {_type_name(doc)}")
        self.kind = kind
        self.id = id
        self.doc: Mapping[str, Any] = doc
        self.prefix = prefix

    def path(self, name: str) -> str:
        return f"{self.prefix}.{name}" if self.prefix else name

    def fail(self, name: str, problem: str) -> RecordError:
        return RecordError(self.kind, self.id, self.path(name), problem)

    def child(self, name: str, value: Any) -> Reader:
        return Reader(self.kind, self.id, value, self.path(name))

    def _get(self, name: str, default: Any) -> Any:
        if name in self.doc:
            return self.doc[name]
        if default is _MISSING:
            raise self.fail(name, "missing")
        return default

    def _typed(self, name: str, value: Any, types: tuple[type, ...], what: str) -> Any:
        if isinstance(value, bool) and bool not in types:
            raise self.fail(name, f"expected {what}, got bool")
        if not isinstance(value, types):
            raise self.fail(name, f"expected {what}, got {_type_name(value)}")
        return value

    def string(self, name: str, default: Any = _MISSING) -> str:
        value = self._get(name, default)
        return str(self._typed(name, value, (str,), "a string"))

    def opt_string(self, name: str) -> str | None:
        value = self._get(name, None)
        return None if value is None else str(self._typed(name, value, (str,), "a string or null"))

    def ident(self, name: str) -> str | None:
        """A free-text field (an id, a rule id): a number is accepted and kept as its string."""
        value = self._get(name, None)
        if value is None:
            return None
        return str(self._typed(name, value, (str, int, float), "a string or null"))

    def integer(self, name: str, default: Any = _MISSING) -> int:
        value = self._get(name, default)
        return int(self._typed(name, value, (int,), "an integer"))

    def opt_integer(self, name: str) -> int | None:
        value = self._get(name, None)
        return None if value is None else int(self._typed(name, value, (int,), "an integer or null"))

    def number(self, name: str, default: Any = _MISSING) -> float:
        value = self._get(name, default)
        if isinstance(value, str):  # the Elasticsearch store keeps leaves as text in some older documents
            try:
                return float(value)
            except ValueError:
                raise self.fail(name, f"expected a number, got {value!r}") from None
        return float(self._typed(name, value, (int, float), "a number"))

    def opt_number(self, name: str) -> float | None:
        return None if self._get(name, None) is None else self.number(name)

    def numeric(self, name: str, default: Any = _MISSING) -> int | float:
        """A number kept as it was stored (an integer stays one), so a round trip writes the same text."""
        value = self._get(name, default)
        return self._typed(name, value, (int, float), "a number")  # type: ignore[no-any-return]

    def flag(self, name: str, default: Any = _MISSING) -> bool:
        value = self._get(name, default)
        return bool(self._typed(name, value, (bool,), "true or false"))

    def opt_flag(self, name: str) -> bool | None:
        value = self._get(name, None)
        return None if value is None else bool(self._typed(name, value, (bool,), "true, false or null"))

    def choice(self, name: str, allowed: tuple[T, ...], default: Any = _MISSING) -> T:
        value = self._get(name, default)
        if value not in allowed:
            raise self.fail(name, f"expected one of {', '.join(map(repr, allowed))}, got {value!r}")
        return value  # type: ignore[no-any-return]

    def obj(self, name: str, default: Any = _MISSING) -> dict[str, Any]:
        value = self._get(name, {} if default is _MISSING else default)
        if value is None and default is None:
            return {}
        return dict(self._typed(name, value, (Mapping, dict), "an object"))

    def opt_obj(self, name: str) -> dict[str, Any] | None:
        value = self._get(name, None)
        return None if value is None else dict(self._typed(name, value, (Mapping, dict), "an object or null"))

    def array(self, name: str) -> list[Any]:
        value = self._get(name, [])
        if value is None:
            return []
        return list(self._typed(name, value, (list, tuple), "a list"))

    def strings(self, name: str) -> list[str]:
        items = self.array(name)
        for i, item in enumerate(items):
            if not isinstance(item, str):
                raise self.fail(f"{name}[{i}]", f"expected a string, got {_type_name(item)}")
        return [str(i) for i in items]

    def unknown(self, known: frozenset[str]) -> dict[str, Any]:
        """Fields this soar does not model: kept as they are, so a round trip loses nothing."""
        return {k: v for k, v in self.doc.items() if k not in known and k != VERSION_FIELD}

    def absent(self, known: frozenset[str]) -> frozenset[str]:
        """Modelled fields the document lacks: ``to_doc`` leaves them out again (see :func:`without`)."""
        return frozenset(k for k in known if k not in self.doc)

    def nulls(self, known: frozenset[str]) -> frozenset[str]:
        """Modelled fields stored as null: ``to_doc`` writes an optional field only when it has a value,
        so these are remembered to be written back as they were (see :func:`with_nulls`)."""
        return frozenset(k for k, v in self.doc.items() if k in known and v is None)


_modelled: dict[tuple[type, tuple[str, ...]], frozenset[str]] = {}


def modelled(cls: type, *also: str) -> frozenset[str]:
    """The document fields a model reads (its dataclass fields but ``extra`` and ``schema_version``, plus ``also``)."""
    names = _modelled.get((cls, also))
    if names is None:
        fields = {f.name for f in dataclasses.fields(cls)} - {"extra", "nulls", "absent", VERSION_FIELD}
        names = _modelled[(cls, also)] = frozenset(fields | set(also))
    return names


def put(out: dict[str, Any], name: str, value: Any) -> None:
    """Write ``name`` only when it has a value: an optional field absent from a document stays absent."""
    if value is not None:
        out[name] = value


def without(out: dict[str, Any], absent: frozenset[str]) -> dict[str, Any]:
    """``out`` without the fields its document lacked: an optional field that was absent stays absent."""
    for name in absent:
        out.pop(name, None)
    return out


def with_nulls(out: dict[str, Any], nulls: frozenset[str]) -> dict[str, Any]:
    """``out`` with the fields a document stored as null written as null again (when still unset)."""
    for name in nulls:
        out.setdefault(name, None)
    return out
