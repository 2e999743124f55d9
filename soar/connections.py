"""Clients for the services at soar's edges, built from settings, and their health checks."""

from __future__ import annotations

import errno
from dataclasses import dataclass
from typing import Any

import redis
from elastic_transport import ConnectionError as ESConnectionError
from elastic_transport import ConnectionTimeout as ESConnectionTimeout
from elasticsearch import ApiError, Elasticsearch

from soar.config import Settings
from soar.errors import ServiceUnavailable
from soar.urls import mask_url


def elasticsearch_client(settings: Settings, **kwargs: Any) -> Elasticsearch:
    """An Elasticsearch client for the configured cluster; credentials come only from settings."""
    options: dict[str, Any] = {
        "request_timeout": settings.elasticsearch_timeout,
        "verify_certs": settings.elasticsearch_verify_certs,
        "max_retries": 0,
        "retry_on_timeout": False,
    }
    if settings.elasticsearch_ca_certs:
        options["ca_certs"] = str(settings.elasticsearch_ca_certs)
    if settings.elasticsearch_api_key:
        options["api_key"] = settings.elasticsearch_api_key.get_secret_value()
    elif settings.elasticsearch_username and settings.elasticsearch_password:
        options["basic_auth"] = (
            settings.elasticsearch_username,
            settings.elasticsearch_password.get_secret_value(),
        )
    options.update(kwargs)
    return Elasticsearch(settings.elasticsearch_url, **options)


def redis_client(settings: Settings, timeout: float = 10.0) -> redis.Redis[bytes]:
    """``timeout``: seconds a command may wait (a scheduler's leases pass its cycle's budget)."""
    return redis.Redis.from_url(settings.redis_url, socket_connect_timeout=min(5.0, timeout), socket_timeout=timeout)


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo:
        cur = todo.pop()
        if cur is None or cur in seen:
            continue
        seen.append(cur)
        todo.extend([cur.__cause__, cur.__context__])
    return seen


UNREACHABLE_STATUS = frozenset({429, 502, 503, 504})  # overloaded, restarting or behind a proxy that lost it


def unreachable(exc: BaseException) -> bool:
    """Whether an error means a service is out of reach for now (refused, reset, timed out, answering 503):
    the work that met it is worth doing again later, unlike a bug or a bad record."""
    for e in _chain(exc):
        if isinstance(e, ESConnectionError | ESConnectionTimeout | redis.ConnectionError | redis.TimeoutError):
            return True
        if type(e) is ServiceUnavailable or isinstance(e, ConnectionError | TimeoutError):  # not a host's SSH error
            return True
        if isinstance(e, ApiError) and int(getattr(e.meta, "status", 0) or 0) in UNREACHABLE_STATUS:
            return True
    return False


def _reason(exc: BaseException) -> str:
    """A short human reason for a connection failure, without the stack of wrapped errors."""
    chain = _chain(exc)
    if any(isinstance(e, OSError) and e.errno == errno.ECONNREFUSED for e in chain):
        return "connection refused"
    text = " ".join(f"{e} {e.args}" for e in chain).lower()
    for needle, reason in (
        ("refused", "connection refused"),
        ("timed out", "timed out"),
        ("timeout", "timed out"),
        ("name or service not known", "host name not found"),
        ("temporary failure in name resolution", "host name not found"),
        ("certificate verify failed", "TLS certificate verification failed"),
        ("network is unreachable", "network is unreachable"),
    ):
        if needle in text:
            return reason
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return mask_url(first)[:200]


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    url: str
    version: str


def check_elasticsearch(settings: Settings) -> ServiceStatus:
    """The version of the node we reach, or ServiceUnavailable with one clear reason.

    ``GET /`` is not served by every distribution (the integ-test zip lacks it),
    so the version comes from the local node's info.
    """
    url = mask_url(settings.elasticsearch_url)
    client = elasticsearch_client(settings, request_timeout=min(settings.elasticsearch_timeout, 5.0))
    try:
        info = client.nodes.info(node_id="_local", metric="_none")
    except (ESConnectionError, ESConnectionTimeout) as exc:
        raise ServiceUnavailable(f"Elasticsearch at {url} is not reachable: {_reason(exc)}") from exc
    except ApiError as exc:
        raise ServiceUnavailable(f"Elasticsearch at {url} answered {exc.meta.status}: {exc.message}") from exc
    finally:
        client.close()
    nodes: dict[str, dict[str, Any]] = dict(info.body.get("nodes", {}))
    version = next(iter(nodes.values()), {}).get("version", "unknown")
    return ServiceStatus("Elasticsearch", url, str(version))


def check_redis(settings: Settings) -> ServiceStatus:
    client = redis_client(settings)
    try:
        info: dict[str, Any] = client.info("server")  # type: ignore[assignment]
    except redis.RedisError as exc:
        raise ServiceUnavailable(f"Redis at {mask_url(settings.redis_url)} is not reachable: {_reason(exc)}") from exc
    finally:
        client.close()
    return ServiceStatus("Redis", mask_url(settings.redis_url), str(info.get("redis_version", "unknown")))
