"""Property-based tests of the whole published OpenAPI spec with schemathesis.

Every operation is called with generated input and an admin token: the API must never
answer 5xx, only with documented status codes and content types, and its bodies must
match the published schemas. Then without a token: every operation but the public ones
must refuse (401). (Schemathesis' pytest plugin does not load under pytest 9, so the
operations are driven with its strategies and Hypothesis directly.)
"""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.integration.api.conftest import Api
from tests.integration.api.lab_content import auth

PUBLIC = {"/health", "/ready", "/slack/interactivity"}  # liveness, readiness; Slack requests are signed
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# The Slack endpoint (notify area) does not document its 401/503 answers yet: only "never a 5xx" applies there.
LENIENT = {"/slack/interactivity": [not_a_server_error]}


def _operations(api: Api) -> list[Any]:
    schema = schemathesis.openapi.from_asgi("/openapi.json", api.client.app)
    ops = [result.ok() for result in schema.get_all_operations()]
    assert len(ops) >= 15, [op.label for op in ops]
    return ops


def _drive(op: Any, examples: int, body: Any) -> None:
    @given(case=op.as_strategy())
    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def run(case: schemathesis.Case) -> None:
        body(case)

    run()


def test_every_operation_conforms_and_never_errors(api: Api) -> None:
    called: list[str] = []
    for op in _operations(api):
        checks = LENIENT.get(op.path, CHECKS)
        _drive(op, 20, lambda case, checks=checks: case.call_and_validate(headers=auth("admin"), checks=checks))
        called.append(op.label)
    assert "POST /ingest/alerts" in called and "GET /runs/{run_id}/report" in called


def test_every_protected_operation_refuses_without_a_token(api: Api) -> None:
    def check(case: schemathesis.Case) -> None:
        response = case.call()
        assert response.status_code < 500, (case.path, response.status_code)
        if case.path not in PUBLIC:
            assert response.status_code in (401, 422), (case.path, response.status_code, response.text[:200])

    for op in _operations(api):
        _drive(op, 5, check)
