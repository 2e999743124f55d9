"""Compiling rules to Elasticsearch query DSL or embedded SQL, with a cache.

pySigma's processing mutates the rule it converts, so every compilation starts from a fresh
parse of the rule's YAML. A correlation compiles to a :class:`CorrelationSpec`: its base
rules compiled for the same target plus the window, group-by and condition that
:func:`soar.detection._correlate.evaluate_correlation` applies.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from sigma.collection import SigmaCollection
from sigma.correlations import SigmaCorrelationRule
from sigma.exceptions import SigmaError, SigmaRuleLocation
from sigma.rule import SigmaRule

from soar.detection._backends import SoarLuceneBackend, SoarSQLiteBackend
from soar.detection._compiled import CompileCache, CompiledRule, CorrelationSpec, backend_versions
from soar.detection._loading import Rule, RuleSet, sigma_error
from soar.detection.pipelines import DEFAULT_PIPELINES, pipeline_identity, resolve_pipelines
from soar.errors import ContentError, InputError

Target = Literal["elasticsearch", "embedded"]
TARGETS: tuple[str, ...] = ("elasticsearch", "embedded")
STRICT_ITEM = "ecs_linux_strict_fields"


def _fresh(rule: Rule) -> SigmaRule | SigmaCorrelationRule:
    source = SigmaRuleLocation(rule.path)
    if rule.kind == "correlation":
        return SigmaCorrelationRule.from_dict(rule.data, source=source)
    return SigmaRule.from_dict(rule.data, source=source)


class Compiler:
    """A backend per target for one list of pipelines, reused across rules (as sigma-cli does)."""

    def __init__(self, target: str = "elasticsearch", pipelines: Sequence[str] = DEFAULT_PIPELINES) -> None:
        if target not in TARGETS:
            raise InputError(f"--target {target}: unknown target (known: {', '.join(TARGETS)})")
        self.target = target
        self.pipelines = tuple(pipelines)
        self.identity = pipeline_identity(self.pipelines)
        pipeline = resolve_pipelines(self.pipelines)
        self.backend: Any = (SoarLuceneBackend if target == "elasticsearch" else SoarSQLiteBackend)(pipeline)

    def _convert(self, rule: Rule, sigma: SigmaRule) -> str:
        try:
            queries = self.backend.convert_rule(sigma)
        except SigmaError as exc:
            raise sigma_error(exc, rule.path, rule.positions) from exc
        applied = sigma.applied_processing_items - {STRICT_ITEM}
        if not applied:
            shown = ", ".join(f"{k}: {v}" for k, v in rule.logsource.items())
            raise rule.error(f"no pipeline of {', '.join(self.pipelines)} applies to log source '{shown}'", "logsource")
        if not queries:
            raise rule.error("the rule produced no query")
        if len(queries) == 1:
            return str(queries[0])
        return " OR ".join(f"({q})" for q in queries)

    def compile(self, rule: Rule, ruleset: RuleSet | None = None, consume: bool = False) -> CompiledRule:
        """Compile ``rule``; ``consume`` lets pySigma process the loaded rule itself (one-shot bulk conversion)."""
        base: dict[str, Any] = {
            "rule_id": rule.id,
            "title": rule.title,
            "level": rule.level,
            "tags": rule.tags,
            "path": str(rule.path),
            "target": self.target,
            "pipelines": self.pipelines,
            "name": rule.name,
        }
        if rule.kind == "correlation":
            return CompiledRule(**base, correlation=self._correlation(rule, ruleset))
        # pySigma silences a rule a correlation refers to (disable_output): such a rule is re-parsed.
        fresh = rule.sigma if consume and getattr(rule.sigma, "_output", True) else _fresh(rule)
        assert isinstance(fresh, SigmaRule)
        query = self._convert(rule, fresh)
        if self.target == "elasticsearch":
            dsl = {"query": {"bool": {"must": [{"query_string": {"query": query, "analyze_wildcard": True}}]}}}
            return CompiledRule(**base, query=query, dsl=dsl)
        return CompiledRule(**base, query=query, sql=f"SELECT id FROM events WHERE {query}")  # noqa: S608 - SQL compiled by pySigma, values quoted

    def _correlation(self, rule: Rule, ruleset: RuleSet | None) -> CorrelationSpec:
        fresh = _fresh(rule)
        assert isinstance(fresh, SigmaCorrelationRule)
        if ruleset is None:
            raise rule.error("a correlation rule compiles only with the rule set holding its base rules", "correlation")
        by_id = ruleset.by_id
        bases: list[CompiledRule] = []
        for ref in rule.references:
            base_rule = by_id.get(ref)
            if base_rule is None:
                raise rule.error(f"correlation refers to unknown rule '{ref}'", "correlation", "rules")
            if base_rule.kind == "correlation":
                raise rule.error(f"chained correlations are not supported ('{ref}')", "correlation", "rules")
            bases.append(self.compile(base_rule))
        try:
            fresh.resolve_rule_references(SigmaCollection([r.sigma for r in ruleset.rules], resolve_references=False))
            self.backend.processing_pipeline.apply(fresh)  # maps group-by fields like the base rules' fields
        except SigmaError as exc:
            raise sigma_error(exc, rule.path, rule.positions) from exc
        condition = fresh.condition
        op = getattr(condition, "op", None)
        field_ref = getattr(condition, "fieldref", None)
        if isinstance(field_ref, list):
            field_ref = field_ref[0] if field_ref else None
        if field_ref is not None:
            field_ref = self._map_field(field_ref, rule)
        kind = str(fresh.type.name).lower()
        if kind in ("value_count", "value_sum", "value_avg") and not field_ref:
            raise rule.error(f"a {kind} correlation needs condition.field", "correlation", "condition")
        if kind not in ("event_count", "value_count", "value_sum", "value_avg", "temporal", "temporal_ordered"):
            raise rule.error(f"correlation type {kind} is not supported", "correlation", "type")
        return CorrelationSpec(
            rule_id=rule.id,
            type=kind,
            rules=tuple(bases),
            group_by=tuple(fresh.group_by or ()),
            timespan=int(fresh.timespan.seconds),
            op=op.name.lower() if op is not None and rule.data.get("correlation", {}).get("condition") else None,
            count=float(getattr(condition, "count", 0) or 0),
            field=field_ref,
        )

    def _map_field(self, name: str, rule: Rule) -> str:
        """The condition's field through the pipeline's mapping (pySigma does not map it)."""
        from sigma.processing.transformations import FieldMappingTransformation

        for item in self.backend.processing_pipeline.items:
            transformation = item.transformation
            if isinstance(transformation, FieldMappingTransformation) and name in transformation.mapping:
                target = transformation.mapping[name]
                return str(target if isinstance(target, str) else target[0])
        return name


def compile_rule(
    rule: Rule,
    target: str = "elasticsearch",
    pipelines: Sequence[str] = DEFAULT_PIPELINES,
    cache: CompileCache | None = None,
    ruleset: RuleSet | None = None,
) -> CompiledRule:
    """Compile one rule (a correlation needs ``ruleset``); raise ContentError at the rule's line."""
    compiled, errors = compile_rules([rule], target, pipelines, cache, ruleset)
    if errors:
        raise errors[0]
    return compiled[0]


