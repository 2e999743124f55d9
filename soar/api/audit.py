"""Audit: verify the hash chain, and read entries of a period."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request

from soar.access import Principal
from soar.api._common import AUTH, ERRORS, http_errors, settings_of, store_of

router = APIRouter(tags=["audit"], responses=ERRORS)


@router.get("/audit/verify", summary="Recompute the audit chain; name every modified, removed or reordered entry")
def verify_chain(request: Request, principal: Principal = AUTH["audit:read"]) -> dict[str, Any]:
    from soar.audit import verify

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
