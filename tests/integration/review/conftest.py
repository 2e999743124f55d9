"""The review CLI tests reuse the API tests' embedded app over the lab content root."""

from tests.integration.api.conftest import api  # noqa: F401  (a fixture)