def _cache_key(cache: CompileCache, compiler: Compiler, rule: Rule, ruleset: RuleSet | None) -> str:
    parts = [rule.content_hash]
    if rule.kind == "correlation" and ruleset is not None:
        by_id = ruleset.by_id
        parts.extend(by_id[r].content_hash if r in by_id else f"missing:{r}" for r in rule.references)
    return cache.key(*parts, compiler.identity, compiler.target)


def compile_rules(
    rules: Sequence[Rule] | RuleSet,
    target: str = "elasticsearch",
    pipelines: Sequence[str] = DEFAULT_PIPELINES,
    cache: CompileCache | None = None,
    ruleset: RuleSet | None = None,
    compiler: Compiler | None = None,
) -> tuple[list[CompiledRule], list[ContentError]]:
    """Compile many rules with one backend; errors are collected per rule."""
    if isinstance(rules, RuleSet):
        ruleset = ruleset or rules
        rules = rules.rules
    compiler = compiler or Compiler(target, pipelines)
    out: list[CompiledRule] = []
    errors: list[ContentError] = []
    for rule in rules:
        key = _cache_key(cache, compiler, rule, ruleset) if cache is not None else None
        if cache is not None and key is not None:
            hit = cache.get(key)
            if hit is not None:
                out.append(CompiledRule.from_dict(hit))
                continue
        try:
            compiled = compiler.compile(rule, ruleset)
        except ContentError as exc:
            errors.append(exc)
            continue
        out.append(compiled)
        if cache is not None and key is not None:
            cache.put(key, compiled.to_dict())
    if cache is not None:
        cache.flush()
    return out, errors


__all__ = [
    "CompileCache",
    "CompiledRule",
    "Compiler",
    "CorrelationSpec",
    "backend_versions",
    "compile_rule",
    "compile_rules",
]
