"""Correlation rules in the same cycle: fetch the base rules' events, evaluate, alert once per burst.

The detection engine fetches (``correlation_events``, paged in a point in time) and
evaluates (``evaluate_correlation``, sliding windows). A run searches its window widened
by the correlation's timespan, so a burst that straddles two runs is seen whole. The
alert id is rule + group key + the match's first event time; a match overlapping an
alert already raised for the same group (an overlapping search seeing the same burst
from a later start) is not raised again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from elastic_transport import ConnectionError as ESConnectionError
from elastic_transport import ConnectionTimeout as ESConnectionTimeout
from elasticsearch import ApiError

from soar.alerts import RuleRef, alert_from_events, fingerprint
from soar.detection import evaluate_correlation
from soar.errors import SoarError
from soar.scheduler.alerting import KIND, Draft
from soar.scheduler.planning import Window, iso, parse_time
from soar.scheduler.rules import ScheduledRule
from soar.scheduler.search import SearchError, _api_error, unavailable
from soar.scheduler.sources import EventSource
from soar.store import Store


def widen(rule: ScheduledRule, window: Window) -> Window:
    return Window(window.start - float(rule.correlation.timespan), window.end)


def _entities(group: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """ECS entity objects from the group-by values (``user.name`` -> ``{"user": {"name": ...}}``)."""
    out: dict[str, dict[str, Any]] = {}
    for name, value in group.items():
        head, _, rest = name.partition(".")
        if rest and head in ("host", "user", "source", "destination", "process", "file", "url"):
            out.setdefault(head, {})[rest] = value
    return out


def correlation_drafts(
    source: EventSource,
    store: Store,
    rule: ScheduledRule,
    window: Window,
    exceptions: Sequence[Mapping[str, Any]],
    detected_at: float,
) -> tuple[list[Draft], int, SearchError | None]:
    """(alerts to write, events fetched, error) for one correlation rule over ``window``."""
    spec = rule.correlation
    try:
        events = source.correlation_events(rule, window, exceptions)
    except (ESConnectionError, ESConnectionTimeout) as exc:
        return [], 0, unavailable(exc)
    except ApiError as exc:
        return [], 0, _api_error(exc)
    except SoarError as exc:
        return [], 0, SearchError("error", str(exc)[:500])
    except Exception as exc:  # a bug or an unexpected answer fails this rule's run, never the cycle
        return [], 0, SearchError("error", f"correlation failed: {type(exc).__name__}: {exc}"[:500])
    drafts: list[Draft] = []
    for match in evaluate_correlation(spec, events):
        key_id = fingerprint(rule.id, "group", match.group)
        start, end = match.start.timestamp(), match.end.timestamp()
        if _already_raised(store, rule.id, key_id, start):
            continue
        ref = RuleRef(id=rule.id, title=rule.title, level=rule.level, tags=list(rule.tags))  # type: ignore[arg-type]
        alert = alert_from_events(
            ref,
            [],
            [str(r) for r in match.refs],
            fingerprint_parts=("correlation", match.group, iso(start)),
            group={
                "key": dict(match.group),
                "key_id": key_id,
                "window_start": iso(start),
                "window_end": iso(end),
                "value": match.value,
                "type": spec.type,
            },
            detected_at=iso(detected_at),
        )
        doc = alert.to_doc() | _entities(match.group)
        doc.update(first_event_time=iso(start), last_event_time=iso(end))
        drafts.append(Draft(doc, tuple(str(r) for r in match.refs), (end,)))
    return drafts, len(events), None


def _already_raised(store: Store, rule_id: str, key_id: str, start: float) -> bool:
    for rec in store.find(KIND, {"rule.id": rule_id, "group.key_id": key_id}, limit=1000):
        end = parse_time(rec.doc.get("last_event_time"))
        if end is not None and start <= end:
            return True
    return False
