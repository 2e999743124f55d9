"""Fixtures shared by every test: settings and the real services."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis as redis_lib
from elasticsearch import Elasticsearch

from soar.config import Settings, get_settings, load_settings
from soar.connections import check_elasticsearch, check_redis, elasticsearch_client, redis_client
from tests.services import require

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _fresh_settings_cache() -> Iterator[None]:
    """Settings are read once per process; tests that change the environment get a fresh read."""
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings for a test: the repository as content root, state in a temporary folder."""
    return load_settings(content_root=REPO_ROOT, state_dir=tmp_path / "state")


@pytest.fixture(scope="session")
def service_settings() -> Settings:
    return load_settings(content_root=REPO_ROOT)


@pytest.fixture(scope="session")
def es(service_settings: Settings) -> Iterator[Elasticsearch]:
    """A client of the real Elasticsearch 9 started by scripts/services.sh."""
    require("Elasticsearch", lambda: check_elasticsearch(service_settings))
    client = elasticsearch_client(service_settings, request_timeout=60)
    yield client
    client.close()


@pytest.fixture
def es_index(es: Elasticsearch) -> Iterator[str]:
    """A unique throwaway index name, deleted after the test."""
    name = f"soar-test-{uuid.uuid4().hex[:12]}"
    yield name
    es.options(ignore_status=404).indices.delete(index=f"{name}*")


@pytest.fixture(scope="session")
def redis(service_settings: Settings) -> redis_lib.Redis:
    """A client of the real Redis started by scripts/services.sh."""
    require("Redis", lambda: check_redis(service_settings))
    return redis_client(service_settings)


@pytest.fixture(scope="session")
def celery_app(redis: redis_lib.Redis, service_settings: Settings):  # type: ignore[no-untyped-def]
    """soar's Celery app pointed at the real Redis; a worker from scripts/services.sh consumes it."""
    from soar.celery_app import configure

    app = configure(service_settings)

    def _ping_worker() -> object:
        replies = app.control.ping(timeout=2.0)
        if not replies:
            raise RuntimeError("no Celery worker answered a ping")
        return replies

    require("Celery worker", _ping_worker)
    return app


def env_without_soar() -> dict[str, str]:
    """The environment minus SOAR_* settings, for running the CLI as a subprocess."""
    return {k: v for k, v in os.environ.items() if not k.startswith("SOAR_")}


# the fixtures that reach a real service (tests/conftest.py); a test using one belongs under tests/integration
SERVICE_FIXTURES = frozenset({"service_settings", "es", "es_index", "redis", "celery_app"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``pytest -m "not integration"`` must be service-free: a test outside tests/integration that asks for a
    service is a collection error naming it (tests/integration/conftest.py marks everything under it)."""
    integration = REPO_ROOT / "tests" / "integration"
    misplaced = [
        f"{item.nodeid} uses {', '.join(sorted(SERVICE_FIXTURES & set(getattr(item, 'fixturenames', ()))))}"
        for item in items
        if integration not in Path(str(item.path)).resolve().parents
        and SERVICE_FIXTURES & set(getattr(item, "fixturenames", ()))
    ]
    if misplaced:
        raise pytest.UsageError("tests needing a service must live under tests/integration: " + "; ".join(misplaced))
