"""The on-call's web console, served by ``soar api`` under ``/console``: same process, principals and scopes as the API.

A sub-application (its own error pages; not in the API's OpenAPI document) of server-rendered pages, one
module per page group. Every action is a plain HTML form (works without JavaScript) carrying the
session's CSRF token; the only script (``static/console.js``, ours) turns the queue's server-sent events
into a refreshed table.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from soar.config import Settings

STATIC = Path(__file__).resolve().parent / "static"
PAGES = [
    "soar.console.signin",
    "soar.console.queue",
    "soar.console.alert",
    "soar.console.incident",
    "soar.console.run",
    "soar.console.rules",
    "soar.console.metrics",
    "soar.console.audit",
]


def create_console(settings: Settings) -> FastAPI:
    from soar.console.web import HEADERS, PREFIX, SignIn, me, page

    console = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    console.state.settings = settings
    for name in PAGES:
        console.include_router(importlib.import_module(name).router)
    console.mount("/static", StaticFiles(directory=str(STATIC)), name="static")

    @console.get("/", include_in_schema=False)
    def home() -> RedirectResponse:
        return RedirectResponse(PREFIX + "/alerts", status_code=303)

    @console.exception_handler(SignIn)
    def signin(request: Request, exc: SignIn) -> Response:
        from urllib.parse import quote

        if request.method != "GET":  # a form posted without a session: refused, not redirected
            return page("error.html.j2", None, 403, status=403, message="not signed in (or the session expired)")
        return RedirectResponse(f"{PREFIX}/login?next={quote(exc.next_path)}", status_code=303, headers=HEADERS)

    @console.exception_handler(HTTPException)
    def http_error(request: Request, exc: HTTPException) -> Response:
        try:
            who = me(request)
        except SignIn:
            who = None
        return page("error.html.j2", who, exc.status_code, status=exc.status_code, message=str(exc.detail))

    @console.exception_handler(RequestValidationError)
    def bad_input(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return page("error.html.j2", None, 400, status=400, message=f"{where}: {first.get('msg', 'bad input')}")

    return console
