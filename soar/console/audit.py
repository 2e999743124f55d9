"""Audit: the chain's verification, the latest entries, and the evidence bundle's export (admin, unscoped)."""

from __future__ import annotations

import json

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, Response

from soar.api._common import http_errors, settings_of, store_of
from soar.audit import record
from soar.console.web import FORM, HEADERS, ME, Form, Me, page

router = APIRouter()

SHOWN = 50


def _unscoped(who: Me) -> None:
    """As in the API: the audit log spans every tenant, so a scoped principal may not read it."""
    if who.principal.attributes:
        scopes = ", ".join(f"{k}={','.join(v)}" for k, v in sorted(who.principal.attributes.items()))
        raise HTTPException(
            403, f"{who.principal.name} is scoped to {scopes}; the audit log needs an unscoped principal"
        )


@router.get("/audit", response_class=HTMLResponse)
def audit(request: Request, who: Me = ME) -> HTMLResponse:
    from soar.audit import verify
    from soar.audit.chain import KIND

    who.need("audit:read")
    _unscoped(who)
    with http_errors():
        result = verify(store_of(request), settings_of(request)).to_dict()
        latest = [r.doc for r in store_of(request).find(KIND, {}, order_by="key", descending=True, limit=SHOWN)]
    return page("audit.html.j2", who, verify=result, entries=latest)


@router.post("/audit/export")
def export(request: Request, posted: Form = FORM) -> Response:
    """The evidence bundle (as ``GET /audit/export`` answers it), downloaded; the export itself is audited."""
    from soar.audit.export import build_bundle
    from soar.review.times import parse_time

    posted.me.need("audit:export")
    _unscoped(posted.me)
    period = posted.one("from", "30d")
    with http_errors():
        start = parse_time(period, what="from")
        bundle, _text = build_bundle(store_of(request), settings_of(request), start=start, end=None)
        record(
            store_of(request), actor=posted.me.principal.name, action="audit.exported",
            details={"via": "console", "from": bundle["from"], "to": bundle["to"], "count": bundle["count"],
                     "chain_ok": bundle["verification"]["ok"]},
            settings=settings_of(request),
        )  # fmt: skip
    body = json.dumps(bundle, indent=2, sort_keys=True, default=str)
    disposition = {"Content-Disposition": 'attachment; filename="soar-audit-export.json"'}
    return Response(body, media_type="application/json", headers={**HEADERS, **disposition})
