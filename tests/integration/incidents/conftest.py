"""The incident tests reuse the API tests' embedded app over the lab content root (SQLite and Elasticsearch)."""

from tests.integration.api.conftest import api, es_api  # noqa: F401  (fixtures)
