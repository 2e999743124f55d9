"""Values a typed field of the events template can never match: refuse the rule instead of a silent miss.

soar's events template (``integrations/elasticsearch/index_templates/soar-events.json``) maps
IP fields as ``ip`` and ports and pids as ``long``. Elasticsearch matches an ``ip`` field only by
an exact address or a CIDR range: ``DestinationIp|startswith: '10.'`` compiles to
``destination.ip:10.*``, which Elasticsearch answers with no hits and no error — a rule that
looks fine and never fires. A word for a number (``ProcessId: abc``) never matches either, and a
regular expression on either type is rejected at search time. The embedded engine would match
some of these as text, so the two engines would disagree: the rule fails on both, at its line,
saying what to write instead.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from sigma.rule import SigmaDetection, SigmaDetectionItem, SigmaRule
from sigma.types import (
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

NUMERIC_TYPES = {"long", "integer", "short", "byte", "unsigned_long", "double", "float", "half_float", "scaled_float"}


def events_template_path() -> Path:
    """integrations/elasticsearch/index_templates/soar-events.json (shipped as package data or in the repo)."""
    relative = Path("elasticsearch") / "index_templates" / "soar-events.json"
    in_repo = Path(__file__).resolve().parents[2] / "integrations" / relative
    if in_repo.is_file():
        return in_repo
    return Path(str(resources.files("integrations"))) / relative


def events_template() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(events_template_path().read_text(encoding="utf-8"))
    return data


@cache
def _typing() -> tuple[dict[str, str], dict[str, str]]:
    """(explicit field -> type, last name segment -> type from the dynamic templates) of the events template."""
    mappings = events_template()["template"]["mappings"]
    explicit: dict[str, str] = {}

    def walk(props: dict[str, Any], prefix: str) -> None:
        for name, spec in props.items():
            if "properties" in spec:
                walk(spec["properties"], f"{prefix}{name}.")
            elif "type" in spec:
                explicit[f"{prefix}{name}"] = str(spec["type"])

    walk(mappings.get("properties", {}), "")
    by_leaf: dict[str, str] = {}
    for entry in mappings.get("dynamic_templates", []):
        for spec in entry.values():
            leaf, kind = spec.get("match"), spec.get("mapping", {}).get("type")
            if isinstance(leaf, str) and "*" not in leaf and kind in ("ip", *NUMERIC_TYPES):
                by_leaf[leaf] = str(kind)
    return explicit, by_leaf


def field_type(name: str) -> str | None:
    """``ip``, ``number`` or None (a keyword: any Sigma value works) for an ECS field of the events template."""
    explicit, by_leaf = _typing()
    kind = explicit.get(name) or by_leaf.get(name.rsplit(".", 1)[-1])
    if kind == "ip":
        return "ip"
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
        head = f"{name} is {self.label} in the events template:"
        if isinstance(value, (*self.accepts, SigmaNull, SigmaExists, SigmaFieldReference)):
            return None
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
KINDS = {"ip": IP, "number": NUMBER}


def typed_value_problems(rule: SigmaRule) -> list[str]:
    """What in a processed rule (fields already mapped to ECS) can never match its field's type."""
    problems: list[str] = []
    for detection in rule.detection.detections.values():
        for item in _items(detection):
            kind = field_type(str(item.field))
            if kind is None:
                continue
            for value in item.value:
                problem = KINDS[kind].problem(str(item.field), value)
                if problem is not None and problem not in problems:
                    problems.append(problem)
    return problems
