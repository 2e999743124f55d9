"""The dispatch port: hand work to a task by name, to a Celery worker or to this process.

Callers name a task (:class:`Task`) and never import the module that handles it, nor Celery:

- :class:`CeleryDispatcher` sends it to the broker (``send_task``, results ignored); it is the only module
  besides ``soar.celery_app`` and the task modules (``soar.tasks.*``) that imports the Celery app.
- :class:`EagerDispatcher` (``celery_eager``, the embedded default) runs it in this process, now: the
  ``here`` the caller gave, else the in-process handler registered for the name (:func:`handles`), else
  nothing (``send`` says so). A countdown is not waited for: in-process handlers wait themselves (a run
  sleeps a retry's backoff, delivery retries on timers).

:func:`dispatcher_for` picks one from the settings; no other module reads ``celery_eager``.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from soar.config import Settings

if TYPE_CHECKING:
    from soar.store import Store

log = logging.getLogger(__name__)


class Task(StrEnum):
    """Every task soar sends, by the name its Celery task registers under (``soar.tasks.*``)."""

    PING = "soar.system.ping"
    RUN_RULES = "soar.detection.run_rules"
    HANDLE_ALERT = "soar.playbooks.handle_alert"
    ADVANCE = "soar.playbooks.advance"
    RECOVER = "soar.playbooks.recover"
    RUN_EVENT = "soar.notify.run_event"
    NOTIFY_ALERT = "soar.notify.alert"
    DELIVER = "soar.notify.deliver"
    INTERACTION = "soar.notify.interaction"
    CHECK_CONTAINMENT = "soar.containment.check"


@dataclass(frozen=True)
class Local:
    """What an in-process handler gets besides the task's arguments: the sender's settings and store."""

    settings: Settings
    store: Store | None = None


Handler = Callable[..., object]  # (local: Local, *args) -> anything (ignored)

_HANDLERS: dict[Task, Handler] = {}
# Loaded on the first in-process send of their task: an eager run's events reach the on-call, and a run
# resumed by an approval goes on. The playbook engine is not loaded for a new alert: a process that runs
# playbooks in-process imports ``soar.tasks.playbooks`` (the demo, the API), a bare detector logs the alert.
_OWNERS: Mapping[Task, str] = {
    Task.RUN_EVENT: "soar.tasks.notify",
    Task.ADVANCE: "soar.playbooks.dispatch",
    Task.CHECK_CONTAINMENT: "soar.tasks.containment",
}


def handles(name: Task) -> Callable[[Handler], Handler]:
    """Register the in-process handler of a task (for :class:`EagerDispatcher`)."""

    def register(fn: Handler) -> Handler:
        _HANDLERS[name] = fn
        return fn

    return register


class Dispatcher(Protocol):
    """Send a task by name. ``in_process``: sent work runs in this process (no broker, no worker)."""

    @property
    def in_process(self) -> bool: ...

    def send(
        self,
        name: Task,
        args: Sequence[Any] = (),
        *,
        queue: str | None = None,
        countdown: float | None = None,
        retry_policy: Mapping[str, Any] | None = None,
        here: Callable[[], object] | None = None,
    ) -> bool:
        """Hand the task over; False when nothing in this process handles it (eager only)."""
        ...


class EagerDispatcher:
    """Runs a task in this process, now (see the module's docstring)."""

    in_process = True

    def __init__(self, settings: Settings, store: Store | None = None) -> None:
        self.local = Local(settings, store)

    def send(
        self,
        name: Task,
        args: Sequence[Any] = (),
        *,
        queue: str | None = None,
        countdown: float | None = None,
        retry_policy: Mapping[str, Any] | None = None,
        here: Callable[[], object] | None = None,
    ) -> bool:
        if here is not None:
            here()
            return True
        handler = _HANDLERS.get(name)
        if handler is None and name in _OWNERS:
            importlib.import_module(_OWNERS[name])
            handler = _HANDLERS.get(name)
        if handler is None:
            return False
        handler(self.local, *args)
        return True


class CeleryDispatcher:
    """Sends a task to the broker; nobody reads a task's result (the store holds every outcome)."""

    in_process = False

    def send(
        self,
        name: Task,
        args: Sequence[Any] = (),
        *,
        queue: str | None = None,
        countdown: float | None = None,
        retry_policy: Mapping[str, Any] | None = None,
        here: Callable[[], object] | None = None,
    ) -> bool:
        from soar.celery_app import app

        options: dict[str, Any] = {"queue": queue, "ignore_result": True}
        if countdown is not None:
            options["countdown"] = countdown
        if retry_policy is not None:
            options.update(retry=True, retry_policy=dict(retry_policy))
        app.send_task(str(name), args=list(args), **options)
        return True


def dispatcher_for(settings: Settings, store: Store | None = None) -> Dispatcher:
    """In-process (embedded mode, ``celery_eager``) or Celery; ``store`` is what in-process handlers use."""
    if settings.celery_eager:
        return EagerDispatcher(settings, store)
    return CeleryDispatcher()


def configure(settings: Settings) -> None:
    """Point the Celery app at these settings' broker (and eager mode), for a process that sends tasks."""
    from soar.celery_app import configure as configure_app

    configure_app(settings)
