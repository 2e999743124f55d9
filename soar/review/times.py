"""Time values people type (``30d``, ``2026-11-28T10:00Z``) and the ISO strings soar stores."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from soar.errors import InputError

_DURATION = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str, *, what: str = "duration") -> timedelta:
    """``90s``, ``15m``, ``24h``, ``30d``, ``2w``; InputError naming ``what`` otherwise."""
    match = _DURATION.match(text.strip())
    if not match:
        raise InputError(f"{what}: expected a duration like 30d, 24h or 15m, got {text!r}")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def parse_time(text: str, *, what: str = "time", now: datetime | None = None) -> datetime:
    """An ISO 8601 time (a date alone is midnight UTC) or a duration meaning that long ago."""
    raw = text.strip()
    if _DURATION.match(raw):
        return (now or datetime.now(UTC)) - parse_duration(raw, what=what)
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise InputError(
            f"{what}: expected an ISO 8601 time (2026-11-28T10:00:00Z) or a duration, got {text!r}"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def to_iso(value: datetime) -> str:
    """The form soar stores: UTC, milliseconds, ``Z``; these strings sort in time order."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def from_iso(value: str | None) -> datetime | None:
    """Parse a stored time; None for missing or unparsable values (stored data is not trusted)."""
    if not value or not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def check_range(start: datetime | None, end: datetime | None, *, what: str = "time range") -> None:
    """A range the wrong way round is bad input, not an empty result."""
    if start is not None and end is not None and start > end:
        raise InputError(f"{what}: the start ({to_iso(start)}) is after the end ({to_iso(end)})")
