"""soar's own rule types beside Sigma: ``new_terms``, ``spike`` and ``silence`` (``*.soar.yml`` files).

Sigma describes what a matching event looks like; these types say how the events of a *base selection*
should compare with their own past: a value combination not seen in N days, a group counting many times
its usual, a host that stops reporting. They are soar's extension, not Sigma: a file is one if it is
named ``<name>.soar.yml`` and its top-level ``soar_rule`` names the type (docs/baseline-rules.md).

The base selection is either a Sigma rule of the pack (``base: <id or name>``), or an inline Sigma
``logsource`` + ``detection`` in the file itself: those keys are Sigma's own, so they are parsed by pySigma
and compiled by the same pipeline for either engine. Every error is a ContentError at ``file:line:col``
(the loader's position tracking), collected with the other rules' errors.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from sigma.exceptions import SigmaError, SigmaRuleLocation
from sigma.rule import SigmaRule

from soar import _yaml
from soar.detection._files import SOAR_RULE_SUFFIXES
from soar.detection._loading import Rule, RuleSet, _documents, _rule, sigma_error
from soar.detection._yamlpos import Positions, duplicate_keys, positions
from soar.errors import ContentError, SourceLocation

TYPES = ("new_terms", "spike", "silence")
# Sigma's descriptive keys a soar rule shares (pySigma checks them as for any rule), then soar's own.
SIGMA_KEYS = frozenset(
    {"title", "id", "status", "level", "description", "author", "date", "modified", "tags", "references"}
    | {"falsepositives", "license", "logsource", "detection", "fields"}
)
OWN_KEYS = frozenset({"soar_rule", "base", "soar", *TYPES})
_FIELD = re.compile(r"^[A-Za-z_@][A-Za-z0-9_.@-]{0,127}$")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)\s*$")
_UNIT = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
MIN_HISTORY = 2 * 3600.0  # longer than any one window searched (a gap chunk is 1 h): see soar.scheduler.baselines


@dataclass(frozen=True)
class NewTerms:
    """Alert on the first event of a value combination not seen in the ``history`` before it."""

    fields: tuple[str, ...]
    history: float  # seconds


@dataclass(frozen=True)
class Spike:
    """Per group, the events of a ``window`` (fixed buckets) against the same group's ``baseline`` before it."""

    by: tuple[str, ...]
    window: float
    baseline: float
    ratio: float
    min_count: int


@dataclass(frozen=True)
class Silence:
    """Per group (host), fewer than ``min_count`` events in a ``window`` (fixed buckets): the group fell silent."""

    by: tuple[str, ...]
    window: float
    min_count: int
    inventory: bool  # the inventory's hosts must report (by: host.name), whether or not they ever did
    labels: Mapping[str, str]  # only the inventory hosts with these labels
    seen_within: float  # besides the inventory: every group seen within this long before a window must report


Params = NewTerms | Spike | Silence


@dataclass(frozen=True, eq=False)
class SoarRule:
    """One ``*.soar.yml`` rule: its type and parameters, and its base selection as a Sigma rule to compile."""

    path: Path
    line: int
    id: str
    title: str
    level: str | None
    tags: tuple[str, ...]
    type: str
    params: Params
    base: Rule  # the Sigma rule (from the pack, or the file's inline detection) whose events are counted
    content_hash: str  # this file's text and, for a base from the pack, the base's
    data: dict[str, Any] = field(default_factory=dict, repr=False)
    positions: Positions | None = field(default=None, repr=False)

    def error(self, message: str, *key_path: str | int) -> ContentError:
        mark = self.positions.of(*key_path) if self.positions is not None else None
        return ContentError(
            message, SourceLocation(self.path, mark.line if mark else self.line, mark.column if mark else None)
        )


@dataclass
class SoarRuleSet:
    rules: list[SoarRule] = field(default_factory=list)
    errors: list[ContentError] = field(default_factory=list)


def is_soar_rule_file(path: Path) -> bool:
    return path.name.endswith(SOAR_RULE_SUFFIXES)


