"""Liveness and readiness for load balancers, compose healthchecks and supervisors (no authentication, no data).

``/health``: the process answers. ``/ready``: it can serve, i.e. its state store answers (and Redis, unless
tasks run in-process); 503 naming what is down otherwise. Neither says more than up or down.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from soar import __version__

router = APIRouter(tags=["health"])


@router.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok", "version": __version__}


@router.get("/ready", responses={503: {"description": "A dependency is down (named)"}})
def ready(request: Request) -> JSONResponse:
    from soar.api._common import settings_of, store_of
    from soar.connections import check_redis
    from soar.dispatch import dispatcher_for
    from soar.liveness import reason

    settings = settings_of(request)
    down: dict[str, str] = {}
    try:
        store_of(request).count("alerts", {"id": "-"})  # a query the store must answer
    except Exception as exc:  # unreachable or refusing: not ready
        down["store"] = reason(exc)
    if not dispatcher_for(settings).in_process:
        try:
            check_redis(settings)
        except Exception as exc:  # the broker: runs and clicks cannot be handed to workers
            down["redis"] = reason(exc)
    if down:
        return JSONResponse({"status": "not ready", "down": down}, status_code=503)
    return JSONResponse({"status": "ready", "version": __version__})
