"""Fixtures for the Slack tests: an isolated workspace on the real stand-in and settings pointing at it."""

from __future__ import annotations

from pathlib import Path

import pytest

from soar.config import Settings, load_settings
from soar.store import Store, open_store
from tests.integration.notify.standin import Workspace, health
from tests.services import require

REPO_ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def standin() -> None:
    require("Slack stand-in", health)


@pytest.fixture
def workspace(standin: None) -> Workspace:
    return Workspace(["soc-alerts", "soc-critical"])


@pytest.fixture
def slack_settings(tmp_path: Path, workspace: Workspace) -> Settings:
    return load_settings(
        content_root=REPO_ROOT,
        state_dir=tmp_path / "state",
        celery_eager=True,
        slack_bot_token=workspace.token,
        slack_api_url=workspace.api_url,
        slack_channel_interval=0,
        notify_routes_file=tmp_path / "notify.yml",
    )


@pytest.fixture
def store(slack_settings: Settings) -> Store:
    return open_store(slack_settings)
