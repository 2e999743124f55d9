"""The console's fixtures: the API app over the lab content (tests/integration/api), signed-in clients."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from tests.integration.api.conftest import Api, _api, api, contained_incident, es_api  # noqa: F401  (fixtures re-exported)
from tests.integration.api.lab_content import TOKENS

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


def sign_in(client: TestClient, role: str) -> str:
    """Sign ``client`` in as the lab principal of ``role``; the session's CSRF token."""
    form = client.get("/console/login")
    assert form.status_code == 200, form.text
    done = client.post(
        "/console/login",
        data={"csrf": csrf_of(form.text), "token": TOKENS[role], "next": "/console/alerts"},
        follow_redirects=False,
    )
    assert done.status_code == 303, done.text
    queue = client.get("/console/alerts")
    assert queue.status_code == 200, queue.text
    return csrf_of(queue.text)
