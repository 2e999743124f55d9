"""The engine without services: the content kit (tests/playbook_kit) in the embedded mode, on a fake clock.

Redis and Elasticsearch are pointed at a port nothing listens on, so a unit test that reached either fails
(it is not skipped and does not find a service left running); the store is SQLite in the test's folder.
Every runtime the engine builds keeps time on the test's ``clock``: a backoff, a lease or an approval's
deadline passes when the engine sleeps or the test advances it, never on the wall clock.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from soar.clock import FakeClock
from soar.config import Settings
from soar.playbooks import dispatch
from soar.playbooks.runtime import Runtime
from tests.playbook_kit import Content, content, content_settings

__all__ = ["clock", "content", "pb_settings"]  # fixtures

NOWHERE = "127.0.0.1:9"  # the discard port: nothing listens there


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def pb_settings(content: Content, monkeypatch: pytest.MonkeyPatch, clock: FakeClock) -> Iterator[Settings]:
    """The content root's settings in the embedded mode, no service reachable; runtimes on ``clock``."""
    build = dispatch.runtime_for

    def on_clock(settings: Settings, store: object = None) -> Runtime:
        rt = build(settings, store)  # type: ignore[arg-type]
        rt.clock = clock
        return rt

    env = {"SOAR_REDIS_URL": f"redis://{NOWHERE}/0", "SOAR_ELASTICSEARCH_URL": f"http://{NOWHERE}"}
    with content_settings(content, monkeypatch, **env) as settings:
        monkeypatch.setattr(dispatch, "runtime_for", on_clock)
        yield settings
