"""Sign in with a principal's API token (exchanged for a session cookie), sign out."""

from __future__ import annotations

import hmac
import secrets

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from soar.access import principal_for_token
from soar.api._common import settings_of, store_of
from soar.audit import record
from soar.console import sessions
from soar.console.web import FORM, PREFIX, Form, back, page, read_form

router = APIRouter()


def _next(path: str) -> str:
    """Where to go after signing in: a console path only (an open redirect would hand the session elsewhere)."""
    ok = path.startswith(PREFIX + "/") and not path.startswith("//") and "\\" not in path and "\n" not in path
    return path if ok else PREFIX + "/alerts"


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def _signin_page(request: Request, next_path: str, error: str = "", status: int = 200) -> HTMLResponse:
    token = secrets.token_urlsafe(24)
    response = page("signin.html.j2", None, status, csrf=token, next=_next(next_path), error=error)
    response.set_cookie(
        sessions.LOGIN_COOKIE, token, max_age=900, path=PREFIX, httponly=True, samesite="strict",
        secure=_secure(request),
    )  # fmt: skip
    return response


@router.get("/login", response_class=HTMLResponse)
def signin_form(request: Request, next: str = PREFIX + "/alerts") -> HTMLResponse:
    return _signin_page(request, next)


@router.post("/login", response_model=None)
async def signin(request: Request) -> Response:
    """The token is compared by digest; the session cookie is HttpOnly, SameSite=Strict, Secure over https."""
    fields = await read_form(request)
    sent = (fields.get("csrf") or [""])[0]
    expected = request.cookies.get(sessions.LOGIN_COOKIE, "")
    next_path = _next((fields.get("next") or [""])[0])
    if not sent or not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        return _signin_page(request, next_path, "The form expired or its CSRF token is missing; try again.", 403)
    token = (fields.get("token") or [""])[0].strip()
    settings = settings_of(request)
    principal = principal_for_token(settings, token) if 0 < len(token) <= 500 else None
    store = store_of(request)
    if principal is None:
        record(store, actor="console", action="console.signin_refused", details={"via": "console"}, settings=settings)
        return _signin_page(request, next_path, "Unknown token.", 401)
    raw, _session = sessions.start(store, principal)
    record(
        store, actor=principal.name, action="console.signed_in", details={"role": principal.role, "via": "console"},
        settings=settings,
    )  # fmt: skip
    response = RedirectResponse(next_path, status_code=303)
    response.set_cookie(
        sessions.COOKIE, raw, max_age=sessions.LIFETIME, path=PREFIX, httponly=True, samesite="strict",
        secure=_secure(request),
    )  # fmt: skip
    response.delete_cookie(sessions.LOGIN_COOKIE, path=PREFIX)
    return response


@router.post("/logout", response_model=None)
def signout(request: Request, posted: Form = FORM) -> Response:
    sessions.end(store_of(request), request.cookies.get(sessions.COOKIE, ""))
    record(
        store_of(request), actor=posted.me.principal.name, action="console.signed_out", details={"via": "console"},
        settings=settings_of(request),
    )  # fmt: skip
    response = back(PREFIX + "/login")
    response.delete_cookie(sessions.COOKIE, path=PREFIX)
    return response
