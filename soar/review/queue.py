"""The alert queue as a query: filters, a time cursor, a bounded scan — shared by ``soar alerts list`` and the console.

The store answers equality filters and the time order from its indexes; what it cannot (``open`` also
matches an alert without a status, free text, the principal's scope) is filtered here, a page of
records at a time, never more than ``scan`` records per call: a query that matches little says where
it stopped (``cursor``) instead of reading 100,000 alerts to fill a page.
"""

from __future__ import annotations

from collections.abc import Callable
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


def find_alerts(
    store: Store, query: AlertQuery, visible: Callable[[Record], bool], limit: int, *, scan: int = SCAN
) -> QueuePage:
    """Up to ``limit`` alerts the principal may see, in time order, and the cursor of the next page."""
    oldest_first = query.order == "oldest"
    where = query.where()
    rows: list[dict[str, Any]] = []
    cursor, scanned, exhausted = query.cursor, 0, False
    # a page is mostly what is shown (filtered out records grow the next read); free text filters out most
    want = PAGE if query.text else max(2 * limit, 100)
    while len(rows) < limit and scanned < scan:
        if oldest_first:
            bound = Range(gt=cursor, lt=query.until) if cursor else Range(gte=query.since, lt=query.until)
        else:
            upper = min(x for x in (query.until, cursor) if x) if (query.until or cursor) else None
            bound = Range(gte=query.since, lt=upper)
        has_bound = any(v is not None for v in (bound.gte, bound.gt, bound.lt))
        size = min(want, PAGE, scan - scanned)
        want *= 2
        page = store.find(
            ALERTS, {**where, **({"@timestamp": bound} if has_bound else {})},
            order_by="@timestamp", descending=not oldest_first, limit=size,
        )  # fmt: skip
        scanned += len(page)
        taken = 0
        for rec in page:
            taken += 1
            cursor = str(rec.doc.get("@timestamp"))
            if _wanted(query, rec.doc) and visible(rec):
                rows.append(rec.doc)
                if len(rows) == limit:
                    break
        if len(page) < size:
            exhausted = taken == len(page)  # the store has nothing past what was read
            break
    if query.order == "severity":
        rank = {name: i for i, name in enumerate(LEVELS)}
        rows.sort(key=lambda d: -rank.get(str(d.get("severity")), 0))
    return QueuePage(rows, None if exhausted else cursor, scanned)
