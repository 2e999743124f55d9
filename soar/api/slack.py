"""Slack's interactivity endpoint: verify, acknowledge at once, decide on a worker.

Slack gives an app 3 seconds to answer a click. The endpoint only checks the
signature (and the five-minute replay window), parses the click, remembers it
(a replayed request changes nothing) and hands the work to ``soar.notify.interaction``
— a Celery task, or a background task after the response in embedded mode.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

from fastapi import APIRouter, BackgroundTasks, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from soar.api.limits import read_limited
from soar.config import Settings
from soar.dispatch import Task, dispatcher_for
from soar.notify import interactions
from soar.store import open_store

log = logging.getLogger("soar.api.slack")

router = APIRouter(tags=["slack"])

TASK = Task.INTERACTION


def _run_inline(settings: Settings, data: dict[str, Any]) -> None:
    store = open_store(settings)
    try:
        interactions.handle(settings, store, interactions.Interaction.from_dict(data))
    except Exception:
        log.exception("Slack interaction %s failed", data.get("id"))
    finally:
        store.close()


# Slack waits 3 s for the answer: a broker that is down must be told quickly, not retried for long.
HANDOFF_RETRY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.25, "interval_max": 0.5}
# Slack sends one click as a form field holding its JSON payload (the message's blocks included): tens of KB
SLACK_MAX_BODY_BYTES = 1024 * 1024
UNAVAILABLE = "soar cannot take the click right now (a service it needs is down); click again shortly"


def _accept(settings: Settings, click: interactions.Interaction) -> bool:
    store = open_store(settings)
    try:
        return interactions.accept(store, click)
    finally:
        store.close()


def _forget(settings: Settings, click: interactions.Interaction) -> None:
    """Undo :func:`_accept` for a click nobody will handle, so the same request sent again is taken."""
    store = open_store(settings)
    try:
        store.delete(interactions.INTERACTIONS_KIND, click.id)
    finally:
        store.close()


def _hand_off(settings: Settings, click: interactions.Interaction, background: BackgroundTasks) -> None:
    """To a worker (no result: the 3 s answer depends on it), or after the response in embedded mode."""
    dispatcher_for(settings).send(
        TASK,
        [click.to_dict()],
        queue=settings.response_queue,
        retry_policy=HANDOFF_RETRY,
        here=partial(background.add_task, _run_inline, settings, click.to_dict()),
    )


def _unavailable(click: interactions.Interaction, what: str, exc: Exception) -> JSONResponse:
    """A 503 Slack shows the clicker as a failure: nothing was decided, and the click can be repeated."""
    log.error("Slack click %s not taken: %s is unreachable (%s)", click.id, what, type(exc).__name__)
    return JSONResponse({"error": UNAVAILABLE}, status_code=503)


@router.post("/slack/interactivity", status_code=200)
async def interactivity(request: Request, background: BackgroundTasks) -> Response:
    settings: Settings = request.app.state.settings
    body = await read_limited(request, SLACK_MAX_BODY_BYTES)
    if body is None:  # before the signature is checked: an unsigned flood is not read into memory
        log.warning("Slack interactivity request refused (413): body over %d bytes", SLACK_MAX_BODY_BYTES)
        return JSONResponse({"error": f"body over {SLACK_MAX_BODY_BYTES} bytes"}, status_code=413)
    try:
        interactions.verify(settings, body, request.headers)
        click = interactions.parse(body)
    except interactions.Rejected as exc:
        log.warning("Slack interactivity request refused (%s): %s", exc.status, exc.reason)
        return JSONResponse({"error": exc.reason}, status_code=exc.status)
    try:
        fresh = await run_in_threadpool(_accept, settings, click)
    except Exception as exc:  # the store is down: nothing was recorded or decided
        return _unavailable(click, "the state store", exc)
    if not fresh:
        return Response(status_code=200)  # the same request again: already being handled
    try:
        await run_in_threadpool(_hand_off, settings, click, background)
    except Exception as exc:  # the broker is down: no worker will see this click, so it must not count as seen
        try:
            await run_in_threadpool(_forget, settings, click)
        except Exception:
            log.error("Slack click %s: could not be forgotten either; a repeat of it is ignored", click.id)
        return _unavailable(click, "the task broker", exc)
    return Response(status_code=200)
