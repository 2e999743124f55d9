"""One alert: its matched events with the fields its rule reads highlighted, the entity, its runs and incident."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse

from soar.access import authorize_in, load_principals
from soar.api._common import ID_PATTERN, http_errors, scopes_of, settings_of, store_of
from soar.console.web import ME, Me, page
from soar.review.queue import ALERTS

router = APIRouter()

ENTITY = ("host", "user", "source", "destination", "process", "file", "url", "group")
# query_string is not here: its keys (query, fields) are not field names, and a keyword search names none
_DSL_LEAVES = ("term", "terms", "prefix", "wildcard", "regexp", "match", "match_phrase", "range")


def flatten(doc: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Dotted field names and leaf values, in document order (lists of scalars stay one value)."""
    if isinstance(doc, dict):
        out: list[tuple[str, Any]] = []
        for key, value in doc.items():
            out.extend(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return [(prefix, doc)]


def dsl_fields(node: Any) -> set[str]:
    """The event fields a query DSL clause reads (the leaves of term, wildcard, range, ... and exists)."""
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _DSL_LEAVES and isinstance(value, dict):
                found.update(str(k) for k in value)
            elif key == "exists" and isinstance(value, dict):
                found.add(str(value.get("field")))
            else:
                found |= dsl_fields(value)
    elif isinstance(node, list):
        for item in node:
            found |= dsl_fields(item)
    return found


def rule_fields(request: Request, rule_id: str) -> set[str]:
    """The fields the alert's rule reads, from the loaded rules (none when the rule is not one of this content's)."""
    from soar.errors import SoarError
    from soar.scheduler.loading import load_scheduled_rules

    try:
        rules, _errors = load_scheduled_rules(settings_of(request))
    except SoarError:
        return set()
    rule = next((r for r in rules if r.id == rule_id), None)
    if rule is None:
        return set()
    fields = dsl_fields(rule.query)
    spec = rule.correlation
    if spec is not None:
        fields.update(spec.group_by)
        for base in spec.rules:
            fields |= dsl_fields(base.dsl)
    return fields


def load_alert(request: Request, who: Me, alert_id: str) -> dict[str, Any]:
    """The alert, or 404 when unknown or outside the principal's scope (the same answer, as in the API)."""
    import re

    unknown = f"unknown alert id {alert_id!r}"
    if not re.match(ID_PATTERN, alert_id):
        raise HTTPException(404, unknown)
    rec = store_of(request).get(ALERTS, alert_id)
    if rec is None or not authorize_in(who.principal, "alerts:read", scopes_of(request).of_alert(rec.doc)).allowed:
        raise HTTPException(404, unknown)
    return dict(rec.doc)


@router.get("/alerts/{alert_id}", response_class=HTMLResponse)
def alert_page(request: Request, alert_id: str, who: Me = ME) -> HTMLResponse:
    from soar.incidents import KIND, incident_of_alert

    with http_errors():
        doc = load_alert(request, who, alert_id)
        store = store_of(request)
        runs = [r.doc for r in store.find("runs", {"alert_id": alert_id}, order_by="created_at", limit=100)]
        incident_id = incident_of_alert(store, alert_id)
        inc = store.get(KIND, incident_id) if incident_id else None
        shown = inc is not None and authorize_in(who.principal, "alerts:read", scopes_of(request).of_incident(inc.doc))
        incident = dict(inc.doc, id=inc.id) if inc is not None and shown else None  # a wider incident is not named
        used = rule_fields(request, str((doc.get("rule") or {}).get("id") or ""))
    events = [flatten(e) for e in doc.get("events") or []]
    entity = [(name, flatten(doc[name])) for name in ENTITY if isinstance(doc.get(name), dict) and doc[name]]
    principals = sorted(p.name for p in load_principals(settings_of(request)).items)
    return page(
        "alert.html.j2", who, alert=doc, events=events, used=used, entity=entity, runs=runs, incident=incident,
        principals=principals, here=str(request.url.path),
    )  # fmt: skip
