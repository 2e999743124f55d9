"""Slack's interactivity endpoint: verify, acknowledge at once, decide on a worker.

Slack gives an app 3 seconds to answer a click. The endpoint only checks the
signature (and the five-minute replay window), parses the click, remembers it
(a replayed request changes nothing) and hands the work to ``soar.notify.interaction``
— a Celery task, or a background task after the response in embedded mode.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, BackgroundTasks, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

import soar.tasks.notify  # noqa: F401 (registers soar.notify.run_event for eager run events in this process)
from soar.config import Settings
from soar.notify import interactions
from soar.store import open_store

log = logging.getLogger("soar.api.slack")

router = APIRouter(tags=["slack"])

TASK = "soar.notify.interaction"


def _run_inline(settings: Settings, data: dict[str, Any]) -> None:
    store = open_store(settings)
    try:
        interactions.handle(settings, store, interactions.Interaction.from_dict(data))
    except Exception:
        log.exception("Slack interaction %s failed", data.get("id"))
    finally:
        store.close()


def _accept(settings: Settings, click: interactions.Interaction) -> bool:
    store = open_store(settings)
    try:
        return interactions.accept(store, click)
    finally:
        store.close()


@router.post("/slack/interactivity", status_code=200)
async def interactivity(request: Request, background: BackgroundTasks) -> Response:
    settings: Settings = request.app.state.settings
    body = await request.body()
    try:
        interactions.verify(settings, body, request.headers)
        click = interactions.parse(body)
    except interactions.Rejected as exc:
        log.warning("Slack interactivity request refused (%s): %s", exc.status, exc.reason)
        return JSONResponse({"error": exc.reason}, status_code=exc.status)
    fresh = await run_in_threadpool(_accept, settings, click)
    if not fresh:
        return Response(status_code=200)  # the same request again: already being handled
    if settings.celery_eager:
        background.add_task(_run_inline, settings, click.to_dict())
    else:
        from soar.celery_app import app

        app.send_task(TASK, args=[click.to_dict()], queue=settings.response_queue)
    return Response(status_code=200)
