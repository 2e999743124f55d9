"""Events files for ``soar rules test --events``: a JSON array, or JSONL with one event object per line.

Every event keeps where it is in the file, so anything wrong with it later (a timestamp that is
not a date, a document Elasticsearch rejects) is reported at its ``file:line:col``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from soar.detection.embedded import parse_timestamp
from soar.errors import InputError, SourceLocation

SHAPE = "expected a JSON array or one JSON object per line"


@dataclass
class EventsFile:
    """The events of a file and, index for index, where each one starts."""

    events: list[dict[str, Any]] = field(default_factory=list)
    locations: list[SourceLocation] = field(default_factory=list)


def read_events_file(path: Path) -> list[dict[str, Any]]:
    """A JSON array of events, or JSONL with one event object per line; InputError with file:line."""
    return load_events_file(path).events


def load_events_file(path: Path) -> EventsFile:
    """The events and where each starts; InputError at file:line:col for anything that is not an event."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read events file: {exc}", SourceLocation(path)) from exc
    stripped = text.lstrip()
    if not stripped:
        raise InputError(f"empty events file ({SHAPE})", SourceLocation(path, 1))
    out = EventsFile()
    shapes: dict[str, tuple[str, int]] = {}
    items = _array(path, text) if stripped.startswith("[") else _lines(path, text)
    for value, where in items:
        index = len(out.events)
        if not isinstance(value, dict):
            kind = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
                type(value), "a number"
            )
            raise InputError(f"event {index} is {kind}, not a JSON object", where)
        stamp = value.get("@timestamp")
        if stamp is not None and parse_timestamp(stamp) is None:
            raise InputError(f"event {index}: @timestamp {stamp!r} is not an ISO 8601 date", where)
        conflict = _shape_conflict(value, (), index, shapes)
        if conflict is not None:
            raise InputError(f"event {index}: {conflict}", where)
        out.events.append(value)
        out.locations.append(where)
    return out


def _shape_conflict(value: Any, at: tuple[str, ...], index: int, shapes: dict[str, tuple[str, int]]) -> str | None:
    """A field that is an object in one event and a value in another: Elasticsearch cannot index both, so
    neither engine takes the file (the embedded store alone would, and the engines would disagree)."""
    if isinstance(value, list):
        return next((c for item in value if (c := _shape_conflict(item, at, index, shapes)) is not None), None)
    if value is None:
        return None
    kind = "an object" if isinstance(value, dict) else "a value"
    if at:
        name = ".".join(at)
        seen = shapes.setdefault(name, (kind, index))
        if seen[0] != kind:
            return f"field '{name}' is {kind} here but {seen[0]} in event {seen[1]} (Elasticsearch indexes only one)"
    if isinstance(value, dict):
        for key, item in value.items():
            parts = tuple(str(key).split("."))
            nested: Any = item
            for part in reversed(parts[1:]):  # "process.name": x is {"process": {"name": x}}
                nested = {part: nested}
            conflict = _shape_conflict(nested, (*at, parts[0]), index, shapes)
            if conflict is not None:
                return conflict
    return None


def _array(path: Path, text: str) -> Iterator[tuple[Any, SourceLocation]]:
    """The elements of a top-level JSON array with where each starts (one pass, lines counted as it goes)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON: {exc.msg}", SourceLocation(path, exc.lineno, exc.colno)) from exc
    if not isinstance(data, list):  # "[" then something else: json.loads would have failed
        yield data, SourceLocation(path, 1, 1)
        return
    decoder = json.JSONDecoder()
    at = text.index("[") + 1
    line, line_start, counted = 1, 0, 0
    for _ in data:
        while text[at] in " \t\r\n,":
            at += 1
        newlines = text.count("\n", counted, at)
        if newlines:
            line += newlines
            line_start = text.rfind("\n", counted, at) + 1
        counted = at
        value, at = decoder.raw_decode(text, at)
        yield value, SourceLocation(path, line, counted - line_start + 1)


def _lines(path: Path, text: str) -> Iterator[tuple[Any, SourceLocation]]:
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"not valid JSON ({SHAPE}): {exc.msg}", SourceLocation(path, n, exc.colno)) from exc
        yield value, SourceLocation(path, n, len(line) - len(line.lstrip()) + 1)
