"""The Celery application. Tasks live in ``soar.tasks.*`` and stay thin.

Response work runs on its own queue so detection load never delays it, and notifications on
another so a Slack backlog never delays a containment step.
``celery_eager`` (the embedded default) runs tasks in-process with the same code.
"""

from __future__ import annotations

from typing import Any

from celery import Celery

from soar.config import Settings, get_settings

TASK_MODULES = [
    "soar.tasks.system",
    "soar.tasks.detection",
    "soar.tasks.playbooks",
    "soar.tasks.notify",
    "soar.tasks.containment",
]

app = Celery("soar", include=TASK_MODULES, set_as_current=True)


PUBLISH_TRIES = 2  # a publish and one retry


def celery_config(settings: Settings) -> dict[str, Any]:
    # Redis that accepts and never answers (a black hole) must cost a publish at most the scheduler's tick
    # budget, not forever (kombu's socket timeout is none by default): a publish, the reconnection before its
    # retry and the retry each wait a third of it. A worker's BRPOP is not bounded by it (kombu's event loop
    # checks that one).
    wait = settings.cycle_request_timeout / (2 * PUBLISH_TRIES - 1)
    return {
        "broker_url": settings.redis_url,
        "result_backend": settings.redis_url,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "task_always_eager": settings.celery_eager,
        "task_eager_propagates": True,
        # Tasks are idempotent, so a worker killed mid-task hands its task to another.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "broker_transport_options": {
            "visibility_timeout": 3600,
            "socket_timeout": wait,
            "socket_connect_timeout": wait,
        },
        "broker_connection_timeout": wait,
        "task_publish_retry_policy": {
            "max_retries": PUBLISH_TRIES - 1,
            "interval_start": 0,
            "interval_step": 0.2,
            "interval_max": 0.2,
        },
        "redis_socket_timeout": wait,  # the result backend (a ping's answer, a cycle's report)
        "redis_socket_connect_timeout": wait,
        "broker_connection_retry_on_startup": True,
        # Nobody reads a task's return value (the store holds every outcome): storing it costs a Redis
        # write per task, and a sender subscribing to it retries a lost Redis for 20 s before failing.
        "task_ignore_result": True,
        "result_expires": 24 * 3600,
        "task_default_queue": "default",
        "task_routes": {
            "soar.detection.*": {"queue": settings.detection_queue},
            "soar.playbooks.*": {"queue": settings.response_queue},
            "soar.notify.*": {"queue": settings.notify_queue},
            "soar.containment.*": {"queue": settings.response_queue},
        },
        "worker_hijack_root_logger": False,
        "worker_redirect_stdouts": False,
    }


def configure(settings: Settings) -> Celery:
    """Point the app at the configured Redis (and eager mode for the embedded default).

    Pointed at another Redis, it is a new app: a live one's broker connections, producers and result backend
    are cached inside it, still leading to the old Redis, and Celery offers no public way to reset them. The
    tasks are declared shared (``app.task``'s default), so the new app registers them as it is finalized;
    senders import ``app`` when they send (``soar.dispatch``), so a message sent after a reconfiguration
    reaches the new Redis. The old app keeps its settings for whoever still holds it.
    """
    global app
    new = celery_config(settings)
    if app.conf.broker_url != new["broker_url"] or app.conf.result_backend != new["result_backend"]:
        app = Celery("soar", include=TASK_MODULES, set_as_current=True)
        # The old app's connections are left to close with it: its pool is kombu's process-wide pool for that
        # Redis URL, which an app pointed there again reuses (closing it broke every later send there).
    app.conf.update(new)
    return app


def all_queues(settings: Settings) -> list[str]:
    return ["default", settings.detection_queue, settings.response_queue, settings.notify_queue]


configure(get_settings())
