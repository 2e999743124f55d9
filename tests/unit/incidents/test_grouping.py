"""Grouping alerts into incidents: deterministic (any order gives the same incidents), window edges, keys."""

from __future__ import annotations

import itertools
import random

import pytest

from soar.incidents.grouping import GroupKey, Ledger, alert_time_ms, group_key, partition, place

KEY = GroupKey("host.name", "web1")
W = 30 * 60 * 1000  # the default window, in ms


def _live(points: list[tuple[int, str]], window: int = W) -> list[tuple[str, int, int]]:
    ledger = Ledger(KEY)
    for at, aid in points:
        ledger = place(ledger, at, aid, window).ledger
    return [(s.id, s.start, s.end) for s in ledger.sessions]


def _sessions_as_sets(points: list[tuple[int, str]], window: int = W) -> list[set[str]]:
    """Which alerts end up together: replay, then ask the ledger the session of each alert again."""
    ledger = Ledger(KEY)
    for at, aid in points:
        ledger = place(ledger, at, aid, window).ledger
    groups: dict[str, set[str]] = {}
    for at, aid in points:
        placed = place(ledger, at, aid, window)
        assert not placed.changed  # placing an alert again changes nothing
        groups.setdefault(placed.session.id, set()).add(aid)
    return sorted(groups.values(), key=min)


def test_every_order_of_the_same_alerts_gives_the_same_incidents() -> None:
    minute = 60_000
    # a bridge (c joins a and d), a tie on time, a lone alert far away, one exactly on the window's edge
    points = [(0, "a"), (25 * minute, "b"), (50 * minute, "d"), (30 * minute, "c"), (30 * minute, "c2")]
    points += [(300 * minute, "far"), (330 * minute, "edge")]
    expected = _live(sorted(points))
    seen = set()
    for order in itertools.permutations(points):
        assert _live(list(order)) == expected
        seen.add(tuple(tuple(sorted(g)) for g in _sessions_as_sets(list(order))))
    assert seen == {(("a", "b", "c", "c2", "d"), ("edge", "far"))}


def test_random_orders_match_the_batch_partition() -> None:
    rng = random.Random(17)
    for _ in range(200):
        points = [(rng.randrange(0, 10 * W), f"a{n:03d}") for n in range(rng.randrange(1, 40))]
        want = sorted(sorted(g) for g in partition(points, W))
        for _ in range(3):
            rng.shuffle(points)
            got = sorted(sorted(g) for g in _sessions_as_sets(points))
            assert got == want


def test_window_edges_are_inclusive_and_one_millisecond_more_splits() -> None:
    assert len(_live([(0, "a"), (W, "b")])) == 1
    assert len(_live([(0, "a"), (W + 1, "b")])) == 2
    assert len(_live([(W + 1, "b"), (0, "a")])) == 2
    # the window is measured from the nearest alert in the incident, not from its first one
    assert len(_live([(0, "a"), (W, "b"), (2 * W, "c")])) == 1


def test_an_earlier_alert_renames_the_session_and_keeps_the_old_id_as_absorbed() -> None:
    ledger = place(Ledger(KEY), 10 * 60_000, "late", W).ledger
    old = ledger.sessions[0].id
    moved = place(ledger, 0, "early", W)
    assert moved.changed and moved.session.id != old and moved.session.absorbed == (old,)
    assert moved.session.first == "early" and moved.session.start == 0


def test_a_bridge_merges_two_sessions_into_the_earlier_one() -> None:
    ledger = place(place(Ledger(KEY), 0, "a", W).ledger, 2 * W, "c", W).ledger
    ids = [s.id for s in ledger.sessions]
    bridged = place(ledger, W, "b", W)
    assert [s.id for s in bridged.ledger.sessions] == [ids[0]] and bridged.session.absorbed == (ids[1],)


def test_the_key_is_the_first_configured_field_present() -> None:
    fields = ["host.name", "user.name"]
    assert group_key({"id": "x", "host": {"name": "WEB1"}, "user": {"name": "bob"}}, fields) == KEY
    assert group_key({"id": "x", "host": {}, "user": {"name": "Bob"}}, fields) == GroupKey("user.name", "Bob")
    assert group_key({"id": "x", "host": {"name": "  "}}, fields) == GroupKey("id", "x")
    assert group_key({"id": "x", "host.name": "web1"}, fields) == KEY  # a literal dotted key, as ECS allows
    defaults = ["host.name", "host.hostname", "user.name", "source.ip"]
    assert group_key({"id": "x", "host": {"hostname": "Web1"}, "source": {"ip": "1.2.3.4"}}, defaults) == KEY
    assert group_key({"id": "x", "host": {}, "source": {"ip": "1.2.3.4"}}, defaults) == GroupKey("source.ip", "1.2.3.4")


def test_an_alert_is_timed_by_its_first_event_then_its_detection() -> None:
    assert alert_time_ms({"first_event_time": "2026-12-01T10:00:00.250Z", "@timestamp": "2026-12-01T11:00:00Z"}) == (
        1_796_119_200_250
    )
    assert alert_time_ms({"@timestamp": "2026-12-01T10:00:00Z"}) == 1_796_119_200_000
    with pytest.raises(ValueError, match="neither first_event_time nor @timestamp"):
        alert_time_ms({"id": "x", "@timestamp": "yesterday"})
