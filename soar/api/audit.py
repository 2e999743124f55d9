"""Audit: verify the hash chain, and read entries of a period."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request

from soar.access import Principal
from soar.api._common import AUTH, ERRORS, http_errors, settings_of, store_of

router = APIRouter(tags=["audit"], responses=ERRORS)


def _unscoped(principal: Principal) -> None:
    """The audit log spans every tenant: a principal scoped by attributes may not read it."""
    if principal.attributes:
        scopes = ", ".join(f"{k}={','.join(v)}" for k, v in sorted(principal.attributes.items()))
        raise HTTPException(403, f"{principal.name} is scoped to {scopes}; the audit log needs an unscoped principal")


@router.get("/audit/verify", summary="Recompute the audit chain; name every modified, removed or reordered entry")
def verify_chain(request: Request, principal: Principal = AUTH["audit:read"]) -> dict[str, Any]:
    from soar.audit import verify

    _unscoped(principal)
    with http_errors():
        return verify(store_of(request), settings_of(request)).to_dict()


@router.get("/audit/entries", summary="Audit entries in a time range")
def entries(
    request: Request,
    start: str | None = Query(None, alias="from", max_length=64, description="ISO time or a duration ago (30d)"),
    end: str | None = Query(None, alias="to", max_length=64, description="ISO time or a duration ago"),
    limit: int = Query(1000, ge=1, le=10000),
    principal: Principal = AUTH["audit:read"],
) -> list[dict[str, Any]]:
    from soar.audit import iter_entries
    from soar.review.times import check_range, parse_time, to_iso

    _unscoped(principal)
    with http_errors():
        t1 = parse_time(start, what="from") if start else None
        t2 = parse_time(end, what="to") if end else None
        check_range(t1, t2, what="from/to")
        out = []
        for entry in iter_entries(store_of(request), start=to_iso(t1) if t1 else None, end=to_iso(t2) if t2 else None):
            out.append({k: v for k, v in entry.items() if k != "_id"})
            if len(out) >= limit:
                break
        return out


@router.get("/audit/export", summary="An evidence bundle of a period: entries, their hashes, the chain's verification")
def export(
    request: Request,
    start: str | None = Query(None, alias="from", max_length=64, description="ISO time or a duration ago (30d)"),
    end: str | None = Query(None, alias="to", max_length=64, description="ISO time or a duration ago"),
    principal: Principal = AUTH["audit:export"],
) -> dict[str, Any]:
    from soar.audit import record
    from soar.audit.export import build_bundle
    from soar.review.times import parse_time

    _unscoped(principal)
    with http_errors():
        t1 = parse_time(start, what="from") if start else None
        t2 = parse_time(end, what="to") if end else None
        bundle, _text = build_bundle(store_of(request), settings_of(request), start=t1, end=t2)
        record(
            store_of(request),
            actor=principal.name,
            action="audit.exported",
            details={
                "via": "api",
                "from": bundle["from"],
                "to": bundle["to"],
                "count": bundle["count"],
                "first_seq": bundle["first_seq"],
                "last_seq": bundle["last_seq"],
                "key_id": bundle["signature"]["key_id"],
                "chain_ok": bundle["verification"]["ok"],
            },
            settings=settings_of(request),
        )
        return bundle
