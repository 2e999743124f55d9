"""Compiling rules to Elasticsearch query DSL or embedded SQL, with a cache.

pySigma's processing mutates the rule it converts, so every compilation starts from a fresh
parse of the rule's YAML. A correlation compiles to a :class:`CorrelationSpec`: its base
rules compiled for the same target plus the window, group-by and condition that
:func:`soar.detection._correlate.evaluate_correlation` applies.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Literal

from sigma.correlations import SigmaCorrelationRule
from sigma.exceptions import SigmaError, SigmaRuleLocation
from sigma.rule import SigmaRule

from soar.detection._backends import SoarLuceneBackend, SoarSQLiteBackend
from soar.detection._compiled import (
    CompileCache,
    CompiledRule,
    CorrelationSpec,
    backend_versions,
    error_from_cache,
    error_to_cache,
)
from soar.detection._dsl import SoarElasticsearchDSLBackend
from soar.detection._loading import Rule, RuleSet, sigma_error
from soar.detection._typed import typed_value_problems
from soar.detection.pipelines import DEFAULT_PIPELINES, pipeline_identity, resolve_pipelines
from soar.detection.pipelines._sources import (
    SourceCoverage,
    SourceLacksField,
    condition_count,
    rule_logsource_key,
    source_pipeline,
    sources_for,
    sources_identity,
)
from soar.errors import ContentError, InputError, SourceLocation

Target = Literal["elasticsearch", "embedded", "lucene"]
# elasticsearch: query DSL (what soar searches with); embedded: SQL; lucene: a query_string, for exports only.
TARGETS: tuple[str, ...] = ("elasticsearch", "embedded", "lucene")
_BACKENDS: dict[str, type[Any]] = {
    "elasticsearch": SoarElasticsearchDSLBackend,
    "embedded": SoarSQLiteBackend,
    "lucene": SoarLuceneBackend,
}
STRICT_ITEM = "ecs_linux_strict_fields"


def _split(query: Any, conditions: int) -> tuple[list[Any], list[Any]] | None:
    """(the source's condition clauses, the rule's clauses) of a per-source query, or None if not that shape.

    pySigma's add_condition puts the source's conditions first in the rule's AND, one clause per field.
    """
    clauses = query.get("bool", {}).get("filter") if isinstance(query, dict) and set(query) == {"bool"} else None
    if not isinstance(clauses, list) or set(query["bool"]) != {"filter"} or len(clauses) <= conditions:
        return None
    return clauses[:conditions], clauses[conditions:]


def _merge_same_bodies(queries: list[Any], conditions: list[int]) -> Any:
    """OR of per-source queries, sources whose rule part is the same sharing it: ``(c1 OR c2) AND body``.

    Elasticsearch rewrites each wildcard or case-insensitive clause per segment however few documents the
    source conditions leave, so searching the same body once for several sources saves most of the cost.
    """
    groups: dict[str, tuple[list[list[Any]], list[Any]]] = {}
    order: list[Any] = []
    for query, count in zip(queries, conditions, strict=True):
        parts = _split(query, count)
        if parts is None:
            order.append(query)
            continue
        conds, body = parts
        key = json.dumps(body, sort_keys=True)
        if key not in groups:
            groups[key] = ([], body)
            order.append(key)
        groups[key][0].append(conds)
    branches: list[Any] = []
    for item in order:
        if not isinstance(item, str):
            branches.append(item)
            continue
        conds_list, body = groups[item]
        if len(conds_list) == 1:
            branches.append({"bool": {"filter": [*conds_list[0], *body]}})
            continue
        either = [c[0] if len(c) == 1 else {"bool": {"filter": c}} for c in conds_list]
        branches.append({"bool": {"filter": [{"bool": {"should": either, "minimum_should_match": 1}}, *body]}})
    return branches[0] if len(branches) == 1 else {"bool": {"should": branches, "minimum_should_match": 1}}


class _LeftOut(Exception):
    """A source cannot serve the rule (it lacks a field the rule uses)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _fresh(rule: Rule) -> SigmaRule | SigmaCorrelationRule:
    source = SigmaRuleLocation(rule.path)
    if rule.kind == "correlation":
        return SigmaCorrelationRule.from_dict(rule.data, source=source)
    return SigmaRule.from_dict(rule.data, source=source)


