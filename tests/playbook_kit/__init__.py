"""A throwaway content root for engine tests: the testkit integration, playbooks, policy and inventory.

Shared by the engine's unit tests (tests/unit/playbooks: the embedded mode, no service) and the integration
tests that run the same content on the real services; each conftest imports the fixtures it uses.
"""

from __future__ import annotations

import shutil
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from soar.config import Settings, get_settings
from tests.workers import redis_url_for_db

TESTKIT = Path(__file__).resolve().parent / "testkit.py"
LOCK_DB = 6

INVENTORY = """\
defaults: {user: soar, sudo: true, management: [10.0.0.2], log_endpoints: ["10.0.0.9:9200"]}
hosts:
  web1: {address: 10.0.1.11, labels: {env: prod, role: web, criticality: medium}}
  web2: {address: 10.0.1.12, labels: {env: prod, role: web, criticality: high}}
  dev1: {address: 10.0.2.11, labels: {env: dev, role: web}}
  dev2: {address: 10.0.2.12, labels: {env: dev, role: web}}
  bastion-1: {address: 10.0.0.2, labels: {env: prod, role: bastion}}
  dc-1: {address: 10.0.9.1, labels: {env: prod, role: domain-controller}}
"""

POLICY = """\
protected:
  hosts: ["bastion*"]
  networks: ["10.0.9.0/24"]
  labels: {role: [domain-controller]}
  accounts: [root, "breakglass*"]
approvals:
  - {name: prod-containment, impact: [contain, destructive], labels: {env: prod}, approvals: 1,
     roles: [approver, admin], timeout: 600}
  - {name: high-criticality, impact: [contain, destructive], labels: {criticality: high}, approvals: 2,
     roles: [approver, admin], timeout: 600}
blast_radius: {max_targets_per_run: 3}
circuit_breaker: {failures_in_a_row: 3, pause_minutes: 30}
"""


# who the command line may act as (SOAR_TOKEN): tests/integration/playbooks/test_cli.py
CLI_TOKENS = {
    "rita": "rita-responder-token-0001",
    "bob": "bob-approver-token-00002",
    "eve": "eve-viewer-token-0000003",
    "dana": "dana-dev-approver-token-4",
}
PRINCIPALS = f"""\
principals:
  - {{name: rita, token: {CLI_TOKENS["rita"]}, roles: [responder]}}
  - {{name: bob, token: {CLI_TOKENS["bob"]}, roles: [approver]}}
  - {{name: eve, token: {CLI_TOKENS["eve"]}, roles: [viewer]}}
  - {{name: dana, token: {CLI_TOKENS["dana"]}, roles: [approver], attributes: {{env: [dev]}}}}
"""


@dataclass
class Content:
    root: Path
    state: Path

    def playbook(self, name: str, text: str) -> Path:
        path = self.root / "playbooks" / f"{name}.yml"
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    def policy(self, text: str) -> None:
        (self.root / "policy.yml").write_text(textwrap.dedent(text), encoding="utf-8")


@pytest.fixture
def content(tmp_path: Path) -> Content:
    root = tmp_path / "content"
    (root / "integrations").mkdir(parents=True)
    (root / "playbooks").mkdir()
    shutil.copy(TESTKIT, root / "integrations" / "testkit.py")
    (root / "inventory.yml").write_text(INVENTORY, encoding="utf-8")
    (root / "policy.yml").write_text(POLICY, encoding="utf-8")
    (root / "principals.yml").write_text(PRINCIPALS, encoding="utf-8")
    return Content(root, tmp_path / "state")


def content_env(content: Content, *, eager: bool = True, redis_db: int = LOCK_DB) -> dict[str, str]:
    return {
        "SOAR_CONTENT_ROOT": str(content.root),
        "SOAR_STATE_DIR": str(content.state),
        "SOAR_CELERY_EAGER": "true" if eager else "false",
        "SOAR_REDIS_URL": redis_url_for_db(redis_db),
        "SOAR_API_TOKENS_FILE": str(content.root / "principals.yml"),
    }


@contextmanager
def content_settings(content: Content, monkeypatch: pytest.MonkeyPatch, **env: str) -> Iterator[Settings]:
    """Settings of the test content root (``env``: more variables), read the normal way (tasks call
    get_settings()); Celery eager. The runtimes the engine caches are forgotten before and after."""
    from soar import celery_app
    from soar.playbooks import dispatch

    for key, value in {**content_env(content), **env}.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    settings = get_settings()
    celery_app.configure(settings)
    dispatch.forget_runtimes()
    yield settings
    dispatch.forget_runtimes()
    get_settings.cache_clear()
    monkeypatch.undo()
    celery_app.configure(get_settings())


@pytest.fixture
def pb_settings(content: Content, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """The content root's settings in the embedded mode (eager, SQLite store)."""
    with content_settings(content, monkeypatch) as settings:
        yield settings


def wait_for(predicate: Any, timeout: float, what: str) -> Any:
    """Poll ``predicate`` until it gives something (another thread or process is at work); fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def alert(
    alert_id: str = "alert-1",
    *,
    rule_id: str = "rule-contain",
    level: str = "high",
    host: str = "dev1",
    user: str = "alice",
    ip: str = "203.0.113.7",
    tags: list[str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "id": alert_id,
        "@timestamp": "2026-11-28T12:00:00.000Z",
        "rule": {"id": rule_id, "title": "Test rule", "level": level, "tags": tags or []},
        "severity": level,
        "risk_score": 73,
        "host": {"name": host},
        "user": {"name": user},
        "source": {"ip": ip},
        **extra,
    }
