"""Which incident an alert belongs to: a pure function of the alerts, whatever order they arrive in.

An alert is grouped by the first of ``incident_group_by`` it carries (default ``host.name``, ``host.hostname``
— the same host: correlation alerts name it so —, ``user.name``, ``source.ip``); an alert with none of them
is an incident of its own. Alerts with the same key are cut into
*sessions* by time: an alert joins a session when its time (``first_event_time``, else ``@timestamp``,
to the millisecond) is within ``incident_window`` of an alert already in it, the bound included. An
alert within the window of two sessions joins them into one. So the sessions of a key are exactly the
runs of its alerts sorted by time wherever two neighbours are more than the window apart — a function
of the set of alerts, not of their order.

An incident's id is derived from its key and its earliest alert (time, then id), so it too depends only on
the set. When a later-arriving alert is earlier than a session's first one, or joins two sessions, the
session's id changes: the ids it had are kept as ``absorbed`` and the incidents under them are merged
into the new one (``soar.incidents.attach``). Which ids were absorbed depends on the order; the live
incidents and their alerts do not.

The sessions of one key live in one document (the key's *ledger*), changed under ``Store.mutate``, so
two writers placing alerts of one key at once are serialised and neither decision is lost.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from soar.alerts import fingerprint
from soar.store.base import get_path

MAX_SESSIONS = 500  # sessions a ledger keeps per key (the oldest are forgotten: see docs/incidents.md)
OWN = "id"  # the key field of an alert grouped on its own
SAME_AS = {"host.hostname": "host.name"}  # fields that name one entity: an alert keyed by either joins the other's


@dataclass(frozen=True, order=True)
class GroupKey:
    """What alerts of one incident share: a field and its value (``id`` and the alert id for a lone alert)."""

    field: str
    value: str

    @property
    def id(self) -> str:
        return fingerprint("incident-key", self.field, self.value)

    def to_doc(self) -> dict[str, str]:
        return {"field": self.field, "value": self.value}


def group_key(alert: Mapping[str, Any], fields: Sequence[str]) -> GroupKey:
    """The first of ``fields`` the alert has a usable value for; host names compare case-insensitively."""
    for name in fields:
        value = get_path(alert, name)
        if isinstance(value, list) and value:
            value = value[0]
        if isinstance(value, str | int) and not isinstance(value, bool) and 0 < len(str(value).strip()) <= 255:
            text = str(value).strip()
            return GroupKey(SAME_AS.get(name, name), text.casefold() if name.startswith("host.") else text)
    return GroupKey(OWN, str(alert.get("id")))


def _epoch_ms(value: Any) -> int | None:
    if not isinstance(value, str):
        return None
    try:
        at = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return round((at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp() * 1000)


def iso_ms(ms: int) -> str:
    """An epoch-ms time as alerts write theirs (``2026-12-01T10:00:00.000Z``)."""
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def alert_time_ms(alert: Mapping[str, Any]) -> int:
    """When the alert's activity began, in epoch milliseconds (integers: window edges compare exactly)."""
    for name in ("first_event_time", "@timestamp"):
        at = _epoch_ms(alert.get(name))
        if at is not None:
            return at
    raise ValueError(f"alert {alert.get('id')!r} has neither first_event_time nor @timestamp as an ISO-8601 time")


@dataclass(frozen=True)
class Session:
    """The alerts of one key within the window of each other: [start, end] and the earliest alert."""

    id: str
    start: int  # epoch ms of the earliest alert
    first: str  # the earliest alert's id (ties on time: the smallest id)
    end: int  # epoch ms of the latest alert
    absorbed: tuple[str, ...] = ()  # ids this session had before an earlier alert or a merge changed it

    def to_doc(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "start": self.start,
            "first": self.first,
            "end": self.end,
            "absorbed": list(self.absorbed),
        }

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> Session:
        return cls(
            id=str(doc["id"]),
            start=int(doc["start"]),
            first=str(doc["first"]),
            end=int(doc["end"]),
            absorbed=tuple(str(a) for a in doc.get("absorbed") or ()),
        )


def session_id(key: GroupKey, first_alert: str) -> str:
    return fingerprint("incident", key.field, key.value, first_alert)


@dataclass(frozen=True)
class Ledger:
    """The sessions of one key, oldest first."""

    key: GroupKey
    sessions: tuple[Session, ...] = field(default=())

    def to_doc(self) -> dict[str, Any]:
        return {"key": self.key.to_doc(), "sessions": [s.to_doc() for s in self.sessions]}

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> Ledger:
        key = doc.get("key") or {}
        return cls(GroupKey(str(key["field"]), str(key["value"])), tuple(Session.from_doc(s) for s in doc["sessions"]))


@dataclass(frozen=True)
class Placement:
    ledger: Ledger
    session: Session  # the session the alert is in now
    changed: bool  # False: the alert was already covered (placing it again changes nothing)


def place(ledger: Ledger, at: int, alert_id: str, window: int) -> Placement:
    """Put the alert at ``at`` (ms) into the ledger: it joins every session within ``window`` (ms) of it."""
    touching = [s for s in ledger.sessions if s.start - window <= at <= s.end + window]
    rest = [s for s in ledger.sessions if s not in touching]
    start, first = min([(at, alert_id), *((s.start, s.first) for s in touching)])
    end = max([at, *(s.end for s in touching)])
    sid = session_id(ledger.key, first)
    absorbed = sorted({a for s in touching for a in (s.id, *s.absorbed)} - {sid})
    merged = Session(sid, start, first, end, tuple(absorbed))
    if len(touching) == 1 and touching[0] == merged:
        return Placement(ledger, merged, False)
    sessions = sorted([*rest, merged], key=lambda s: (s.start, s.first))[-MAX_SESSIONS:]
    return Placement(replace(ledger, sessions=tuple(sessions)), merged, True)


def partition(alerts: Sequence[tuple[int, str]], window: int) -> list[list[str]]:
    """The sessions a set of (time ms, alert id) of one key makes, computed at once (the specification
    ``place`` is tested against): sorted by time, cut wherever neighbours are more than ``window`` apart."""
    out: list[list[str]] = []
    last: int | None = None
    for at, aid in sorted(alerts):
        if last is None or at - last > window:
            out.append([])
        out[-1].append(aid)
        last = at
    return out
