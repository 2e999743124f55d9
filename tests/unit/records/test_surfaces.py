"""A stored record soar cannot read is named, not a traceback: the CLI's one line, the API's 500."""

from __future__ import annotations

import os
import pwd
from pathlib import Path

import pytest
from fastapi import HTTPException

from soar.api._common import http_errors
from soar.errors import RecordError
from soar.store.sqlite import SQLiteStore
from tests.unit.records.test_models import _run
from tests.unit.test_cli import run_soar


def test_the_cli_names_kind_id_and_field_of_an_unreadable_run(tmp_path: Path) -> None:
    state = tmp_path / "state"
    store = SQLiteStore(state / "state.sqlite3")
    store.put("runs", "run-1", _run(status="exploded"))
    store.put("runs", "run-2", {**_run(id="run-2"), "schema_version": 7})
    store.close()
    login = pwd.getpwuid(os.geteuid()).pw_name
    (tmp_path / "tokens.yml").write_text(f"principals:\n  - {{name: ana, roles: [viewer], os_user: {login}}}\n")
    env = {"SOAR_STATE_DIR": str(state), "SOAR_API_TOKENS_FILE": str(tmp_path / "tokens.yml")}
    shown = run_soar("runs", "show", "run-1", env=env)
    assert shown.returncode == 1 and "Traceback" not in shown.stderr
    assert "runs/run-1: field status: expected one of" in shown.stderr + shown.stdout
    newer = run_soar("runs", "show", "run-2", env=env)
    assert newer.returncode == 1
    assert "runs/run-2: field schema_version: version 7 was written by a newer soar" in newer.stderr + newer.stdout


def test_the_api_answers_500_naming_the_record() -> None:
    with pytest.raises(HTTPException) as caught, http_errors():
        raise RecordError("runs", "run-1", "status", "expected a string, got null")
    assert caught.value.status_code == 500
    detail = "a stored record cannot be read: runs/run-1: field status: expected a string, got null"
    assert caught.value.detail == detail
