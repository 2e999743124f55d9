"""docker-compose.yml: every long-running soar process has a healthcheck, and waits for healthy dependencies (#21).

Parsed as docker-compose reads it (YAML merge keys included); ``make compose-check`` validates the schema itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"
SOAR_PROCESSES = {"worker": "worker", "scheduler": "scheduler", "api": "api"}


def _services() -> dict[str, Any]:
    doc = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    services: dict[str, Any] = doc["services"]
    return services


def test_every_service_has_a_healthcheck() -> None:
    services = _services()
    assert {"elasticsearch", "redis", *SOAR_PROCESSES} <= services.keys()
    for name, service in services.items():
        check = service.get("healthcheck") or {}
        assert check.get("test"), f"{name}: no healthcheck"
        assert check.get("interval") and check.get("timeout") and check.get("retries"), f"{name}: {check}"


def test_soar_processes_wait_for_healthy_dependencies_and_check_their_own_readiness() -> None:
    services = _services()
    for name, command in SOAR_PROCESSES.items():
        service = services[name]
        assert service["command"][0] == command
        depends = service.get("depends_on") or {}
        assert {d: c.get("condition") for d, c in depends.items()} == {
            "elasticsearch": "service_healthy",
            "redis": "service_healthy",
        }, f"{name}: {depends}"
        assert service.get("restart") in ("unless-stopped", "always", "on-failure"), name
        test = " ".join(service["healthcheck"]["test"])
        # its own readiness (heartbeat or /ready), not merely "Elasticsearch answers"
        assert f"--process {name}" in test or "/ready" in test, f"{name}: {test}"