def duration(value: Any) -> float | None:
    """Seconds from ``14d``, ``10m``, ``1h``, ``30s``; None when it is not one."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    if isinstance(value, int | float):
        return float(value) if value > 0 else None
    match = _DURATION.match(value)
    return float(match.group(1)) * _UNIT[match.group(2)] if match else None


class _Block:
    """Reads one type block, each problem a ContentError at its key."""

    def __init__(self, path: Path, pos: Positions, name: str, block: Any) -> None:
        self.path, self.pos, self.name = path, pos, name
        if not isinstance(block, Mapping):
            raise self.fail(f"{name}: must be a mapping", ())
        self.block = block

    def fail(self, message: str, key: tuple[str, ...]) -> ContentError:
        mark = self.pos.of(self.name, *key)
        return ContentError(message, SourceLocation(self.path, mark.line, mark.column))

    def check_keys(self, known: Sequence[str], required: Sequence[str]) -> None:
        for key in self.block:
            if key not in known:
                raise self.fail(f"{self.name}.{key}: unknown key (known: {', '.join(known)})", (str(key),))
        for key in required:
            if key not in self.block:
                raise self.fail(f"{self.name}: {key} is required", ())

    def fields(self, key: str, default: Sequence[str] | None = None) -> tuple[str, ...]:
        raw = self.block.get(key, default)
        raw = [raw] if isinstance(raw, str) else raw
        if not isinstance(raw, list) or not raw or not all(isinstance(f, str) and _FIELD.match(f) for f in raw):
            raise self.fail(f"{self.name}.{key}: expected one ECS field name or a list of them", (key,))
        if len(set(raw)) != len(raw):
            raise self.fail(f"{self.name}.{key}: a field is named twice", (key,))
        return tuple(raw)

    def duration(self, key: str, default: str | None = None) -> float:
        raw = self.block.get(key, default)
        seconds = duration(raw)
        if seconds is None:
            raise self.fail(f"{self.name}.{key}: expected a duration like 10m, 1h or 14d, got {raw!r}", (key,))
        return seconds

    def number(self, key: str, default: float, *, integer: bool = False, minimum: float = 0.0) -> float:
        raw = self.block.get(key, default)
        kind = int if integer else (int, float)
        if isinstance(raw, bool) or not isinstance(raw, kind) or raw < minimum:
            what = "an integer" if integer else "a number"
            raise self.fail(f"{self.name}.{key}: expected {what} of at least {minimum:g}, got {raw!r}", (key,))
        return float(raw)


def _new_terms(b: _Block) -> NewTerms:
    b.check_keys(("fields", "history"), ("fields", "history"))
    history = b.duration("history")
    if history < MIN_HISTORY:
        raise b.fail(f"{b.name}.history: must be at least 2h (longer than any one window searched)", ("history",))
    return NewTerms(b.fields("fields"), history)


def _spike(b: _Block) -> Spike:
    b.check_keys(("by", "window", "baseline", "ratio", "min_count"), ("by", "window", "baseline"))
    window, baseline = b.duration("window"), b.duration("baseline")
    if window < 60 or baseline < window:
        raise b.fail(f"{b.name}: window must be at least 1m and baseline at least the window", ("baseline",))
    ratio = b.number("ratio", 3.0, minimum=1.0)
    return Spike(b.fields("by"), window, baseline, ratio, int(b.number("min_count", 1, integer=True, minimum=1)))


def _silence(b: _Block) -> Silence:
    b.check_keys(("by", "window", "min_count", "inventory", "labels", "seen_within"), ("window",))
    by = b.fields("by", ["host.name"])
    window = b.duration("window")
    if window < 60:
        raise b.fail(f"{b.name}.window: must be at least 1m", ("window",))
    inventory = b.block.get("inventory", True)
    if not isinstance(inventory, bool):
        raise b.fail(f"{b.name}.inventory: must be true or false", ("inventory",))
    if inventory and by != ("host.name",):
        raise b.fail(f"{b.name}.inventory: the inventory lists hosts: by must be host.name", ("inventory",))
    labels = b.block.get("labels", {})
    if not isinstance(labels, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
        raise b.fail(f"{b.name}.labels: expected {{label: value}} with string values", ("labels",))
    seen = b.duration("seen_within", "1d")
    if not inventory and seen < window:
        raise b.fail(f"{b.name}.seen_within: without the inventory, must be at least the window", ("seen_within",))
    return Silence(by, window, int(b.number("min_count", 1, integer=True, minimum=1)), inventory, dict(labels), seen)


_PARSERS: dict[str, Callable[[_Block], Params]] = {"new_terms": _new_terms, "spike": _spike, "silence": _silence}


def _fail(path: Path, pos: Positions, message: str, *key: str) -> ContentError:
    mark = pos.of(*key)
    return ContentError(message, SourceLocation(path, mark.line, mark.column))


def _inline_base(path: Path, text: str, data: dict[str, Any], pos: Positions) -> Rule:
    """The file's own ``logsource`` + ``detection`` as a Sigma rule (same id, title, level); errors at their lines."""
    sigma_data = {k: v for k, v in data.items() if k in SIGMA_KEYS}
    try:
        sigma = SigmaRule.from_dict(sigma_data, collect_errors=True, source=SigmaRuleLocation(path))
    except Exception as exc:  # pySigma raises plain TypeError/AttributeError on some malformed shapes
        raise sigma_error(exc, path, pos) from None
    if sigma.errors:
        raise sigma_error(sigma.errors[0], path, pos)
    try:
        for cond in sigma.detection.parsed_condition:
            _ = cond.parsed
    except SigmaError as exc:
        raise sigma_error(exc, path, pos) from None
    return _rule(path, text, sigma, sigma_data, pos)


