"""Which playbooks an alert triggers: rule ids, ATT&CK tags, a minimum level and field conditions.

Pure functions of the alert document. Rules and tags are alternatives (any
matches); ``min_level`` and every ``where`` condition must also hold. A tag
matches itself and its sub-techniques (``attack.t1110`` matches ``attack.t1110.001``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from soar.playbooks.model import Playbook, Trigger, level_at_least
from soar.store.base import get_path


def _tag_matches(wanted: str, tags: Iterable[str]) -> bool:
    return any(t == wanted or t.startswith(wanted + ".") for t in tags)


def _condition_holds(value: Any, cond: Any) -> bool:
    if isinstance(cond, Mapping):
        if "exists" in cond:
            return (value is not None) == bool(cond["exists"])
        if "in" in cond:
            return value in list(cond["in"])
        if "not" in cond:
            return not _condition_holds(value, cond["not"])
        return False
    if isinstance(cond, list):
        return value in cond
    return bool(value == cond)


def matches(trigger: Trigger, alert: Mapping[str, Any]) -> bool:
    rule = alert.get("rule") or {}
    tags = [str(t).lower() for t in rule.get("tags") or []]
    if trigger.rules or trigger.tags:
        by_rule = str(rule.get("id")) in trigger.rules or (rule.get("name") in trigger.rules)
        by_tag = any(_tag_matches(t, tags) for t in trigger.tags)
        if not (by_rule or by_tag):
            return False
    if trigger.min_level is not None:
        level = str(alert.get("severity") or rule.get("level") or "informational")
        if not level_at_least(level, trigger.min_level):
            return False
    return all(_condition_holds(get_path(alert, field), cond) for field, cond in trigger.where.items())


def triggered(playbooks: Iterable[Playbook], alert: Mapping[str, Any]) -> list[Playbook]:
    return [pb for pb in playbooks if matches(pb.spec.trigger, alert)]
