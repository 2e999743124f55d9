"""What every console page shares: the signed-in principal, CSRF-checked forms, the sandboxed templates, the headers.

A page handler receives ``Me`` (the session's principal, re-read from the principals file on every
request, so a revoked token ends its sessions) and renders a template; a form handler receives a
``Form`` whose synchronizer token was already checked (403 without it). Role and scope are checked
with the API's functions (``soar.access``), never re-implemented here.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

from fastapi import Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2.sandbox import SandboxedEnvironment

from soar import __version__
from soar.access import Principal, authorize
from soar.api._common import settings_of, store_of
from soar.console import sessions
from soar.review.render import sandboxed

TEMPLATES = Path(__file__).resolve().parent / "templates"
PREFIX = "/console"
MAX_FORM_BYTES = 64 * 1024
# no inline script, nothing from elsewhere: the stylesheet and the one script are files served by the console
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}

_env: SandboxedEnvironment | None = None


def environment() -> SandboxedEnvironment:
    global _env
    if _env is None:
        _env = sandboxed(TEMPLATES)
        _env.filters["when"] = lambda v: str(v or "—")[:19].replace("T", " ")
        _env.globals["prefix"] = PREFIX
        _env.globals["version"] = __version__
    return _env


class SignIn(Exception):
    """No valid session: the console app answers with the sign-in page's address."""

    def __init__(self, next_path: str) -> None:
        self.next_path = next_path


@dataclass(frozen=True)
class Me:
    """The signed-in principal and its session's CSRF token."""

    principal: Principal
    csrf: str

    def can(self, permission: str) -> bool:
        """The role half of ``authorize`` (a resource's scope is checked where the resource is read)."""
        return authorize(Principal(self.principal.name, self.principal.roles), permission).allowed

    def need(self, permission: str) -> None:
        decision = authorize(Principal(self.principal.name, self.principal.roles), permission)
        if not decision.allowed:
            raise HTTPException(403, decision.reason)


def me(request: Request) -> Me:
    """The session's principal; ``SignIn`` (a redirect to the sign-in page) without a valid session."""
    raw = request.cookies.get(sessions.COOKIE, "")
    found = sessions.lookup(store_of(request), settings_of(request), raw) if raw else None
    if found is None:
        raise SignIn(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
    return Me(found.principal, found.csrf)


ME: Any = Depends(me)


@dataclass(frozen=True)
class Form:
    """A posted form whose CSRF token matched the session's."""

    me: Me
    fields: dict[str, list[str]]

    def one(self, name: str, default: str = "") -> str:
        values = self.fields.get(name)
        return values[0].strip() if values else default

    def many(self, name: str) -> list[str]:
        return [v for v in self.fields.get(name, []) if v]


async def read_form(request: Request) -> dict[str, list[str]]:
    """An url-encoded body (what a form without JavaScript posts), bounded in size."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise HTTPException(415, "the console accepts url-encoded forms only")
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise HTTPException(413, f"the form is larger than {MAX_FORM_BYTES} bytes")
    try:
        return parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=2000)
    except (UnicodeDecodeError, ValueError) as exc:
        raise HTTPException(400, f"the form cannot be read: {exc}") from exc


async def form(request: Request, who: Me = ME) -> Form:
    """The posted form, after its synchronizer token is compared with the session's: 403 when it is not there."""
    fields = await read_form(request)
    sent = (fields.get("csrf") or [""])[0]
    if not sent or not hmac.compare_digest(sent.encode(), who.csrf.encode()):
        raise HTTPException(403, "the form's CSRF token is missing or does not match this session; reload the page")
    return Form(who, fields)


FORM: Any = Depends(form)


def page(template: str, who: Me | None, code: int = 200, **context: Any) -> HTMLResponse:
    """A rendered page with the console's headers."""
    html = environment().get_template(template).render(me=who, **context)
    return HTMLResponse(html, status_code=code, headers=HEADERS)


def back(to: str, **params: Any) -> RedirectResponse:
    """303 to a console page (after a form): only a path inside the console, never elsewhere."""
    target = to if to.startswith(PREFIX + "/") and not to.startswith("//") and "\\" not in to else PREFIX + "/alerts"
    extra = urlencode({k: v for k, v in params.items() if v is not None})
    if extra:
        target += ("&" if "?" in target else "?") + extra
    return RedirectResponse(target, status_code=303, headers=HEADERS)
