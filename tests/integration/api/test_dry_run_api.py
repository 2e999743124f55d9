"""The run JSON of the API says what happened: a dry run reads "planned (dry run)", never "succeeded"."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.api.conftest import Api, _api, contained_incident
from tests.integration.api.lab_content import auth


@pytest.fixture
def dry_api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Api]:
    with _api(tmp_path, monkeypatch, {"SOAR_RESPONSE_DRY_RUN": "true"}) as app:
        yield app


def test_a_dry_run_reads_planned_in_the_run_json_report_and_metrics(dry_api: Api) -> None:
    _, run_id = contained_incident(dry_api)
    c = dry_api.client
    run = c.get(f"/runs/{run_id}", headers=auth("viewer")).json()
    assert run["status"] == "succeeded" and run["dry_run"] is True and run["shown_status"] == "planned (dry run)"
    isolate = run["steps"]["isolate"]
    assert isolate["dry_run"] is True and isolate["shown_status"] == "planned (dry run)"
    assert all(a["dry_run"] for i in isolate["instances"] for a in i["attempts"])
    [listed] = c.get("/runs", headers=auth("viewer")).json()
    assert listed["shown_status"] == "planned (dry run)"
    report = c.get(f"/runs/{run_id}/report", headers=auth("viewer")).json()
    assert report["dry_run"] is True and report["status"] == "planned (dry run)"
    assert report["milestones"]["contained"] is None
    metrics = c.get("/metrics", params={"since": "3650d"}, headers=auth("viewer")).json()
    assert metrics["excluded_runs"]["dry_run"] == 1 and metrics["responded"] == 0
    assert metrics["automation_rate"] is None and metrics["mttc"]["n"] == 0
