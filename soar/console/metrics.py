"""Response metrics (MTTD, MTTA, MTTC, MTTR) over a period, per day, and the threat-mitigation chart."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, Response

from soar.api._common import http_errors
from soar.console.web import HEADERS, ME, Me, page

router = APIRouter()

PERIODS = ("24h", "7d", "30d", "90d")


def _computed(request: Request, who: Me, since: str) -> dict[str, object]:
    from soar.api.metrics import _compute

    if since not in PERIODS:
        raise HTTPException(400, f"since: one of {', '.join(PERIODS)}, got {since!r}")
    who.need("metrics:read")
    with http_errors():
        return _compute(request, since, None, who.principal)


@router.get("/metrics", response_class=HTMLResponse)
def metrics(request: Request, since: str = "30d", who: Me = ME) -> HTMLResponse:
    return page("metrics.html.j2", who, m=_computed(request, who, since), since=since, periods=PERIODS)


@router.get("/metrics/chart.svg")
def chart(request: Request, since: str = "30d", who: Me = ME) -> Response:
    from soar.review.chart import mitigation_svg

    series = _computed(request, who, since)["series"]
    return Response(mitigation_svg(series), media_type="image/svg+xml", headers=HEADERS)  # type: ignore[arg-type]
