"""The alert queue: filters in the URL, time-cursor paging, bulk acknowledge/assign/close, live updates (SSE)."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from soar.access import authorize_in, load_principals
from soar.api._common import http_errors, scopes_of, settings_of, store_of
from soar.console.web import FORM, HEADERS, ME, PREFIX, Form, Me, back, environment, page
from soar.review.queue import ALERTS, LEVELS, ORDERS, STATUSES, AlertQuery, QueuePage, find_alerts
from soar.store import Record

router = APIRouter()

FILTERS = ("status", "level", "rule", "host", "user", "assignee", "q", "sort")
ACTIONS = ("acknowledge", "close", "reopen", "assign")
MAX_BULK = 200
EVENT_SECONDS = 3.0  # how often the live queue looks for a change
STREAM_SECONDS = 300.0  # a stream ends after this; the browser reconnects (a server restart is never held up long)


def _query(request: Request, who: Me) -> tuple[AlertQuery, dict[str, str], int]:
    """The filters of the URL (as an AlertQuery and as the links keep them) and the page size; 400 on a bad one."""
    params = request.query_params
    kept = {k: params[k].strip() for k in FILTERS if params.get(k, "").strip()}
    for name, allowed in (("status", STATUSES), ("level", LEVELS), ("sort", ORDERS)):
        if name in kept and kept[name] not in allowed:
            raise HTTPException(400, f"{name}: one of {', '.join(allowed)}, got {kept[name]!r}")
    for name, value in kept.items():
        if len(value) > 200:
            raise HTTPException(400, f"{name}: at most 200 characters")
    try:
        limit = max(1, min(200, int(params.get("limit", "50"))))
    except ValueError:
        raise HTTPException(400, "limit: a number from 1 to 200") from None
    assignee = kept.get("assignee")
    query = AlertQuery(
        status=kept.get("status"), level=kept.get("level"), rule=kept.get("rule"), host=kept.get("host"),
        user=kept.get("user"), assignee=who.principal.name if assignee == "me" else assignee, text=kept.get("q"),
        cursor=params.get("cursor") or None, order=kept.get("sort", "newest"),
    )  # fmt: skip
    return query, kept, limit


def visible_to(request: Request, who: Me, permission: str = "alerts:read") -> Callable[[Record], bool]:
    scopes = scopes_of(request)

    def visible(rec: Record) -> bool:
        return authorize_in(who.principal, permission, scopes.of_alert(rec.doc)).allowed

    return visible


def _find(request: Request, who: Me, query: AlertQuery, limit: int) -> QueuePage:
    with http_errors():
        return find_alerts(store_of(request), query, visible_to(request, who), limit)


def _rows_html(result: QueuePage, who: Me) -> str:
    return environment().get_template("_queue_rows.html.j2").render(alerts=result.alerts, me=who)


@router.get("/alerts", response_class=HTMLResponse)
def queue(request: Request, who: Me = ME) -> HTMLResponse:
    query, kept, limit = _query(request, who)
    result = _find(request, who, query, limit)
    principals = sorted(p.name for p in load_principals(settings_of(request)).items)
    here = f"{PREFIX}/alerts" + (f"?{request.url.query}" if request.url.query else "")
    next_url = f"{PREFIX}/alerts?" + urlencode({**kept, "cursor": result.cursor}) if result.cursor else None
    return page(
        "queue.html.j2", who, alerts=result.alerts, kept=kept, next_url=next_url, here=here, levels=LEVELS,
        statuses=STATUSES, orders=ORDERS, principals=principals, scanned=result.scanned, first_page=not query.cursor,
        events_url=f"{PREFIX}/alerts/events?" + urlencode(kept), rows_url=f"{PREFIX}/alerts/rows?" + urlencode(kept),
        done=request.query_params.get("done"), skipped=request.query_params.get("skipped"),
    )  # fmt: skip


@router.get("/alerts/rows", response_class=HTMLResponse)
def rows(request: Request, who: Me = ME) -> HTMLResponse:
    """The queue's table body alone (what the live script swaps in)."""
    query, _kept, limit = _query(request, who)
    return HTMLResponse(_rows_html(_find(request, who, query, limit), who), headers=HEADERS)


@router.get("/alerts/events")
async def events(request: Request, who: Me = ME) -> StreamingResponse:
    """Server-sent events: ``queue`` whenever the first page of this query changes (new alert, status, assignee)."""
    query, _kept, limit = _query(request, who)

    def digest() -> str:
        found = _find(request, who, query, limit)
        shown = [(a.get("id"), a.get("status"), a.get("assignee"), a.get("verdict")) for a in found.alerts]
        return hashlib.sha256(repr(shown).encode()).hexdigest()[:16]

    async def stream() -> AsyncIterator[str]:
        last = await run_in_threadpool(digest)
        yield f"retry: 5000\nevent: hello\ndata: {last}\n\n"
        waited = 0.0
        while waited < STREAM_SECONDS:
            await asyncio.sleep(EVENT_SECONDS)
            waited += EVENT_SECONDS
            if await request.is_disconnected():
                return
            now = await run_in_threadpool(digest)
            if now != last:
                last = now
                yield f"event: queue\ndata: {now}\n\n"
            else:
                yield ": idle\n\n"  # a comment keeps proxies from closing the stream

    headers = {**HEADERS, "X-Accel-Buffering": "no"}
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)


def apply(request: Request, who: Me, alert_id: str, action: str, assignee: str | None, note: str) -> bool:
    """One triage action through the API's functions; False when the alert is unknown or outside the scope."""
    from soar.review.triage import assign_alert, reopen_alert, set_alert_status

    store, settings = store_of(request), settings_of(request)
    rec = store.get(ALERTS, alert_id)
    if rec is None or not visible_to(request, who, "alerts:triage")(rec):
        return False
    actor = {"actor": who.principal.name, "role": who.principal.role, "note": note}
    if action == "acknowledge":
        set_alert_status(store, settings, alert_id, "acknowledged", **actor)
    elif action == "close":
        set_alert_status(store, settings, alert_id, "closed", **actor)
    elif action == "reopen":
        reopen_alert(store, settings, alert_id, **actor)
    else:
        assign_alert(store, settings, alert_id, assignee, **actor)
    return True


@router.post("/alerts/bulk", response_model=None)
def bulk(request: Request, posted: Form = FORM) -> RedirectResponse:
    """Acknowledge, close, reopen or assign the checked alerts (each in the principal's scope; the others skipped)."""
    posted.me.need("alerts:triage")
    action = posted.one("action")
    if action not in ACTIONS:
        raise HTTPException(400, f"action: one of {', '.join(ACTIONS)}, got {action!r}")
    ids = list(dict.fromkeys(posted.many("id")))
    if not ids:
        raise HTTPException(400, "id: check at least one alert")
    if len(ids) > MAX_BULK:
        raise HTTPException(400, f"id: at most {MAX_BULK} alerts at once")
    assignee: str | None = posted.one("assignee") or None
    if action == "assign" and assignee is not None:
        names = {p.name for p in load_principals(settings_of(request)).items}
        if assignee not in names:
            raise HTTPException(400, f"assignee: {assignee!r} is not a principal")
    note = posted.one("note")[:2000]
    done = 0
    with http_errors():
        for alert_id in ids:
            done += apply(request, posted.me, alert_id[:200], action, assignee, note)
    return back(posted.one("return", PREFIX + "/alerts"), done=done, skipped=len(ids) - done or None)
