"""What every review/response router shares: the store, id validation, and errors as 4xx with one message."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from elastic_transport import ConnectionError as ElasticConnectionError
from fastapi import HTTPException, Path, Request
from redis.exceptions import ConnectionError as RedisConnectionError

from soar.access import PERMISSIONS, require
from soar.config import Settings
from soar.errors import ConfigError, Forbidden, InputError, NotFound, RecordError, ServiceUnavailable, SoarError
from soar.scope import Scopes, scopes_for
from soar.store import Store, open_store

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:\-\[\]]{0,199}$"

# OpenAPI: the errors every protected endpoint may answer, each as {"detail": "<one line>"}
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Bad input (the message names the field)"},
    401: {"description": "Missing or unknown bearer token"},
    403: {"description": "The token's role or attributes do not allow this"},
    503: {"description": "Elasticsearch or Redis is unreachable, or the server is misconfigured"},
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such resource"}}


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def store_of(request: Request) -> Store:
    """One store per application (the Elasticsearch store builds a client and a template once)."""
    state = request.app.state
    store: Store | None = getattr(state, "review_store", None)
    if store is None:
        store = open_store(settings_of(request))
        state.review_store = store
    return store


def scopes_of(request: Request) -> Scopes:
    """The inventory's scopes (re-read when the inventory's content changes)."""
    return scopes_for(settings_of(request))


def impacts(request: Request) -> Any:
    """Action name → impact, from the registry once per application (defaults if an integration is broken)."""
    from soar.review.timeline import default_impact_of, impacts_from_registry

    cached = getattr(request.app.state, "review_impacts", None)
    if cached is None:
        try:
            cached = impacts_from_registry(settings_of(request))
        except SoarError:  # a broken integration must not hide reports and metrics
            cached = default_impact_of
        request.app.state.review_impacts = cached
    return cached


def id_path(what: str) -> Any:
    return Path(..., pattern=ID_PATTERN, max_length=200, description=f"The {what} id")


@contextmanager
def http_errors(not_found: type[SoarError] | None = None) -> Iterator[None]:
    """SoarError → a 4xx (5xx only for a service that is down or misconfigured) with its one-line message."""
    try:
        yield
    except HTTPException:
        raise
    except ServiceUnavailable as exc:
        raise HTTPException(503, str(exc)) from exc
    except (ElasticConnectionError, RedisConnectionError) as exc:
        raise HTTPException(503, f"a service soar depends on is unreachable: {type(exc).__name__}") from exc
    except ConfigError as exc:
        raise HTTPException(503, f"server misconfigured: {exc}") from exc
    except RecordError as exc:  # what the server stored, not what the client sent
        raise HTTPException(500, f"a stored record cannot be read: {exc}") from exc
    except SoarError as exc:
        if isinstance(exc, NotFound) or (not_found is not None and isinstance(exc, not_found)):
            raise HTTPException(404, str(exc)) from exc
        if isinstance(exc, Forbidden):
            raise HTTPException(403, str(exc)) from exc
        raise HTTPException(400 if isinstance(exc, InputError) else 409, str(exc)) from exc


# permission -> the FastAPI dependency that authenticates the token and checks the role
AUTH: dict[str, Any] = {permission: require(permission) for permission in PERMISSIONS}
