"""Rule exceptions proposed from false positives: list them, and approve or reject them (admins).

Both are scoped by the exception's own scope (the alert it came from); an exception outside the principal's
scope answers 404, like an unknown id, and is never listed.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request

from soar.access import Principal
from soar.api._common import AUTH, ERRORS, NOT_FOUND, http_errors, id_path, settings_of, store_of
from soar.review.feedback import decide_exception, visible_exceptions

router = APIRouter(tags=["feedback"], responses=ERRORS)


@router.get("/exceptions", summary="Rule exceptions and their review status")
def list_exceptions(
    request: Request,
    status: Literal["proposed", "approved", "rejected"] | None = None,
    principal: Principal = AUTH["alerts:read"],
) -> list[dict[str, Any]]:
    with http_errors():
        return visible_exceptions(store_of(request), principal, status)


@router.post(
    "/exceptions/{exception_id}/{decision}", summary="Approve or reject a proposed exception", responses=NOT_FOUND
)
def decide(
    request: Request,
    decision: Literal["approve", "reject"],
    exception_id: str = id_path("exception"),
    principal: Principal = AUTH["exceptions:approve"],
) -> dict[str, Any]:
    with http_errors():
        return decide_exception(
            store_of(request), settings_of(request), exception_id, principal=principal, approve=decision == "approve"
        )
