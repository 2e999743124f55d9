"""The queue query: keyset paging that neither skips nor repeats alerts sharing a time, a bounded scan."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from soar.review.queue import SCAN, AlertQuery, find_alerts
from soar.store import Record
from soar.store.sqlite import SQLiteStore


def _store(tmp_path: Path) -> tuple[SQLiteStore, list[dict[str, Any]]]:
    store = SQLiteStore(tmp_path / "q.sqlite3")
    docs = []
    for i in range(1300):  # a storm: 1,200 alerts of one detection cycle share their time, between two others
        at = (
            "2026-12-01T10:00:00.000Z"
            if 50 <= i < 1250
            else f"2026-12-01T{9 if i < 50 else 11:02d}:00:{i % 60:02d}.{i:03d}Z"
        )
        docs.append(
            {"id": f"a{i:05d}", "@timestamp": at, "severity": "high", "status": "open", "host": {"name": f"h{i % 3}"}}
        )
    store.put_many("alerts", {d["id"]: d for d in docs})
    return store, docs


def _all_pages(store: SQLiteStore, query: AlertQuery, visible: Any, limit: int) -> list[str]:
    seen: list[str] = []
    while True:
        page = find_alerts(store, query, visible, limit)
        seen += [str(d["id"]) for d in page.alerts]
        if page.cursor is None:
            return seen
        assert page.alerts or page.scanned == SCAN, "a page that read little must be the last"
        query = AlertQuery(**{**query.__dict__, "cursor": page.cursor})


def _expected(docs: list[dict[str, Any]], keep: Any, newest: bool) -> list[str]:
    picked = [d for d in docs if keep(d)]
    ordered = sorted(picked, key=lambda d: d["id"])  # ties in time: id order
    ordered.sort(key=lambda d: d["@timestamp"], reverse=newest)
    return [d["id"] for d in ordered]


def test_paging_through_a_storm_of_alerts_with_one_time(tmp_path: Path) -> None:
    store, docs = _store(tmp_path)

    def visible(rec: Record) -> bool:
        return rec.doc["host"]["name"] != "h2"  # the principal's scope leaves a third out

    keep = lambda d: d["host"]["name"] != "h2"  # noqa: E731
    for order, newest in (("newest", True), ("oldest", False)):
        got = _all_pages(store, AlertQuery(order=order), visible, 50)
        assert len(got) == len(set(got)), "an alert shown twice"
        assert got == _expected(docs, keep, newest), order


def test_filters_and_a_text_search_read_at_most_the_scan(tmp_path: Path) -> None:
    store, docs = _store(tmp_path)
    page = find_alerts(store, AlertQuery(text="no such text"), lambda r: True, 50)
    assert page.alerts == [] and page.scanned == SCAN and page.cursor is not None  # goes on from where it stopped
    got = _all_pages(store, AlertQuery(host="h1", text="a0"), lambda r: True, 20)
    assert got == _expected(docs, lambda d: d["host"]["name"] == "h1" and "a0" in d["id"], True)
