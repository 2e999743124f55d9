"""The edges a process needs for detection, built once from settings: store, Elasticsearch, hand-off."""

from __future__ import annotations

import logging
import threading
from typing import Any

from elasticsearch import Elasticsearch

from soar.config import Settings
from soar.connections import elasticsearch_client, redis_client
from soar.dispatch import Task, dispatcher_for
from soar.scheduler.alerting import Dispatch
from soar.scheduler.cycle import Detector
from soar.scheduler.loop import Leases, RedisLeases, StoreLeases
from soar.store import Store, open_store

log = logging.getLogger(__name__)

_lock = threading.Lock()
_cache: dict[str, Any] = {}


def alert_handoff(settings: Settings, store: Store | None = None) -> Dispatch:
    """Hand an alert id to the playbook engine by task name (the engine is never imported here).

    The engine attaches the alert to its incident (``soar.tasks.playbooks.handle_alert``: in a worker, off
    detection's path); a process with no engine to hand it to (a bare eager detector) queues it for its
    background attacher (:mod:`soar.incidents.deferred`), so every alert gets its incident without making
    the cycle wait. ``store``: the one the alert is in (default: this process's store).
    """
    dispatcher = dispatcher_for(settings)

    def send(alert_id: str) -> None:
        try:
            handled = dispatcher.send(Task.HANDLE_ALERT, [alert_id], queue=settings.response_queue)
        except Exception as exc:
            if not dispatcher.in_process:
                raise  # the broker is down: the caller decides
            log.error("playbook hand-off of alert %s failed: %s", alert_id, exc)  # must not stop detection
            return
        if not handled:
            from soar.incidents.deferred import attacher_for

            log.info("alert %s created (no playbook engine registered)", alert_id)
            attacher_for(store if store is not None else store_for(settings), settings).put(alert_id)

    return send


def _cached(key: str, build: Any) -> Any:
    with _lock:
        if key not in _cache:
            _cache[key] = build()
        return _cache[key]


# Every client below waits at most ``Settings.cycle_request_timeout`` per request (sized to the detection interval),
# so a dependency that never answers costs a tick that much, not the interactive ``elasticsearch_timeout``.


def store_for(settings: Settings) -> Store:
    key = f"store:{settings.store}:{settings.state_dir}:{settings.index_prefix}"
    return _cached(key, lambda: open_store(settings.for_cycles()))  # type: ignore[no-any-return]


def es_for(settings: Settings) -> Elasticsearch:
    return _cached(f"es:{settings.elasticsearch_url}", lambda: elasticsearch_client(settings.for_cycles()))  # type: ignore[no-any-return]


def leases_for(settings: Settings) -> Leases:
    """One lease mechanism in every mode: Redis where the deployment has it, else the state store (eager mode),
    so two schedulers share the rules either way."""
    if dispatcher_for(settings).in_process:
        key = f"leases:store:{settings.store}:{settings.state_dir}:{settings.index_prefix}"
        return _cached(key, lambda: StoreLeases(lambda: store_for(settings)))  # type: ignore[no-any-return]
    timeout = settings.cycle_request_timeout
    return _cached(f"leases:{settings.redis_url}", lambda: RedisLeases(redis_client(settings, timeout=timeout)))  # type: ignore[no-any-return]


def detector_for(settings: Settings) -> Detector:
    return Detector(settings.for_cycles(), store_for(settings), es_for(settings), alert_handoff(settings))


def reset() -> None:
    """Forget the cached clients (tests, and after a fork)."""
    with _lock:
        _cache.clear()
