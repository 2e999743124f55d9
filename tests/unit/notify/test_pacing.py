"""Pacing and a rate limit's block on the injected clock: the waits are asked of the clock, none is slept."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from soar.clock import FakeClock
from soar.config import load_settings
from soar.notify import Deliverer
from soar.notify.outbox import Message, enqueue
from soar.notify.transport import Posted, RateLimited
from soar.store.sqlite import SQLiteStore


class Channel:
    """A Slack channel in memory: what was posted, at what time of the clock; a 429 when told."""

    name, can_edit, can_thread = "fake", True, True

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.posted: list[tuple[float, str]] = []
        self.limited: float | None = None

    def post(
        self, channel: str, text: str, blocks: Sequence[Mapping[str, Any]], *, thread_ts: str | None, key: str
    ) -> Posted:
        if self.limited is not None:
            retry_after, self.limited = self.limited, None
            raise RateLimited(retry_after)
        self.posted.append((self.clock.now(), text))
        return Posted("C1", f"{len(self.posted)}.0")

    def update(self, channel_id: str, ts: str, text: str, blocks: Sequence[Mapping[str, Any]], *, key: str) -> None:
        raise AssertionError("not used")

    def ephemeral(
        self, channel: str, user: str, text: str, blocks: Sequence[Mapping[str, Any]], *, thread_ts: str | None
    ) -> None:
        raise AssertionError("not used")

    def find_posted(self, channel: str, key: str, oldest: float) -> Posted | None:
        return None


def _msg(n: int) -> Message:
    return Message(key=f"t:{uuid.uuid4().hex[:8]}:{n}", op="post", kind="card", channel="#soc", text=f"message {n}")


def test_a_channel_is_paced_on_the_clock_and_blocked_by_a_429_until_its_retry_after(tmp_path: Path) -> None:
    settings = load_settings(content_root=tmp_path, state_dir=tmp_path / "state", celery_eager=True)
    settings = settings.model_copy(update={"slack_channel_interval": 1.5, "slack_storm_threshold": 100})
    store, clock = SQLiteStore(tmp_path / "s.sqlite3"), FakeClock(1_000_000.0)
    channel = Channel(clock)
    for n in range(3):
        enqueue(store, _msg(n))
    assert Deliverer(settings, store, channel, clock=clock).deliver("#soc").sent == 3
    assert [text for _, text in channel.posted] == ["message 0", "message 1", "message 2"]
    assert [b - a for (a, _), (b, _) in zip(channel.posted, channel.posted[1:], strict=False)] == [1.5, 1.5]
    assert clock.slept == [1.5, 1.5]  # each wait asked of the clock: the test waited on nothing

    enqueue(store, _msg(3))
    channel.limited = 30.0
    clock.advance(2)
    report = Deliverer(settings, store, channel, clock=clock).deliver("#soc")  # a new pass: pacing held across it
    assert report.sent == 0 and report.retry_in == 30.0
    clock.advance(29)
    assert Deliverer(settings, store, channel, clock=clock).deliver("#soc").retry_in is not None  # still blocked
    clock.advance(1)
    assert Deliverer(settings, store, channel, clock=clock).deliver("#soc").sent == 1
    assert channel.posted[-1] == (clock.now(), "message 3")
    store.close()
