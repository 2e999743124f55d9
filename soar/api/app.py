"""The FastAPI application factory. Each concept adds its router module to ``ROUTERS``."""

from __future__ import annotations

import importlib

from fastapi import FastAPI

from soar import __version__
from soar.config import Settings, get_settings

# Modules exposing ``router`` (an APIRouter). Order is the order in the OpenAPI spec.
ROUTERS: list[str] = [
    "soar.api.health",
    "soar.api.slack",
    "soar.api.alerts",
    "soar.api.incidents",
    "soar.api.runs",
    "soar.api.feedback",
    "soar.api.audit",
    "soar.api.metrics",
    "soar.api.ingest",
]


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = FastAPI(title="soar", version=__version__, description="Detection and fast response API.")
    app.state.settings = settings
    for module_name in ROUTERS:
        module = importlib.import_module(module_name)
        app.include_router(module.router)
    from soar.console import create_console

    app.mount("/console", create_console(settings))  # the on-call's web console (soar/console/)
    return app
