"""``soar detect status`` and ``soar detect backfill`` as a user runs them, bad input included."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch

from soar.cli import main
from soar.config import get_settings
from soar.scheduler.cycle import Detector
from soar.scheduler.loading import load_scheduled_rules
from soar.scheduler.planning import iso
from soar.store.sqlite import SQLiteStore
from tests.conftest import REPO_ROOT, env_without_soar
from tests.integration.scheduler.conftest import Ctx, event, index_events


def soar(content: Path, index: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = env_without_soar() | {
        "SOAR_CONTENT_ROOT": str(content),
        "SOAR_STATE_DIR": str(content / "state"),
        "SOAR_EVENTS_INDEX": index,
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "soar", *args], capture_output=True, text=True, env=full, cwd=REPO_ROOT, timeout=120
    )


def soar_in_process(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    content: Path,
    index: str,
    *args: str,
    **env: str,
) -> tuple[int, str, str]:
    """The same command in this process (fast): exit code, stdout, stderr."""
    for key, value in {
        "SOAR_CONTENT_ROOT": str(content),
        "SOAR_STATE_DIR": str(content / "state"),
        "SOAR_EVENTS_INDEX": index,
        **env,
    }.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    out = capsys.readouterr()
    for key in env:
        monkeypatch.delenv(key)
    return int(exit_info.value.code or 0), out.out, out.err


def test_status_shows_runs_errors_and_invalid_rules(ctx: Ctx) -> None:
    es, events_index, det_settings, store, content, write_rule = ctx
    good = write_rule("good", interval="1s")
    write_rule("missing", interval="1s", index=f"{events_index}-nope")
    bad = content / "rules" / "bad.yml"
    write_rule("bad", every="5s")
    now = time.time()
    index_events(es, events_index, [("x1", event(1, now - 3)), ("x2", event(2, now - 2))])
    rules, errors = load_scheduled_rules(det_settings)
    assert len(errors) == 1
    Detector(det_settings, store, es, lambda _id: None).run(rules, now)

    out = soar(content, events_index, "detect", "status", "--json")
    assert out.returncode == 1, out.stderr  # an error or an invalid rule makes status fail
    rows = {r["rule_id"]: r for r in json.loads(out.stdout)}
    assert rows[good]["state"] == "ok" and rows[good]["hits"] == 2 and rows[good]["alerts"] == 2
    assert rows[good]["open_gaps"] == 0 and rows[good]["duration_ms"] is not None
    missing = next(r for r in rows.values() if r["state"] == "error")
    assert "index_not_found" in missing["last_error"] and missing["errors"] == 1
    invalid = next(r for r in rows.values() if r["state"] == "invalid")
    assert invalid["last_error"].startswith(f"{bad}:") and "soar.every: unknown option" in invalid["last_error"]

    table = soar(content, events_index, "detect", "status")
    assert "Marker process started" in table.stdout and "invalid" in table.stdout and "Traceback" not in table.stderr


def test_backfill_fills_a_window_once_and_rejects_bad_input(
    es: Elasticsearch,
    events_index: str,
    store: SQLiteStore,
    content: Path,
    write_rule: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    rule_id = write_rule(interval="1s")
    t0 = time.time() - 7200
    index_events(es, events_index, [(f"b{i}", event(i, t0 + 60 * i)) for i in range(10)])
    args = ("detect", "backfill", "--rule", rule_id, "--from", iso(t0 - 1), "--to", iso(t0 + 3600))
    first = soar(content, events_index, *args)
    assert first.returncode == 0, first.stderr
    assert "10 hits, 10 new alerts" in first.stdout

    def run(*argv: str, **env: str) -> tuple[int, str, str]:
        return soar_in_process(monkeypatch, capsys, content, events_index, *argv, **env)

    code, out, _ = run(*args)
    assert code == 0 and "10 hits, 0 new alerts" in out
    assert store.count("alerts") == 10

    code, _, err = run("detect", "backfill", "--rule", rule_id, "--from", "yesterday", "--to", iso(t0))
    assert code == 1 and err.strip() == "error: --from: not an ISO-8601 time: 'yesterday'"
    code, _, err = run("detect", "backfill", "--rule", "nope", "--from", iso(t0), "--to", iso(t0 + 1))
    assert code == 1 and err.startswith("error: --rule: no schedulable rule 'nope'")
    code, _, err = run(*args, SOAR_ELASTICSEARCH_URL="http://127.0.0.1:9")
    assert code == 2 and err.strip() == "error: Elasticsearch is not reachable: connection refused"


def test_status_on_the_elasticsearch_store_with_elasticsearch_down_is_one_line(content: Path, es_index: str) -> None:
    out = soar(
        content, es_index, "detect", "status", SOAR_STORE="elasticsearch", SOAR_ELASTICSEARCH_URL="http://127.0.0.1:9"
    )
    assert out.returncode == 2 and out.stderr.strip() == "error: Elasticsearch is not reachable: connection refused"
