"""Fixtures for continuous detection: a content root with Sigma rules, an events index, events."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from elasticsearch import Elasticsearch

from soar.config import Settings, load_settings
from soar.detection.elastic import create_events_index
from soar.scheduler.planning import iso
from soar.scheduler.runtime import reset
from soar.store.sqlite import SQLiteStore

MARKER = "soar-sched-marker"

SHELL_RULE = """\
title: Marker process started
id: {rule_id}
status: test
level: high
description: a process with the test marker on its command line
tags: [attack.execution, attack.t1059.004]
logsource: {{product: linux, category: process_creation}}
detection:
  sel: {{CommandLine|contains: '{marker}'}}
  condition: sel
falsepositives: [none]
soar:
{options}
"""


def rule_text(rule_id: str, marker: str = MARKER, **options: Any) -> str:
    import yaml

    opts = yaml.safe_dump(options, default_flow_style=False).strip() if options else "{}"
    return SHELL_RULE.format(rule_id=rule_id, marker=marker, options="\n".join("  " + ln for ln in opts.splitlines()))


def event(
    n: int | str, ts: float, *, marker: str = MARKER, host: str = "web-01", user: str = "alice", ip: str = "10.1.2.3"
) -> dict[str, Any]:
    return {
        "@timestamp": iso(ts),
        "event": {"category": ["process"], "type": ["start"]},
        "process": {"command_line": f"curl http://x/{marker}/{n}", "executable": "/usr/bin/curl", "pid": 100},
        "host": {"name": host},
        "user": {"name": user},
        "source": {"ip": ip},
    }


def index_events(es: Elasticsearch, index: str, docs: list[tuple[str, dict[str, Any]]], refresh: bool = True) -> None:
    for start in range(0, len(docs), 5000):
        ops: list[dict[str, Any]] = []
        for doc_id, ev in docs[start : start + 5000]:
            ops += [{"index": {"_index": index, "_id": doc_id}}, ev]
        resp = es.bulk(operations=ops, refresh=refresh)
        assert not resp["errors"], resp["items"][:1]


@pytest.fixture
def events_index(es: Elasticsearch, es_index: str) -> str:
    create_events_index(es, es_index)
    return es_index


@pytest.fixture
def content(tmp_path: Path) -> Path:
    (tmp_path / "rules").mkdir()
    return tmp_path


@pytest.fixture
def write_rule(content: Path) -> Callable[..., str]:
    def write(name: str = "marker", rule_id: str | None = None, **options: Any) -> str:
        rule_id = rule_id or str(uuid.uuid4())
        (content / "rules" / f"{name}.yml").write_text(rule_text(rule_id, **options), encoding="utf-8")
        return rule_id

    return write


@pytest.fixture
def det_settings(content: Path, events_index: str) -> Iterator[Settings]:
    reset()
    yield load_settings(
        content_root=content,
        state_dir=content / "state",
        events_index=events_index,
        celery_eager=True,
        detection_interval=1.0,
        detection_lookback=30.0,
        detection_ingest_delay=0.0,
    )
    reset()


@pytest.fixture
def store(content: Path) -> Iterator[SQLiteStore]:
    s = SQLiteStore(content / "state" / "state.sqlite3")
    yield s
    s.close()


@pytest.fixture
def dispatched() -> list[str]:
    return []


def wait_for(predicate: Callable[[], bool], timeout: float, step: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


class Ctx(NamedTuple):
    """The fixtures most scheduler tests take, as one."""

    es: Elasticsearch
    index: str
    settings: Settings
    store: SQLiteStore
    content: Path
    write_rule: Callable[..., str]


@pytest.fixture
def ctx(
    es: Elasticsearch,
    events_index: str,
    det_settings: Settings,
    store: SQLiteStore,
    content: Path,
    write_rule: Callable[..., str],
) -> Ctx:
    return Ctx(es, events_index, det_settings, store, content, write_rule)
