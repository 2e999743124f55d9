"""Offline rule validation: SigmaHQ conventions plus a set of pySigma's own validators.

Every problem is a ContentError at ``file:line:col``. ATT&CK tags are checked against the
data shipped in ``soar/data`` (see :mod:`soar.detection._attack`); nothing here touches the
network. Conventions are a registry of small functions, one per check.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Any

from sigma.rule import SigmaRuleTag

from soar.detection._attack import use_shipped_attack_data
from soar.detection._loading import Rule, RuleSet
from soar.errors import ContentError, SourceLocation

LEVELS = ("informational", "low", "medium", "high", "critical")
STATUSES = ("stable", "test", "experimental", "deprecated", "unsupported")
REQUIRED = ("title", "id", "status", "description", "author", "date", "level")
TECHNIQUE = re.compile(r"^attack\.t\d{4}(\.\d{3})?$")

Check = Callable[[Rule], list[ContentError]]


def _required(rule: Rule) -> list[ContentError]:
    needed = list(REQUIRED)
    if rule.kind == "rule":
        needed += ["logsource", "detection", "falsepositives", "tags"]
    return [rule.error(f"missing required field '{key}'") for key in needed if not rule.data.get(key)]


def _level(rule: Rule) -> list[ContentError]:
    level = rule.data.get("level")
    if level is not None and level not in LEVELS:
        return [rule.error(f"level '{level}' is not one of {', '.join(LEVELS)}", "level")]
    return []


def _status(rule: Rule) -> list[ContentError]:
    status = rule.data.get("status")
    if status is not None and status not in STATUSES:
        return [rule.error(f"status '{status}' is not one of {', '.join(STATUSES)}", "status")]
    return []


def _attack_technique(rule: Rule) -> list[ContentError]:
    if rule.kind != "rule" or not rule.data.get("tags"):
        return []
    if not any(TECHNIQUE.match(str(t)) for t in rule.tags):
        return [rule.error("no ATT&CK technique tag (attack.tNNNN or attack.tNNNN.NNN)", "tags")]
    return []


def _falsepositives(rule: Rule) -> list[ContentError]:
    fps = rule.data.get("falsepositives")
    if fps is not None and (not isinstance(fps, list) or not all(isinstance(f, str) and f.strip() for f in fps)):
        return [rule.error("falsepositives must be a list of non-empty strings", "falsepositives")]
    return []


def _lowercase_tags(rule: Rule) -> list[ContentError]:
    tags = rule.data.get("tags") or []
    return [
        rule.error(f"tag '{tag}' must be lower case", "tags", i)
        for i, tag in enumerate(tags)
        if isinstance(tag, str) and tag != tag.lower()
    ]


CONVENTIONS: dict[str, Check] = {
    "required_fields": _required,
    "level": _level,
    "status": _status,
    "attack_technique_tag": _attack_technique,
    "falsepositives": _falsepositives,
    "lowercase_tags": _lowercase_tags,
}


def _pysigma_validators() -> list[Any]:
    from sigma.validators.core.condition import DanglingConditionValidator, DanglingDetectionValidator
    from sigma.validators.core.modifiers import InvalidModifierCombinationsValidator
    from sigma.validators.core.tags import (
        ATTACKTagValidator,
        DuplicateTagValidator,
        TagFormatValidator,
    )
    from sigma.validators.core.values import (
        ControlCharacterValidator,
        DoubleWildcardValidator,
        WildcardsInsteadOfModifiersValidator,
    )

    use_shipped_attack_data()
    return [
        DanglingDetectionValidator(),
        DanglingConditionValidator(),
        InvalidModifierCombinationsValidator(),
        ATTACKTagValidator(),
        DuplicateTagValidator(),
        TagFormatValidator(),
        ControlCharacterValidator(),
        DoubleWildcardValidator(),
        WildcardsInsteadOfModifiersValidator(),
    ]


def _issue_token(issue: Any) -> str | None:
    """A string the issue is about (a tag, a detection name, a value) to find its line."""
    for f in dataclasses.fields(issue):
        if f.name in ("rules", "severity", "description"):
            continue
        value = getattr(issue, f.name, None)
        if isinstance(value, SigmaRuleTag):
            return f"{value.namespace}.{value.name}"
        if isinstance(value, str) and value:
            return value
        name = getattr(value, "field", None)
        if name:
            return str(name)
    return None


def _issue_error(rule: Rule, issue: Any) -> ContentError:
    token = _issue_token(issue)
    mark = rule.positions.find(token) if token else None
    mark = mark or rule.positions.start
    detail = f" ({token})" if token else ""
    return ContentError(f"{issue.description}{detail}", SourceLocation(rule.path, mark.line, mark.column))


def check_rules(ruleset: RuleSet) -> list[ContentError]:
    """Every convention and validator problem of every rule, in file order."""
    errors: list[ContentError] = []
    validators = _pysigma_validators()
    for rule in ruleset.rules:
        for check in CONVENTIONS.values():
            errors.extend(check(rule))
        if rule.kind != "rule":
            continue
        for validator in validators:
            try:
                issues = validator.validate(rule.sigma)
            except Exception as exc:  # a validator must not stop the rest of the collection
                errors.append(rule.error(f"validator {type(validator).__name__} failed: {exc}"))
                continue
            errors.extend(_issue_error(rule, issue) for issue in issues)
    return errors
