"""The alert queue as a query: filters, a time cursor, a bounded scan — shared by ``soar alerts list`` and the console.

The store answers equality filters and the time order from its indexes; what it cannot (``open`` also
matches an alert without a status, free text, the principal's scope) is filtered here, a page of
records at a time, never more than ``scan`` records per call: a query that matches little says where
it stopped (``cursor``) instead of reading 100,000 alerts to fill a page.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from soar.store import Range, Record, Store

ALERTS = "alerts"
LEVELS = ("informational", "low", "medium", "high", "critical")
STATUSES = ("open", "acknowledged", "closed")
ORDERS = ("newest", "oldest", "severity")  # severity: within the page, newest first among equals
PAGE = 500  # records read at most per store query while filtering
SCAN = 1000  # records read at most per call (a text search that matches little goes on from its cursor)


@dataclass(frozen=True)
class AlertQuery:
    """What the on-call asked for; every field optional. Times are ISO-8601 as stored."""

    status: str | None = None
    level: str | None = None
    rule: str | None = None
    host: str | None = None
    user: str | None = None
    assignee: str | None = None
    text: str | None = None
    since: str | None = None
    until: str | None = None
    cursor: str | None = None  # the next page: strictly older (newest first) or newer (oldest first) than this
    order: str = "newest"

    def where(self) -> dict[str, Any]:
        """The part of the query the store answers itself."""
        where: dict[str, Any] = {}
        for field, value in (("severity", self.level), ("rule.id", self.rule), ("host.name", self.host)):
            if value:
                where[field] = value
        if self.user:
            where["user.name"] = self.user
        if self.assignee:
            where["assignee"] = self.assignee
        if self.status in ("acknowledged", "closed"):
            where["status"] = self.status
        return where


@dataclass(frozen=True)
class QueuePage:
    alerts: list[dict[str, Any]]
    cursor: str | None  # where the next page starts; None: there is none
    scanned: int  # records read to fill this page


def matches_text(doc: dict[str, Any], text: str) -> bool:
    """Free text in the id, rule, host, user, source address or command line (case-insensitive)."""
    rule = doc.get("rule") or {}
    hay = " ".join(
        str(v)
        for v in (
            doc.get("id"), rule.get("id"), rule.get("title"), (doc.get("host") or {}).get("name"),
            (doc.get("user") or {}).get("name"), (doc.get("source") or {}).get("ip"),
            (doc.get("process") or {}).get("command_line"),
        )
        if v
    )  # fmt: skip
    return text.casefold() in hay.casefold()


def _wanted(query: AlertQuery, doc: dict[str, Any]) -> bool:
    if query.status == "open" and doc.get("status") not in (None, "open"):
        return False
    return not (query.text and not matches_text(doc, query.text))


def split_cursor(cursor: str | None) -> tuple[str | None, str | None]:
    """``<@timestamp>|<id>``: the last alert shown; a bare time (older links) means strictly past that time."""
    if not cursor:
        return None, None
    at, _, last = cursor.rpartition("|")
    return (at, last) if at else (cursor, None)


def _records(store: Store, query: AlertQuery, first: int) -> Iterator[Record]:
    """The store's alerts in the query's time order from its cursor, a growing page at a time (keyset paging:
    the rest of the cursor's timestamp by id, then strictly past it — alerts of one cycle share a time)."""
    where, oldest_first = query.where(), query.order == "oldest"
    at, last = split_cursor(query.cursor)
    size = first
    while True:
        if at is not None and last is not None:  # the rest of a group of alerts with the same time
            cond: dict[str, Any] = {"@timestamp": at, "id": Range(gt=last)}
        elif oldest_first:
            cond = {"@timestamp": Range(gt=at, lt=query.until) if at else Range(gte=query.since, lt=query.until)}
        else:
            upper = min(x for x in (query.until, at) if x) if (query.until or at) else None
            cond = {"@timestamp": Range(gte=query.since, lt=upper)}
        cond = {k: v for k, v in cond.items() if not (isinstance(v, Range) and v == Range())}
        page = store.find(
            ALERTS, {**where, **cond}, order_by="@timestamp", descending=not oldest_first, limit=size
        )  # ties in time come in id order (both stores)
        yield from page
        if len(page) < size:
            if last is None:
                return
            last = None  # that time's group is done: go on strictly past it
        else:
            at, last = str(page[-1].doc.get("@timestamp")), page[-1].id
        size = min(size * 2, PAGE)


def find_alerts(
    store: Store, query: AlertQuery, visible: Callable[[Record], bool], limit: int, *, scan: int = SCAN
) -> QueuePage:
    """Up to ``limit`` alerts the principal may see, in time order, and the cursor of the next page."""
    rows: list[dict[str, Any]] = []
    cursor, scanned, exhausted = query.cursor, 0, True
    # a page is mostly what is shown (filtered out records grow the next read); free text filters out most
    first = PAGE if query.text else max(2 * limit, 100)
    for rec in _records(store, query, min(first, scan)):
        scanned += 1
        cursor = f"{rec.doc.get('@timestamp')}|{rec.id}"
        if _wanted(query, rec.doc) and visible(rec):
            rows.append(rec.doc)
        if len(rows) == limit or scanned >= scan:
            exhausted = False
            break
    if query.order == "severity":
        rank = {name: i for i, name in enumerate(LEVELS)}
        rows.sort(key=lambda d: -rank.get(str(d.get("severity")), 0))
    return QueuePage(rows, None if exhausted else cursor, scanned)
