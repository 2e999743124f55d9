"""Liveness for load balancers and compose healthchecks (no authentication, no data)."""

from __future__ import annotations

from fastapi import APIRouter

from soar import __version__

router = APIRouter(tags=["health"])


@router.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok", "version": __version__}