def _parse(path: Path, text: str, node: yaml.Node, bases: Mapping[str, Rule]) -> SoarRule:
    pos = positions(node)
    for key, mark in duplicate_keys(node):
        raise ContentError(f"duplicate key '{key}'", SourceLocation(path, mark.line, mark.column))
    data = _yaml.construct(node)
    if not isinstance(data, dict):
        raise ContentError("a soar rule must be a mapping", SourceLocation(path, pos.start.line, pos.start.column))
    kind = data.get("soar_rule")
    if kind not in TYPES:
        mark = pos.values.get(("soar_rule",), pos.start)  # at the value given, else where the document starts
        message = f"soar_rule: expected one of {', '.join(TYPES)} (soar's rule types), got {kind!r}"
        raise ContentError(message, SourceLocation(path, mark.line, mark.column))
    for key in data:
        if key not in SIGMA_KEYS | OWN_KEYS:
            raise _fail(path, pos, f"{key}: unknown key in a soar rule", str(key))
        if key in TYPES and key != kind:
            raise _fail(path, pos, f"{key}: this is a {kind} rule; its parameters go under {kind}:", str(key))
    for key in ("id", "title"):
        if not isinstance(data.get(key), str) or not data[key].strip():
            raise _fail(path, pos, f"{key}: required (a string)", *((key,) if key in data else ()))
    if kind not in data:
        raise _fail(path, pos, f"{kind}: required (the {kind} parameters)")
    params = _PARSERS[kind](_Block(path, pos, kind, data[kind]))
    inline = "detection" in data or "logsource" in data
    if ("base" in data) == inline:
        raise _fail(path, pos, "name the base selection once: base: <Sigma rule id or name>, or logsource + detection")
    digest = hashlib.sha256(text.encode("utf-8"))
    if inline:
        base = _inline_base(path, text, data, pos)
    else:
        ref = data["base"]
        found = bases.get(str(ref)) if isinstance(ref, str) else None
        if found is None:
            raise _fail(path, pos, f"base: no Sigma rule with id or name {ref!r} in the rules loaded", "base")
        if found.kind != "rule":
            raise _fail(path, pos, f"base: {ref} is a correlation; name a plain Sigma rule", "base")
        base = found
        digest.update(found.content_hash.encode())
    tags = data.get("tags") or []
    return SoarRule(
        path=path,
        line=pos.start.line,
        id=data["id"].strip(),
        title=data["title"].strip(),
        level=data.get("level") if isinstance(data.get("level"), str) else base.level,
        tags=tuple(str(t) for t in tags) if isinstance(tags, list) else (),
        type=kind,
        params=params,
        base=base,
        content_hash=digest.hexdigest(),
        data=data,
        positions=pos,
    )


def load_soar_rules(files: Sequence[Path], ruleset: RuleSet) -> SoarRuleSet:
    """Every soar rule in ``files``, its base resolved among ``ruleset``'s rules; errors collected, never raised."""
    out = SoarRuleSet()
    bases = ruleset.by_id
    seen: dict[str, SoarRule] = {}
    for path in files:
        try:
            text = _yaml.read_text(path)
        except (OSError, UnicodeDecodeError) as exc:
            out.errors.append(ContentError(f"cannot read rule file: {exc}", SourceLocation(path)))
            continue
        errors: list[ContentError] = []
        docs = _documents(path, text, errors)
        out.errors += errors
        if not docs and not errors:
            out.errors.append(ContentError("empty rule file: no soar rule in it", SourceLocation(path, 1)))
        for node, doc_text in docs:
            try:
                rule = _parse(path, doc_text, node, bases)
            except ContentError as exc:
                out.errors.append(exc)
                continue
            clash = seen.get(rule.id) or bases.get(rule.id)
            if clash is not None:
                first = f"{clash.path}:{clash.line}"
                out.errors.append(rule.error(f"duplicate rule id {rule.id} (first defined at {first})", "id"))
                continue
            seen[rule.id] = rule
            out.rules.append(rule)
    return out


def check_soar_rules(paths: Sequence[Path | str], ruleset: RuleSet, pipelines: Sequence[str]) -> SoarRuleSet:
    """``soar rules check``: the soar rules under ``paths``, each inline base compiled for both engines (a base
    from the pack is checked with the pack); every problem a ContentError at its file:line."""
    from soar.detection._compile import compile_rules
    from soar.detection._files import rule_files

    loaded = load_soar_rules(rule_files(paths, soar=True), ruleset)
    inline = [r.base for r in loaded.rules if r.base.id == r.id]
    seen: set[str] = set()
    for target in ("elasticsearch", "embedded"):
        _, errors = compile_rules(inline, target, pipelines)
        for error in errors:
            if str(error) not in seen:  # refused by both engines for the same reason: once
                seen.add(str(error))
                loaded.errors.append(error)
    return loaded
