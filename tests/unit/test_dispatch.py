"""The dispatch port: task names, the in-process and the Celery dispatcher (no broker needed)."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from soar import dispatch
from soar.config import load_settings
from soar.dispatch import CeleryDispatcher, EagerDispatcher, Local, Task, dispatcher_for


def test_every_task_name_is_a_registered_celery_task() -> None:
    # in a child: importing the task modules registers their in-process handlers for the rest of a process
    code = (
        "import importlib, json\n"
        "from soar.celery_app import TASK_MODULES, app\n"
        "for name in TASK_MODULES: importlib.import_module(name)\n"
        "print(json.dumps(sorted(app.tasks)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert {str(t) for t in Task} <= set(json.loads(out.stdout))


def test_the_settings_choose_the_dispatcher() -> None:
    assert isinstance(dispatcher_for(load_settings(celery_eager=True)), EagerDispatcher)
    assert isinstance(dispatcher_for(load_settings(celery_eager=False)), CeleryDispatcher)
    assert dispatcher_for(load_settings(celery_eager=True)).in_process
    assert not dispatcher_for(load_settings(celery_eager=False)).in_process


def test_eager_runs_the_callers_here_else_the_registered_handler(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings(celery_eager=True)
    store: Any = object()
    seen: list[tuple[Any, ...]] = []
    monkeypatch.setattr(dispatch, "_HANDLERS", {})
    eager = EagerDispatcher(settings, store)
    assert eager.send(Task.NOTIFY_ALERT, ["a-1"]) is False  # nothing handles it in this process
    dispatch.handles(Task.NOTIFY_ALERT)(lambda local, alert_id: seen.append((local, alert_id)))
    assert eager.send(Task.NOTIFY_ALERT, ["a-1"], queue="notify", countdown=5) is True
    assert seen == [(Local(settings, store), "a-1")]
    assert eager.send(Task.NOTIFY_ALERT, ["a-2"], here=lambda: seen.append(("here",))) is True
    assert seen[-1] == ("here",)  # the caller's own in-process work wins over the handler


def test_eager_loads_the_owner_of_a_run_event(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dispatch, "_HANDLERS", {})
    loaded: list[str] = []
    monkeypatch.setattr(dispatch.importlib, "import_module", lambda name: loaded.append(name))
    assert EagerDispatcher(load_settings(celery_eager=True)).send(Task.RUN_EVENT, ["r", {}]) is False
    assert loaded == ["soar.tasks.notify"]


def test_celery_sends_by_name_without_a_result(monkeypatch: pytest.MonkeyPatch) -> None:
    from soar.celery_app import app

    sent: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(app, "send_task", lambda name, **kw: sent.append((name, kw)))
    celery = CeleryDispatcher()
    celery.send(Task.ADVANCE, ["run-1"], queue="response", here=lambda: pytest.fail("not in this process"))
    celery.send(Task.DELIVER, ["#soc"], queue="notify", countdown=2.5)
    celery.send(Task.INTERACTION, [{"id": "c"}], queue="response", retry_policy={"max_retries": 2})
    assert sent == [
        ("soar.playbooks.advance", {"args": ["run-1"], "queue": "response", "ignore_result": True}),
        ("soar.notify.deliver", {"args": ["#soc"], "queue": "notify", "ignore_result": True, "countdown": 2.5}),
        (
            "soar.notify.interaction",
            {
                "args": [{"id": "c"}],
                "queue": "response",
                "ignore_result": True,
                "retry": True,
                "retry_policy": {"max_retries": 2},
            },
        ),
    ]
    assert all(type(name) is str for name, _ in sent)
