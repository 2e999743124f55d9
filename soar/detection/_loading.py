"""Loading Sigma rules from files, collecting every error with its file:line:col.

pySigma parses a rule from a dict and, with ``collect_errors``, keeps going; it knows the
file but not the line. We compose each YAML document ourselves, remember where every key
and value is, and translate pySigma's errors to :class:`ContentError` at that position.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from sigma.collection import SigmaCollection
from sigma.correlations import SigmaCorrelationRule
from sigma.exceptions import SigmaError
from sigma.rule import SigmaRule

from soar import _yaml
from soar.detection import _modifiers  # noqa: F401 (registers the specification's modifier names)
from soar.detection._files import fixtures_path_for, rule_files
from soar.detection._yamlpos import Positions, duplicate_keys, positions
from soar.errors import ContentError, SourceLocation

# pySigma error class name -> the top-level key it is about, when the message names nothing.
_ERROR_KEYS = {
    "SigmaTitleError": "title",
    "SigmaIdentifierError": "id",
    "SigmaLevelError": "level",
    "SigmaStatusError": "status",
    "SigmaDateError": "date",
    "SigmaModifiedError": "modified",
    "SigmaLogsourceError": "logsource",
    "SigmaTagError": "tags",
    "SigmaFalsePositivesError": "falsepositives",
    "SigmaDetectionError": "detection",
    "SigmaConditionError": "detection",
    "SigmaModifierError": "detection",
    "SigmaTypeError": "detection",
    "SigmaValueError": "detection",
    "SigmaRegularExpressionError": "detection",
    "SigmaCorrelationRuleError": "correlation",
    "SigmaCorrelationConditionError": "correlation",
    "SigmaCorrelationTypeError": "correlation",
    "SigmaTimespanError": "correlation",
    "SigmaRuleNotFoundError": "correlation",
    "SigmaAuthorError": "author",
    "SigmaDescriptionError": "description",
    "SigmaReferencesError": "references",
    "SigmaRelatedError": "related",
    "SigmaNameError": "name",
    "SigmaFieldsError": "fields",
    "SigmaLicenseError": "license",
}


@dataclass(frozen=True, eq=False)
class Rule:
    """One Sigma rule or correlation rule, with where it came from."""

    path: Path
    line: int
    id: str
    name: str | None
    title: str
    level: str | None
    status: str | None
    tags: tuple[str, ...]
    logsource: dict[str, str]
    kind: str  # "rule" | "correlation"
    text: str
    content_hash: str
    sigma: SigmaRule | SigmaCorrelationRule
    positions: Positions = field(repr=False)
    fixtures_path: Path | None = None
    references: tuple[str, ...] = ()
    data: dict[str, Any] = field(default_factory=dict, repr=False)

    def location(self, *key_path: str | int) -> SourceLocation:
        """file:line:col of a key in this rule (the rule's start when absent)."""
        mark = self.positions.of(*key_path)
        return SourceLocation(self.path, mark.line, mark.column)

    def error(self, message: str, *key_path: str | int) -> ContentError:
        return ContentError(message, self.location(*key_path))


@dataclass
class RuleSet:
    """Rules that loaded and every error met on the way."""

    rules: list[Rule] = field(default_factory=list)
    errors: list[ContentError] = field(default_factory=list)
    # ids of the errors that depend on other files too (a duplicate id, an unresolved reference):
    # a file's other errors are its own, and can be kept with it (the compile cache does).
    cross_file: set[int] = field(default_factory=set)

    @property
    def by_id(self) -> dict[str, Rule]:
        out: dict[str, Rule] = {}
        for rule in self.rules:
            out.setdefault(rule.id, rule)
            if rule.name:
                out.setdefault(rule.name, rule)
        return out

    def reached(self, rule: Rule) -> list[Rule]:
        """The rules ``rule`` refers to, through chained correlations too, each once (what its compilation reads)."""
        by_id = self.by_id
        out: list[Rule] = []
        seen = {rule.id}
        todo = list(rule.references)
        while todo:
            found = by_id.get(todo.pop(0))
            if found is None or found.id in seen:
                continue
            seen.add(found.id)
            out.append(found)
            todo.extend(found.references)
        return out

    def raise_first(self) -> None:
        if self.errors:
            raise self.errors[0]

    def __iter__(self) -> Iterator[Rule]:
        return iter(self.rules)

    def __len__(self) -> int:
        return len(self.rules)


def yaml_error(path: Path, exc: yaml.YAMLError, what: str = "YAML") -> ContentError:
    """At the line the parser stopped; where the construct it was reading began is named too (an unclosed quote)."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    context, began = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    if context and began is not None and mark is not None and began.line != mark.line:
        problem = f"{problem} ({context} at line {began.line + 1}, column {began.column + 1})"
    if mark is not None:
        return ContentError(f"invalid {what}: {problem}", SourceLocation(path, mark.line + 1, mark.column + 1))
    return ContentError(f"invalid {what}: {problem}", SourceLocation(path))


def _documents(path: Path, text: str, errors: list[ContentError]) -> list[tuple[yaml.Node, str]]:
    """Each YAML document of a file as (node, its own text)."""
    try:
        nodes = _yaml.compose_all(text)  # an alias is refused at its line, before anything expands
    except yaml.YAMLError as exc:
        errors.append(yaml_error(path, exc))
        return []
    lines = text.splitlines(keepends=True)
    out = []
    for node in nodes:
        start = node.start_mark.line
        end = node.end_mark.line if node.end_mark.column == 0 else node.end_mark.line + 1
        out.append((node, "".join(lines[start:end])))
    return out


def sigma_error(exc: Exception, path: Path, pos: Positions) -> ContentError:
    """A pySigma error as a ContentError at the best line we can find."""
    message = exc.args[0] if isinstance(exc, SigmaError) and exc.args else str(exc)
    message = str(message).split(" in /")[0]
    hint = _ERROR_KEYS.get(type(exc).__name__)
    mark = pos.locate_message(message, hint)
    return ContentError(str(message), SourceLocation(path, mark.line, mark.column))


def _parse_document(
    path: Path, node: yaml.Node, text: str, errors: list[ContentError], parse_conditions: bool = True
) -> tuple[SigmaRule | SigmaCorrelationRule, dict[str, Any], Positions] | None:
    pos = positions(node)
    for key, mark in duplicate_keys(node):
        errors.append(ContentError(f"duplicate key '{key}'", SourceLocation(path, mark.line, mark.column)))
    try:
        data = _yaml.construct(node)
    except yaml.YAMLError as exc:
        errors.append(yaml_error(path, exc))
        return None
    if not isinstance(data, dict):
        errors.append(
            ContentError("a Sigma rule must be a mapping", SourceLocation(path, pos.start.line, pos.start.column))
        )
        return None
    if "soar_rule" in data:  # soar's own rule types are not Sigma: they live in their own files
        mark = pos.of("soar_rule")
        errors.append(
            ContentError(
                "soar_rule: soar's own rule types go in a *.soar.yml file", SourceLocation(path, mark.line, mark.column)
            )
        )
        return None
    from sigma.exceptions import SigmaRuleLocation

    source = SigmaRuleLocation(path)
    before = len(errors)
    try:
        sigma: SigmaRule | SigmaCorrelationRule
        if "correlation" in data:
            sigma = SigmaCorrelationRule.from_dict(data, collect_errors=True, source=source)
        else:
            sigma = SigmaRule.from_dict(data, collect_errors=True, source=source)
    except SigmaError as exc:
        errors.append(sigma_error(exc, path, pos))
        return None
    except Exception as exc:  # pySigma raises plain TypeError/AttributeError on some malformed shapes
        errors.append(sigma_error(exc, path, pos))
        return None
    for err in sigma.errors:
        errors.append(sigma_error(err, path, pos))
    if parse_conditions and isinstance(sigma, SigmaRule) and not sigma.errors:
        # Parse the condition now: a bad condition or an unknown identifier is a load error.
        try:
            for cond in sigma.detection.parsed_condition:
                _ = cond.parsed
        except SigmaError as exc:
            errors.append(sigma_error(exc, path, pos))
    if len(errors) > before:
        return None
    return sigma, data, pos


def _rule(path: Path, text: str, sigma: SigmaRule | SigmaCorrelationRule, data: dict[str, Any], pos: Positions) -> Rule:
    logsource = {}
    if isinstance(sigma, SigmaRule):
        logsource = {
            k: str(v)
            for k in ("product", "category", "service")
            if (v := getattr(sigma.logsource, k, None)) is not None
        }
    refs: tuple[str, ...] = ()
    if isinstance(sigma, SigmaCorrelationRule):
        refs = tuple(str(r.reference) for r in sigma.rules or [])
    return Rule(
        path=path,
        line=pos.start.line,
        id=str(sigma.id) if sigma.id else str(data.get("id") or f"{path}:{pos.start.line}"),
        name=sigma.name,
        title=str(sigma.title or ""),
        level=sigma.level.name.lower() if sigma.level else None,
        status=sigma.status.name.lower() if sigma.status else None,
        tags=tuple(str(t) for t in sigma.tags),
        logsource=logsource,
        kind="correlation" if isinstance(sigma, SigmaCorrelationRule) else "rule",
        text=text,
        content_hash=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        sigma=sigma,
        positions=pos,
        fixtures_path=fixtures_path_for(path),
        references=refs,
        data=data,
    )


def load_rules(paths: Sequence[Path | str] | Path | str, parse_conditions: bool = True) -> RuleSet:
    """Load every rule under ``paths``; errors are collected, never raised (except a missing path).

    ``parse_conditions=False`` leaves condition errors to the compilation (which parses them anyway).
    """
    if isinstance(paths, str | Path):
        paths = [paths]
    ruleset = RuleSet()
    for path in rule_files(paths):
        try:
            text = _yaml.read_text(path)  # over 1 MiB: refused before reading
        except (OSError, UnicodeDecodeError) as exc:
            ruleset.errors.append(ContentError(f"cannot read rule file: {exc}", SourceLocation(path)))
            continue
        if not text.strip():  # a rule file left empty would otherwise load as no rule at all, silently
            ruleset.errors.append(ContentError("empty rule file: no Sigma rule in it", SourceLocation(path, 1)))
            continue
        for node, doc_text in _documents(path, text, ruleset.errors):
            parsed = _parse_document(path, node, doc_text, ruleset.errors, parse_conditions)
            if parsed is not None:
                ruleset.rules.append(_rule(path, doc_text, *parsed))
    _check_duplicate_ids(ruleset)
    _resolve_references(ruleset)
    return ruleset


def _check_duplicate_ids(ruleset: RuleSet) -> None:
    first: dict[str, Rule] = {}
    keep: list[Rule] = []
    for rule in ruleset.rules:
        other = first.get(rule.id)
        if other is not None:
            error = rule.error(f"duplicate rule id {rule.id} (first defined at {other.location('id')})", "id")
            ruleset.errors.append(error)
            ruleset.cross_file.add(id(error))
            continue
        first[rule.id] = rule
        keep.append(rule)
    ruleset.rules = keep


def _resolve_references(ruleset: RuleSet) -> None:
    """Resolve correlation references; a correlation naming an unknown rule is dropped with an error."""
    correlations = [r for r in ruleset.rules if r.kind == "correlation"]
    if not correlations:
        return
    collection = SigmaCollection([r.sigma for r in ruleset.rules], resolve_references=False)
    bad: set[int] = set()
    for rule in correlations:
        assert isinstance(rule.sigma, SigmaCorrelationRule)
        try:
            rule.sigma.resolve_rule_references(collection)
        except SigmaError as exc:
            error = sigma_error(exc, rule.path, rule.positions)
            ruleset.errors.append(error)
            ruleset.cross_file.add(id(error))
            bad.add(id(rule))
    ruleset.rules = [r for r in ruleset.rules if id(r) not in bad]
