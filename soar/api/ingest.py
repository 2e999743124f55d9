"""Webhook ingest of external alerts (e.g. a Kibana connector): same path as soar's own alerts.

The alert is stored create-only under a fingerprint of (sender, external id) — a retried
webhook is a no-op — and then handed to ``soar.playbooks.handle_alert`` exactly as the
scheduler does. Everything in the body is attacker-controlled and is treated as data.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from soar.access import Principal, authorize_in
from soar.alerts import RISK_SCORE, Alert, Level, RuleRef, fingerprint, utcnow_iso
from soar.api._common import AUTH, ERRORS, http_errors, scopes_of, settings_of, store_of
from soar.api.limits import TOO_LARGE, SizeLimitedRoute
from soar.review.feedback import ALERTS

router = APIRouter(tags=["ingest"], responses={**ERRORS, **TOO_LARGE}, route_class=SizeLimitedRoute)

MAX_EVENTS = 10


class ExternalAlert(BaseModel):
    """An alert from another system. ``id`` is the sender's id for it (its retries reuse it)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    id: str | None = Field(None, max_length=200, description="The sender's alert id (dedup key)")
    rule: RuleRef
    timestamp: str | None = Field(None, alias="@timestamp", max_length=64, description="Detection time (ISO)")
    first_event_time: str | None = Field(None, max_length=64)
    severity: Level | None = None
    host: dict[str, Any] = Field(default_factory=dict)
    user: dict[str, Any] = Field(default_factory=dict)
    source: dict[str, Any] = Field(default_factory=dict)
    destination: dict[str, Any] = Field(default_factory=dict)
    process: dict[str, Any] = Field(default_factory=dict)
    events: list[dict[str, Any]] = Field(default_factory=list, max_length=MAX_EVENTS)
    event_ids: list[str] = Field(default_factory=list, max_length=1000)
    attributes: dict[str, str] = Field(
        default_factory=dict,
        description="The sender's own labels, kept for reading only: who may see or act on the alert is decided by "
        "the inventory's labels of the host it names, never by these",
    )


def _iso_or_now(value: str | None, what: str) -> str | None:
    from soar.review.times import parse_time, to_iso

    return to_iso(parse_time(value, what=what)) if value else None


@router.post(
    "/ingest/alerts",
    summary="Ingest an external alert; starts playbooks like soar's own alerts",
    status_code=201,
    responses={200: {"description": "Already ingested (same sender and id): nothing new happened"}},
)
def ingest(
    request: Request, body: ExternalAlert, response: Response, principal: Principal = AUTH["alerts:ingest"]
) -> dict[str, Any]:
    settings = settings_of(request)
    with http_errors():
        detected = _iso_or_now(body.timestamp, "@timestamp") or utcnow_iso()
        first = _iso_or_now(body.first_event_time, "first_event_time")
        dedup = (
            body.id
            or hashlib.sha256(
                json.dumps(body.model_dump(mode="json", by_alias=True), sort_keys=True).encode()
            ).hexdigest()
        )
        origin = f"webhook:{principal.name}"
        level = body.severity or body.rule.level
        doc = Alert.model_validate(
            {
                "id": fingerprint(origin, dedup),
                "@timestamp": detected,
                "rule": body.rule,
                "severity": level,
                "risk_score": RISK_SCORE[level],
                "origin": origin,
                "first_event_time": first,
                "last_event_time": first,
                "event_ids": body.event_ids,
                "events": body.events,
                "host": body.host,
                "user": body.user,
                "source": body.source,
                "destination": body.destination,
                "process": body.process,
                "attributes": body.attributes,
                "external_id": body.id,
            }
        ).to_doc()
        scopes = scopes_of(request)
        doc = scopes.enrich(doc)
        decision = authorize_in(principal, "alerts:ingest", scopes.of_alert(doc))
        if not decision.allowed:
            from fastapi import HTTPException

            raise HTTPException(403, decision.reason)
        store = store_of(request)
        created = store.create(ALERTS, doc["id"], doc)
        if created:
            from soar.audit import record
            from soar.scheduler.runtime import alert_handoff

            record(
                store,
                actor=principal.name,
                action="alert.ingested",
                target=doc["id"],
                details={"origin": origin, "rule_id": body.rule.id, "external_id": body.id},
                settings=settings,
            )
            alert_handoff(settings, store)(doc["id"])
        else:
            from soar.incidents import attach_quietly

            attach_quietly(store, settings, doc["id"])  # the sender's retry repairs an attach a crash cut short
            response.status_code = 200
    return {"id": doc["id"], "created": created}
