"""Offline rule validation: SigmaHQ conventions plus a set of pySigma's own validators.

Every problem is a :class:`Problem`: a ContentError at ``file:line:col`` with a severity and the
validator that found it. Errors make a rule wrong (it cannot mean what it says: a dangling
detection, an invalid modifier combination, a level that is not one); warnings are SigmaHQ's
conventions and hygiene (metadata, tag formats, ATT&CK ids unknown to the bundled data), which a
community rule may miss and still be run. Validators are registries keyed by name — pySigma's
own identifiers for its validators (``attacktag``, ``duplicate_tag``...), so ``--exclude`` reads as
sigma-cli's ``-x``. ATT&CK tags are checked against the bundle in use (shipped, or loaded with
``soar rules update-attack``; see :mod:`soar.detection._attack`); nothing here touches the network.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable
from typing import Any, Literal

from sigma.rule import SigmaRuleTag

from soar.detection._attack import use_shipped_attack_data
from soar.detection._loading import Rule, RuleSet
from soar.errors import ContentError, InputError, SoarError, SourceLocation

Severity = Literal["error", "warning"]


@dataclasses.dataclass(frozen=True)
class Problem:
    """One finding of ``soar rules check``: where, how bad, which validator, what."""

    error: SoarError
    severity: Severity = "error"
    validator: str = "load"

    @property
    def file(self) -> str:
        return str(self.error.source.path) if self.error.source else ""

    @property
    def line(self) -> int | None:
        return self.error.source.line if self.error.source else None

    @property
    def column(self) -> int | None:
        return self.error.source.column if self.error.source else None

    @property
    def message(self) -> str:
        return self.error.message

    def __str__(self) -> str:
        if self.severity == "error":
            return str(self.error)
        where = f"{self.error.source}: " if self.error.source else ""
        return f"{where}warning: {self.message} [{self.validator}]"

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "severity": self.severity,
            "validator": self.validator,
            "message": self.message,
        }


LEVELS = ("informational", "low", "medium", "high", "critical")
STATUSES = ("stable", "test", "experimental", "deprecated", "unsupported")
REQUIRED = ("title", "id", "status", "description", "author", "date", "level")
TECHNIQUE = re.compile(r"^attack\.t\d{4}(\.\d{3})?$")

Check = Callable[[Rule], list[ContentError]]


def _required(rule: Rule) -> list[ContentError]:
    """What a rule cannot run or be named without."""
    needed = ["title", "id", "level"] + (["logsource", "detection"] if rule.kind == "rule" else [])
    return [rule.error(f"missing required field '{key}'") for key in needed if not rule.data.get(key)]


def _sigmahq_fields(rule: Rule) -> list[ContentError]:
    """SigmaHQ's other required metadata: a rule runs without it, a reviewer wants it."""
    needed = [key for key in REQUIRED if key not in ("title", "id", "level")]
    if rule.kind == "rule":
        needed += ["falsepositives", "tags"]
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


# name -> (check, severity); the order is the order of the output within a rule
CONVENTIONS: dict[str, tuple[Check, Severity]] = {
    "required_fields": (_required, "error"),
    "sigmahq_fields": (_sigmahq_fields, "warning"),
    "level": (_level, "error"),
    "status": (_status, "error"),
    "attack_technique_tag": (_attack_technique, "warning"),
    "falsepositives": (_falsepositives, "warning"),
    "lowercase_tags": (_lowercase_tags, "warning"),
}

# pySigma validators soar runs, by pySigma's own identifier (sigma.validators.core.validators) -> severity
PYSIGMA: dict[str, Severity] = {
    "dangling_detection": "error",
    "dangling_condition": "error",
    "invalid_modifier_combinations": "error",
    "attacktag": "warning",
    "duplicate_tag": "warning",
    "tag_format": "warning",
    "control_character": "warning",
    "double_wildcard": "warning",
    "wildcards_instead_of_modifiers": "warning",
}


def validator_names() -> list[str]:
    return [*CONVENTIONS, *PYSIGMA]


def check_excluded(names: Iterable[str], where: str = "--exclude") -> tuple[str, ...]:
    """The validator names to leave out; InputError naming an unknown one and the known ones."""
    known = validator_names()
    out = tuple(names)
    for name in out:
        if name not in known:
            raise InputError(f"{where}: unknown validator {name!r} (known: {', '.join(known)})")
    return out


def _pysigma_validators(exclude: tuple[str, ...] = ()) -> list[tuple[str, Any]]:
    from sigma.validators.core import validators

    use_shipped_attack_data()
    return [(name, validators[name]()) for name in PYSIGMA if name not in exclude]


def _attack_note() -> str:
    from soar.detection._attack import attack_bundle_path, shipped_bundle_path, use_shipped_attack_data

    where = "shipped" if attack_bundle_path() == shipped_bundle_path() else "loaded"
    return (
        f"; not in the {where} ATT&CK data (v{use_shipped_attack_data()}): "
        "a newer ATT&CK may have it (soar rules update-attack FILE)"
    )


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


def _issue_error(rule: Rule, issue: Any, note: str = "") -> ContentError:
    token = _issue_token(issue)
    mark = rule.positions.find(token) if token else None
    mark = mark or rule.positions.start
    detail = f" ({token})" if token else ""
    return ContentError(f"{issue.description}{detail}{note}", SourceLocation(rule.path, mark.line, mark.column))


def check_rules(ruleset: RuleSet, exclude: Iterable[str] = ()) -> list[Problem]:
    """Every convention and validator problem of every rule, in file order (validators in ``exclude`` left out)."""
    skip = check_excluded(exclude)
    problems: list[Problem] = []
    validators = _pysigma_validators(skip)
    note = _attack_note() if "attacktag" not in skip else ""
    for rule in ruleset.rules:
        for name, (check, severity) in CONVENTIONS.items():
            if name not in skip:
                problems.extend(Problem(e, severity, name) for e in check(rule))
        if rule.kind != "rule":
            continue
        for name, validator in validators:
            severity = PYSIGMA[name]
            try:
                issues = validator.validate(rule.sigma)
            except Exception as exc:  # a validator must not stop the rest of the collection
                problems.append(Problem(rule.error(f"validator {name} failed: {exc}"), "error", name))
                continue
            extra = note if name == "attacktag" else ""
            problems.extend(Problem(_issue_error(rule, issue, extra), severity, name) for issue in issues)
    return problems