class Compiler:
    """A backend per target for one list of pipelines, reused across rules (as sigma-cli does).

    With the default ``ecs_linux`` and a searching target (Elasticsearch, embedded), a Linux rule is
    compiled once per real source that carries its log source (``pipelines/sources.yml``) and the
    queries are OR-ed; exports (``lucene``) keep the one ``ecs_linux.yml`` pipeline sigma-cli reads.
    """

    def __init__(self, target: str = "elasticsearch", pipelines: Sequence[str] = DEFAULT_PIPELINES) -> None:
        if target not in TARGETS:
            raise InputError(f"--target {target}: unknown target (known: {', '.join(TARGETS)})")
        self.target = target
        self.pipelines = tuple(pipelines)
        self.per_source = self.pipelines == ("ecs_linux",) and target != "lucene"
        self.identity = pipeline_identity(self.pipelines) + (
            f"+sources:{sources_identity()}" if self.per_source else ""
        )
        pipeline = resolve_pipelines(self.pipelines)
        self.backend: Any = _BACKENDS[target](pipeline)
        self._source_backends: dict[tuple[str, str], Any] = {}

    def _source_backend(self, source: str, logsource: str) -> Any:
        key = (source, logsource)
        if key not in self._source_backends:
            self._source_backends[key] = _BACKENDS[self.target](source_pipeline(source, logsource))
        return self._source_backends[key]

    def _convert_per_source(self, rule: Rule, logsource: str) -> tuple[Any, SourceCoverage]:
        """One query per source carrying the rule's log source, OR-ed; sources lacking a field are left out."""
        coverage = SourceCoverage()
        queries: list[Any] = []
        for mapping in sources_for(logsource):
            fresh = _fresh(rule)
            assert isinstance(fresh, SigmaRule)
            try:
                query = self._convert(rule, fresh, self._source_backend(mapping.source, logsource))
            except _LeftOut as out:
                coverage.left_out[mapping.source] = out.reason
                continue
            coverage.searched.append(mapping.source)
            queries.append(query)
        if not queries:
            reasons = "; ".join(f"{s}: {why}" for s, why in coverage.left_out.items())
            raise rule.error(
                f"no source carrying {logsource.replace(':', ': ')} has every field the rule uses ({reasons})"
            )
        if len(queries) == 1:
            return queries[0], coverage
        if self.target == "elasticsearch":
            return _merge_same_bodies(queries, [condition_count(s, logsource) for s in coverage.searched]), coverage
        return " OR ".join(f"({q})" for q in queries), coverage

    def source_queries(self, rule: Rule) -> dict[str, Any]:
        """Each searched source's own query for ``rule`` (not merged): what each source's documents must hold."""
        logsource = rule_logsource_key(rule.sigma) if self.per_source and rule.kind == "rule" else None
        out: dict[str, Any] = {}
        if logsource is None:
            return out
        for mapping in sources_for(logsource):
            fresh = _fresh(rule)
            assert isinstance(fresh, SigmaRule)
            try:
                out[mapping.source] = self._convert(rule, fresh, self._source_backend(mapping.source, logsource))
            except (_LeftOut, ContentError):
                continue
        return out

    def _convert(self, rule: Rule, sigma: SigmaRule, backend: Any = None) -> Any:
        try:
            queries = (backend or self.backend).convert_rule(sigma)
        except SourceLacksField as exc:
            raise _LeftOut(str(exc.args[0] if exc.args else exc)) from exc
        except SigmaError as exc:
            raise sigma_error(exc, rule.path, rule.positions) from exc
        applied = sigma.applied_processing_items - {STRICT_ITEM}
        if not applied:
            shown = ", ".join(f"{k}: {v}" for k, v in rule.logsource.items())
            raise rule.error(f"no pipeline of {', '.join(self.pipelines)} applies to log source '{shown}'", "logsource")
        for problem in typed_value_problems(sigma):  # the first; the rule is fixed one problem at a time
            mark = rule.positions.locate_message(problem, "detection")
            raise ContentError(problem, SourceLocation(rule.path, mark.line, mark.column))
        if not queries:
            raise rule.error("the rule produced no query")
        if self.target == "elasticsearch":
            return queries[0] if len(queries) == 1 else {"bool": {"should": queries, "minimum_should_match": 1}}
        if len(queries) == 1:
            return str(queries[0])
        return " OR ".join(f"({q})" for q in queries)

    def compile(
        self, rule: Rule, ruleset: RuleSet | None = None, consume: bool = False, chain: tuple[str, ...] = ()
    ) -> CompiledRule:
        """Compile ``rule``; ``consume`` lets pySigma process the loaded rule itself (one-shot bulk conversion).

        ``chain``: the ids of the correlations being compiled that led to this rule (a loop is an error).
        """
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
            from soar.detection._compile_correlation import compile_correlation

            return CompiledRule(**base, correlation=compile_correlation(self, rule, ruleset, chain))
        logsource = rule_logsource_key(rule.sigma) if self.per_source else None
        if logsource is not None:
            query, coverage = self._convert_per_source(rule, logsource)
            base["sources"] = tuple(coverage.searched)
            base["left_out"] = dict(coverage.left_out)
        else:
            # pySigma silences a rule a correlation refers to (disable_output): such a rule is re-parsed.
            fresh = rule.sigma if consume and getattr(rule.sigma, "_output", True) else _fresh(rule)
            assert isinstance(fresh, SigmaRule)
            query = self._convert(rule, fresh)
        if self.target == "elasticsearch":
            return CompiledRule(**base, dsl={"query": query})
        if self.target == "lucene":
            return CompiledRule(**base, query=query)
        return CompiledRule(**base, query=query, sql=f"SELECT id FROM events WHERE {query}")  # noqa: S608 - SQL compiled by pySigma, values quoted

    def map_field(self, name: str) -> str:
        """A correlation's field through the pipeline's mapping, whatever the log source (condition fields)."""
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
        parts.extend(r.content_hash for r in ruleset.reached(rule))  # chained: the rules behind them too
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
            if hit is not None and "refused" in hit:  # a refusal is kept as a compilation is
                errors.append(error_from_cache(rule.path, hit["refused"]))
                continue
            if hit is not None:
                out.append(CompiledRule.from_dict(hit))
                continue
        try:
            compiled = compiler.compile(rule, ruleset)
        except ContentError as exc:
            errors.append(exc)
            if cache is not None and key is not None:
                cache.put(key, {"refused": error_to_cache(rule.path, exc)})
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
