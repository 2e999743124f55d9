"""Values a typed field of an ECS index can never match: refuse the rule instead of a silent miss.

The official ECS mappings (``integrations/elasticsearch/ecs/``) type IP fields as ``ip``, ports
and pids as ``long`` and ``message`` as full text (``match_only_text``). Elasticsearch matches an ``ip`` field only by
an exact address or a CIDR range: ``DestinationIp|startswith: '10.'`` compiles to
``destination.ip:10.*``, which Elasticsearch answers with no hits and no error — a rule that
looks fine and never fires. A word for a number (``ProcessId: abc``) never matches either, and a
regular expression on either type is rejected at search time. The embedded engine would match
some of these as text, so the two engines would disagree: the rule fails on both, at its line,
saying what to write instead. A full-text field is searched by its words (``match_phrase``): only
``|contains`` (and keywords) mean the same there as in Sigma; an exact value, ``startswith``,
``endswith``, ``|cased`` or ``|re`` cannot be decided on it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from sigma.rule import SigmaDetection, SigmaDetectionItem, SigmaRule
from sigma.types import (
    SigmaCasedString,
    SigmaCIDRExpression,
    SigmaCompareExpression,
    SigmaExists,
    SigmaFieldReference,
    SigmaNull,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaString,
    SpecialChars,
)

from soar.detection._ecs import NUMERIC_TYPES, TEXT_TYPES
from soar.detection._ecs import field_type as ecs_field_type


def field_type(name: str) -> str | None:
    """``ip``, ``number``, ``text`` or None (keyword-like: any Sigma value works) for a field of an ECS index."""
    kind = ecs_field_type(name)
    if kind == "ip":
        return "ip"
    if kind in TEXT_TYPES:
        return "text"
    return "number" if kind in NUMERIC_TYPES else None


def _items(detection: SigmaDetection) -> Iterator[SigmaDetectionItem]:
    for item in detection.detection_items:
        if isinstance(item, SigmaDetection):
            yield from _items(item)
        elif isinstance(item, SigmaDetectionItem) and item.field is not None:
            yield item


def _written(value: SigmaString) -> str:
    """The value as the rule most likely wrote it (without the wildcards a modifier added), to find its line."""
    parts = [p for p in value.s if isinstance(p, str)]
    return "".join(parts) or str(value)


def _prefix_cidr(prefix: str) -> str | None:
    """``10.`` -> ``10.0.0.0/8``: a startswith of whole IPv4 octets is a CIDR range."""
    octets = prefix.rstrip(".").split(".")
    if not prefix.endswith(".") or not 1 <= len(octets) <= 3 or not all(o.isdigit() and int(o) < 256 for o in octets):
        return None
    return f"{'.'.join(octets + ['0'] * (4 - len(octets)))}/{8 * len(octets)}"


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class FieldKind:
    """What a typed field takes, and what to write instead of what it cannot match."""

    label: str  # "an IP field", "a number"
    accepts: tuple[type, ...]  # Sigma value types always fine here
    fits: Callable[[str], bool]  # a plain value that can match
    not_a: str  # "an IP address", "a number"
    instead: str  # the hint for a regular expression or a wildcard

    def problem(self, name: str, value: Any) -> str | None:
        head = f"{name} is {self.label} in ECS mappings:"
        if isinstance(value, (*self.accepts, SigmaNull, SigmaExists, SigmaFieldReference)):
            return None
        if isinstance(value, SigmaCasedString):
            return f"{head} |cased applies to text; '{_written(value)}' is matched by its value there, drop |cased"
        if isinstance(value, SigmaRegularExpression):
            return f"{head} the regular expression '{value.regexp}' cannot be searched there; {self.instead}"
        if isinstance(value, SigmaNumber) and self.fits(str(value)):
            return None
        written = _written(value) if isinstance(value, SigmaString) else str(value)
        if isinstance(value, SigmaString) and value.contains_special():
            cidr = _prefix_cidr(written) if self is IP and value.endswith(SpecialChars.WILDCARD_MULTI) else None
            return f"{head} '{written}' with a wildcard or startswith/endswith/contains never matches there; " + (
                f"use |cidr: '{cidr}'" if cidr else self.instead
            )
        if not self.fits(written):
            return f"{head} '{written}' is not {self.not_a}, so it never matches"
        return None


IP = FieldKind(
    "an IP field",
    (SigmaCIDRExpression,),
    _is_ip,
    "an IP address",
    "use |cidr with a range, or exact addresses (Elasticsearch matches IPs exactly or by CIDR)",
)
NUMBER = FieldKind(
    "a number", (SigmaCompareExpression,), _is_number, "a number", "use exact numbers or |lt/|lte/|gt/|gte"
)


@dataclass(frozen=True)
class FullText:
    """A full-text field (``message``): searched by its words, so only ``|contains`` keeps Sigma's meaning."""

    label: str = "full text (match_only_text)"

    def problem(self, name: str, value: Any) -> str | None:
        head = f"{name} is {self.label} in ECS mappings:"
        if isinstance(value, SigmaNull | SigmaExists | SigmaFieldReference):
            return None
        if isinstance(value, SigmaRegularExpression):
            return f"{head} the regular expression '{value.regexp}' cannot be searched there; use |contains"
        if isinstance(value, SigmaCasedString):
            return f"{head} its words are searched whatever their case, so |cased cannot hold there"
        if isinstance(value, SigmaString):
            if value.startswith(SpecialChars.WILDCARD_MULTI) and value.endswith(SpecialChars.WILDCARD_MULTI):
                return None
            return (
                f"{head} '{_written(value)}' as an exact value, startswith or endswith cannot be decided on its "
                "words; use |contains (or a parsed keyword field of the same line)"
            )
        return None


TEXT = FullText()
KINDS: dict[str, Any] = {"ip": IP, "number": NUMBER, "text": TEXT}


def base64offset_problem(item: SigmaDetectionItem) -> str | None:
    """A ``|base64offset`` value pySigma cannot encode faithfully (it would match other text, or anything).

    pySigma cuts the three shifted encodings by the value's length in characters, not in bytes: a value
    with a non-ASCII character is cut at the wrong places; a one-byte value has an empty shifted encoding,
    which ``|contains`` turns into ``*`` (every value).
    """
    names = {getattr(m, "__name__", "") for m in item.modifiers}
    if "SigmaBase64OffsetModifier" not in names:
        return None
    wide = 2 if names & {"SigmaWideModifier", "SigmaUTF16LEModifier", "SigmaUTF16BEModifier"} else 1
    for value in item.original_value or ():
        if not isinstance(value, SigmaString):
            continue
        text = str(value)
        if not text.isascii():
            return (
                f"|base64offset on '{text}': pySigma cuts the shifted encodings by characters, not bytes, so a value "
                "with a non-ASCII character would match other text (use an ASCII value)"
            )
        if len(text.encode()) * wide < 2:
            return (
                f"|base64offset on '{text}': a one-character value has an empty shifted encoding, which would "
                "match every value (use at least two characters)"
            )
    return None


def typed_value_problems(rule: SigmaRule) -> list[str]:
    """What in a processed rule (fields already mapped to ECS) can never match its field's type."""
    problems: list[str] = []
    for detection in rule.detection.detections.values():
        for item in _items(detection):
            encoding = base64offset_problem(item)
            if encoding is not None and encoding not in problems:
                problems.append(encoding)
            kind = field_type(str(item.field))
            if kind is None:
                continue
            for value in item.value:
                problem = KINDS[kind].problem(str(item.field), value)
                if problem is not None and problem not in problems:
                    problems.append(problem)
    return problems
