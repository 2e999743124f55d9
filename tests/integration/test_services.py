"""The foundation against the real services: Elasticsearch 9, Redis, a Celery worker."""

from __future__ import annotations

import re
import uuid

import redis as redis_lib
from elasticsearch import Elasticsearch

from tests.unit.test_cli import run_soar


def test_services_check_reports_real_versions(es: Elasticsearch, redis: redis_lib.Redis) -> None:
    out = run_soar("services", "check")
    assert out.returncode == 0, out.stderr
    assert re.search(r"^Elasticsearch 9\.\d+\.\d+ at http://127\.0\.0\.1:9200$", out.stdout, re.M), out.stdout
    assert re.search(r"^Redis \d+\.\d+\.\d+ at redis://", out.stdout, re.M), out.stdout


def test_services_check_shows_urls_with_credentials_masked(es: Elasticsearch, redis: redis_lib.Redis) -> None:
    # the test Elasticsearch has no security (the header is ignored) and Redis's default user takes any password
    env = {
        "SOAR_ELASTICSEARCH_URL": "http://elastic:es-pw-51@127.0.0.1:9200",
        "SOAR_REDIS_URL": "redis://default:redis-pw-52@127.0.0.1:6379/0",
    }
    out = run_soar("services", "check", env=env)
    assert out.returncode == 0, out.stderr
    assert "es-pw-51" not in out.stdout + out.stderr and "redis-pw-52" not in out.stdout + out.stderr
    assert re.search(r"^Elasticsearch 9\.\d+\.\d+ at http://elastic:\*\*\*@127\.0\.0\.1:9200$", out.stdout, re.M)
    assert re.search(r"^Redis \d+\.\d+\.\d+ at redis://default:\*\*\*@127\.0\.0\.1:6379/0$", out.stdout, re.M)


def test_services_check_names_the_unreachable_service(es: Elasticsearch) -> None:
    out = run_soar("services", "check", env={"SOAR_ELASTICSEARCH_URL": "http://127.0.0.1:1"})
    assert out.returncode == 2
    assert "Elasticsearch at http://127.0.0.1:1 is not reachable: connection refused" in out.stderr
    assert "Traceback" not in out.stderr


def test_redis_down_is_one_clear_line(redis: redis_lib.Redis) -> None:
    out = run_soar("services", "check", env={"SOAR_REDIS_URL": "redis://127.0.0.1:1/0"})
    assert out.returncode == 2
    assert "Redis at redis://127.0.0.1:1/0 is not reachable: connection refused" in out.stderr


def test_elasticsearch_round_trip(es: Elasticsearch, es_index: str) -> None:
    es.index(index=es_index, document={"user": {"name": "ALICE"}}, refresh=True)
    assert es.count(index=es_index)["count"] == 1


def test_celery_task_runs_on_a_real_worker(celery_app) -> None:  # type: ignore[no-untyped-def]
    from soar.tasks.system import ping

    token = uuid.uuid4().hex
    result = ping.delay(token).get(timeout=30)
    assert result["token"] == token
    assert result["version"]
    import os

    assert result["pid"] != os.getpid(), "the task ran in the test process, not on the worker"
