"""Console sessions: a principal's token exchanged once for a random session id kept server-side, with an expiry.

The cookie holds only the session id; the store holds its SHA-256 (a copy of the store does not sign
anyone in), the principal's name and token digest (a revoked or changed token ends the session), the
CSRF token of its forms and when it expires. Signing out deletes the record.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

from soar.access import Principal, load_principals
from soar.alerts import utcnow_iso
from soar.config import Settings
from soar.store import Range, Store

KIND = "console_sessions"
COOKIE = "soar_session"
LOGIN_COOKIE = "soar_signin"  # the sign-in form's CSRF token before there is a session (double submit)
LIFETIME = 8 * 3600  # seconds a session lasts from sign-in (an on-call shift)


@dataclass(frozen=True)
class Session:
    principal: Principal
    csrf: str
    expires_at: float


def _key(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def start(store: Store, principal: Principal, *, now: float | None = None) -> tuple[str, Session]:
    """A new session for ``principal``: (the cookie's value, the session). Expired sessions are swept here."""
    now = time.time() if now is None else now
    for old in store.find(KIND, {"expires_at": Range(lt=now)}, limit=100):
        store.delete(KIND, old.id)
    raw = secrets.token_urlsafe(32)
    session = Session(principal, secrets.token_urlsafe(32), now + LIFETIME)
    store.put(
        KIND,
        _key(raw),
        {
            "principal": principal.name,
            "token_sha256": principal.token_sha256,
            "csrf": session.csrf,
            "created_at": utcnow_iso(),
            "expires_at": session.expires_at,
        },
    )
    return raw, session


def lookup(store: Store, settings: Settings, raw: str, *, now: float | None = None) -> Session | None:
    """The live session of this cookie value, or None (unknown, expired, or its principal's token changed)."""
    if not raw or len(raw) > 200:
        return None
    rec = store.get(KIND, _key(raw))
    if rec is None:
        return None
    doc = rec.doc
    if float(doc.get("expires_at") or 0) <= (time.time() if now is None else now):
        store.delete(KIND, rec.id)
        return None
    principal = next(
        (
            p
            for p in load_principals(settings).items
            if p.name == doc.get("principal") and p.token_sha256 and p.token_sha256 == doc.get("token_sha256")
        ),
        None,
    )
    return None if principal is None else Session(principal, str(doc["csrf"]), float(doc["expires_at"]))


def end(store: Store, raw: str) -> None:
    if raw and len(raw) <= 200:
        store.delete(KIND, _key(raw))
