"""Rules: each rule's state, last cycle, open gaps, why it is disabled, and its precision from analysts' verdicts."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from soar.api._common import http_errors, settings_of, store_of
from soar.console.web import ME, Me, page

router = APIRouter()


@router.get("/rules", response_class=HTMLResponse)
def rules(request: Request, who: Me = ME) -> HTMLResponse:
    from soar.review.feedback import precision_from_store
    from soar.scheduler.service import status

    with http_errors():
        rows = status(settings_of(request), store_of(request))
        precision = precision_from_store(store_of(request), [r.rule_id for r in rows])
    return page("rules.html.j2", who, rows=[r.as_dict() for r in rows], precision=precision)


@router.get("/rules/coverage", response_class=HTMLResponse)
def coverage(request: Request, who: Me = ME) -> HTMLResponse:
    """The coverage matrix: ATT&CK techniques by rule, and each rule against each real log source (compiled on
    demand, as ``soar rules coverage`` does)."""
    from soar.detection import coverage as measure
    from soar.detection import load_rules
    from soar.scheduler.loading import rule_paths

    paths = [p for p in rule_paths(settings_of(request)) if p.exists()]
    with http_errors():
        data = measure(load_rules(paths)) if paths else {"rules": [], "techniques": {}, "sources": []}
    return page("coverage.html.j2", who, data=data)
