"""What the scheduler runs: a compiled rule plus its schedule and noise controls.

Rules come from the detection engine (``soar.detection``: load, compile with the
ECS pipeline); a rule's optional ``soar:`` block sets its schedule::

    soar:
      interval: 5s          # default: settings.detection_interval
      lookback: 1m          # default: settings.detection_lookback
      index: logs-*         # default: settings.events_index
      max_alerts: 100       # cap per run; default: settings.detection_max_alerts
      suppress: {by: [host.name, user.name], window: 10m}
      enabled: false
      attributes: {team: identity}   # the rule's own access attributes (soar.scope), beside the hosts' labels

An invalid block is a ContentError at the rule's file:line; the other rules still run.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from soar.config import Settings
from soar.errors import ContentError, SourceLocation

LEVELS = ("informational", "low", "medium", "high", "critical")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
OPTION_KEYS = frozenset(
    {"interval", "lookback", "index", "max_alerts", "suppress", "enabled", "attributes", "time_field"}
)
TIME_FIELDS = ("@timestamp", "event.ingested")  # what a rule's windows are on (soar.scheduler.query.window_clause)
_ATTRIBUTE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class ScheduledRule:
    """A rule ready to run: its Elasticsearch query (or correlation spec) and its schedule."""

    id: str
    title: str
    level: str
    tags: tuple[str, ...]
    index: str
    interval: float
    lookback: float
    max_alerts: int
    content_hash: str
    source: str  # "path:line", for messages
    query: dict[str, Any] | None = None  # the query DSL clause; None for correlations
    correlation: Any = None  # soar.detection CorrelationSpec
    suppress_by: tuple[str, ...] = ()
    suppress_window: float = 0.0
    enabled: bool = True
    attributes: Mapping[str, str] = field(default_factory=dict)  # access attributes the rule file gives its alerts
    time_field: str = "@timestamp"  # the clock of its windows: event time, or arrival (event.ingested)
    baseline: Any = None  # soar's own rule types (new_terms, spike, silence): soar.scheduler.baselines.Baseline
    extra: dict[str, Any] = field(default_factory=dict, compare=False)


def parse_duration(value: Any, where: str) -> float:
    """Seconds from ``90``, ``"5s"``, ``"1m"``, ``"250ms"``; ContentError naming ``where`` otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"{where}: expected a duration like 5s or 1m, got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ValueError(f"{where}: expected a duration like 5s or 1m, got {value!r}")
        seconds = float(match.group(1)) * _UNIT[match.group(2)]
    if seconds < 0:
        raise ValueError(f"{where}: must not be negative")
    return seconds


def rule_options(block: Any, settings: Settings) -> dict[str, Any]:
    """The schedule of one rule from its ``soar:`` block and the settings; ValueError names the key."""
    opts: dict[str, Any] = {
        "interval": settings.detection_interval,
        "lookback": settings.detection_lookback,
        "index": settings.events_index,
        "max_alerts": settings.detection_max_alerts,
        "suppress_by": (),
        "suppress_window": 0.0,
        "enabled": True,
        "attributes": {},
        "time_field": settings.detection_time_field,
    }
    if block is None:
        return opts
    if not isinstance(block, Mapping):
        raise ValueError("soar: must be a mapping")
    unknown = sorted(set(block) - OPTION_KEYS)
    if unknown:
        raise ValueError(f"soar.{unknown[0]}: unknown option (known: {', '.join(sorted(OPTION_KEYS))})")
    if "interval" in block:
        opts["interval"] = parse_duration(block["interval"], "soar.interval")
        if opts["interval"] < 1:
            raise ValueError("soar.interval: must be at least 1s")
    if "lookback" in block:
        opts["lookback"] = parse_duration(block["lookback"], "soar.lookback")
    if "index" in block:
        if not isinstance(block["index"], str) or not block["index"].strip():
            raise ValueError("soar.index: must be an index name or pattern")
        opts["index"] = block["index"]
    if "max_alerts" in block:
        cap = block["max_alerts"]
        if isinstance(cap, bool) or not isinstance(cap, int) or cap < 1:
            raise ValueError(f"soar.max_alerts: must be a positive integer, got {cap!r}")
        opts["max_alerts"] = cap
    if "enabled" in block:
        if not isinstance(block["enabled"], bool):
            raise ValueError("soar.enabled: must be true or false")
        opts["enabled"] = block["enabled"]
    if "attributes" in block:
        attrs = block["attributes"]
        if not isinstance(attrs, Mapping) or not all(
            isinstance(k, str) and _ATTRIBUTE.match(k) and isinstance(v, str) and 0 < len(v) <= 128
            for k, v in attrs.items()
        ):
            raise ValueError("soar.attributes: expected {name: value} with string values (e.g. {team: identity})")
        opts["attributes"] = dict(attrs)
    if "time_field" in block:
        if block["time_field"] not in TIME_FIELDS:
            raise ValueError(f"soar.time_field: must be one of {', '.join(TIME_FIELDS)}, got {block['time_field']!r}")
        opts["time_field"] = block["time_field"]
    if "suppress" in block:
        sup = block["suppress"]
        if not isinstance(sup, Mapping) or set(sup) - {"by", "window"} or "by" not in sup:
            raise ValueError("soar.suppress: expected {by: [field, ...], window: 5m}")
        by = [sup["by"]] if isinstance(sup["by"], str) else sup["by"]
        if not isinstance(by, list) or not by or not all(isinstance(f, str) and f for f in by):
            raise ValueError("soar.suppress.by: expected a list of field names")
        opts["suppress_by"] = tuple(by)
        opts["suppress_window"] = parse_duration(sup.get("window", "5m"), "soar.suppress.window")
        if opts["suppress_window"] <= 0:
            raise ValueError("soar.suppress.window: must be positive")
    return opts


def scheduled_rule(
    *,
    rule_id: str,
    title: str,
    level: str | None,
    tags: tuple[str, ...] | list[str],
    block: Any,
    settings: Settings,
    content_hash: str,
    path: str,
    line: int,
    query: dict[str, Any] | None = None,
    correlation: Any = None,
) -> ScheduledRule:
    """Combine a compiled rule with its options; raise ContentError at path:line on a bad ``soar:`` block."""
    try:
        opts = rule_options(block, settings)
    except ValueError as exc:
        raise ContentError(str(exc), SourceLocation(path, line)) from exc
    return ScheduledRule(
        id=rule_id,
        title=title,
        level=level if level in LEVELS else "medium",
        tags=tuple(str(t) for t in tags),
        content_hash=content_hash,
        source=f"{path}:{line}",
        query=query,
        correlation=correlation,
        **opts,
    )


def rule_state(rule: ScheduledRule, checkpoint: Mapping[str, Any] | None) -> str:
    """A rule's state from its stored checkpoint: ``off`` (enabled: false), ``disabled`` (its query was
    rejected, until its content changes), ``never run``, ``error`` (its last run failed) or ``ok``."""
    ck = checkpoint or {}
    if not rule.enabled:
        return "off"
    if ck.get("disabled") and ck.get("content_hash") == rule.content_hash:
        return "disabled"
    if not ck:
        return "never run"
    return "error" if ck.get("last_error") else "ok"
