"""Exports for people moving to or from other tools: Kibana detection rules, ElastAlert, ES|QL, EQL.

pySigma's own output formats, run with soar's pipelines (so the strict field check still applies)
and held to Sigma's meaning: a rule soar refuses for Elasticsearch is refused by every export with
the same reason; ``|re`` is a search (the targets' regexps match the whole value, so the pattern is
wrapped as soar's own queries wrap it); ES|QL string matches are case-insensitive (``to_lower`` on
both sides: its ``==``/``like``/``starts_with`` are case-sensitive); EQL's ``:`` already is, and a
keyword-only rule (no field) is refused by EQL (a bare string is no condition there). The index is
the configured ``events_index``; the ElastAlert rule carries the ``alert`` ElastAlert2 requires
(``debug``: replace it with your alerter). ES|QL and EQL are offered as files only: the open-modules
Elasticsearch soar tests against serves neither, and soar never runs them.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import yaml
from sigma.collection import SigmaCollection
from sigma.exceptions import SigmaError, SigmaFeatureNotSupportedByBackendError
from sigma.rule import SigmaRule

from soar.detection._attack import use_shipped_attack_data
from soar.detection._compile import Compiler, _fresh
from soar.detection._loading import Rule, RuleSet, sigma_error
from soar.detection.pipelines import resolve_pipelines
from soar.errors import ContentError


def _kibana(pipeline: Any, index: str) -> tuple[Any, str]:
    from soar.detection._backends import CaseFoldingLuceneBackend

    return CaseFoldingLuceneBackend(pipeline, index_names=[index]), "siem_rule_ndjson"


def _elastalert(pipeline: Any, index: str) -> tuple[Any, str]:
    from sigma.backends.elasticsearch import ElastalertBackend  # type: ignore[attr-defined]

    from soar.detection._backends import CaseFoldingLuceneBackend

    class SoarElastalertBackend(CaseFoldingLuceneBackend, ElastalertBackend):
        """ElastAlert's rule around soar's query_string (search-semantics |re, soar's refusals)."""

        state_defaults: ClassVar[dict[str, str]] = {"index": index}

        def finalize_query(self, rule: Any, query: Any, index_: int, state: Any, output_format: str) -> Any:
            text = ElastalertBackend.finalize_query(self, rule, query, index_, state, output_format)
            doc = yaml.safe_load(text)
            doc.setdefault("alert", ["debug"])  # ElastAlert2 refuses a rule without one
            return yaml.safe_dump(doc, sort_keys=False)

    # pySigma looks its correlation converters up in the concrete class's own __dict__
    for name, value in vars(ElastalertBackend).items():
        if name.startswith("convert_correlation_") and name.endswith("_rule"):
            setattr(SoarElastalertBackend, name, value)
    return SoarElastalertBackend(pipeline), "default"


def _esql(pipeline: Any, index: str) -> tuple[Any, str]:
    from sigma.backends.elasticsearch import ESQLBackend  # type: ignore[attr-defined]

    from soar.detection._backends import SearchSemantics

    class SoarESQLBackend(SearchSemantics, ESQLBackend):
        """ES|QL with Sigma's meaning: case-insensitive strings, search-semantics regexps."""

        eq_expression: ClassVar[str] = "to_lower({field})=={value}"
        startswith_expression: ClassVar[str] = "starts_with(to_lower({field}), {value})"
        endswith_expression: ClassVar[str] = "ends_with(to_lower({field}), {value})"
        wildcard_match_expression: ClassVar[str] = "to_lower({field}) like {value}"
        case_sensitive_match_expression: ClassVar[str] = "{field}=={value}"
        case_sensitive_startswith_expression: ClassVar[str] = "starts_with({field}, {value})"
        case_sensitive_endswith_expression: ClassVar[str] = "ends_with({field}, {value})"
        case_sensitive_contains_expression: ClassVar[str] = "{field} like {value}"
        state_defaults: ClassVar[dict[str, str]] = {**ESQLBackend.state_defaults, "index": index}

        def convert_condition_field_eq_val_str(self, cond: Any, state: Any) -> Any:
            lowered = copy.copy(cond)
            lowered.value = cond.value.lower()
            return super().convert_condition_field_eq_val_str(lowered, state)

    return SoarESQLBackend(pipeline), "default"


def _eql(pipeline: Any, index: str) -> tuple[Any, str]:
    from sigma.backends.elasticsearch import EqlBackend  # type: ignore[attr-defined]

    from soar.detection._backends import SearchSemantics

    class SoarEqlBackend(SearchSemantics, EqlBackend):
        """EQL with Sigma's meaning: ``:`` is case-insensitive already; regexps search; keywords refused."""

        re_expression: ClassVar[str] = '{field} regex "{regex}"'  # |re is case-sensitive (regex~ is not)

        def convert_condition_val_str(self, cond: Any, state: Any) -> Any:
            raise SigmaFeatureNotSupportedByBackendError(
                "EQL has no full-text search: a keyword (a value without a field) would be a bare string, "
                "which EQL does not read as a condition"
            )

        convert_condition_val_num = convert_condition_val_str
        convert_condition_val_re = convert_condition_val_str

    return SoarEqlBackend(pipeline), "default"


EXPORTS: dict[str, Callable[[Any, str], tuple[Any, str]]] = {
    "kibana-ndjson": _kibana,
    "elastalert": _elastalert,
    "esql": _esql,
    "eql": _eql,
}


def building_blocks(rules: Sequence[Rule]) -> set[str]:
    """Ids of the rules a correlation among ``rules`` uses without generating them (Sigma's ``generate: false``)."""
    by_id = {key: rule for rule in rules for key in (rule.id, rule.name) if key}
    out: set[str] = set()
    for rule in rules:
        if rule.kind == "correlation" and not (rule.data.get("correlation") or {}).get("generate"):
            out.update(by_id[ref].id for ref in rule.references if ref in by_id)
    return out


def _correlation(backend: Any, output: str, rule: Rule, rules: Sequence[Rule]) -> list[Any]:
    """A correlation through pySigma's own correlation support, with fresh copies of the rules it reaches."""
    reached = RuleSet(rules=list(rules)).reached(rule)
    return list(backend.convert(SigmaCollection([_fresh(rule), *(_fresh(r) for r in reached)]), output))


class NotExportable(ContentError):
    """A valid rule the export format cannot express (the rule is fine; the target tool is not)."""


KIBANA_MAX_GROUP_BY = 3  # a Kibana threshold rule groups by at most three fields
THRESHOLD_NOTE = (
    "Exported by soar from a Sigma {type} correlation over {minutes:g} min. Kibana counts over each run's "
    "look-back (fixed windows), not a sliding window: a burst split across two runs can be missed, which "
    "soar's own evaluation does not."
)


def kibana_threshold(backend: Any, rule: Rule, rules: Sequence[Rule], compiler: Compiler) -> dict[str, Any]:
    """An ``event_count`` / ``value_count`` correlation as a Kibana threshold rule (``>=`` only, no aliases).

    The base rules' queries are OR-ed; the group-by becomes ``threshold.field`` and a
    ``value_count`` field its ``cardinality``; the rule runs every timespan over the last timespan.
    """

    def refuse(why: str, *key: str) -> NotExportable:
        where = rule.error("", "correlation", *key).source
        return NotExportable(f"not exported as kibana-ndjson: {why}", where)

    kind = (rule.data.get("correlation") or {}).get("type")
    if kind not in ("event_count", "value_count"):
        raise refuse(f"a {kind} correlation has no Kibana threshold equivalent (soar runs it)", "type")
    try:
        spec = compiler.compile(rule, RuleSet(rules=list(rules))).correlation
    except ContentError as exc:  # a base rule at fault: this correlation is not exported either
        raise ContentError(f"not exported: {exc}", rule.error("", "correlation", "rules").source) from exc
    assert spec is not None
    if spec.rule_fields or any(r.correlation is not None for r in spec.rules):
        raise refuse("Kibana threshold rules have no aliases and no chained correlations (soar runs it)")
    if spec.op not in ("gte", "gt"):
        raise refuse(
            f"Kibana threshold rules only count 'at least'; the condition is {spec.op} (soar runs it)", "condition"
        )
    if len(spec.group_by) > KIBANA_MAX_GROUP_BY:
        raise refuse(
            f"Kibana groups by at most {KIBANA_MAX_GROUP_BY} fields, the rule by {len(spec.group_by)}", "group-by"
        )
    least = int(spec.count) + 1 if spec.op == "gt" else int(-(-spec.count // 1))
    query = " OR ".join(f"({r.query})" for r in spec.rules) if len(spec.rules) > 1 else str(spec.rules[0].query)
    item: dict[str, Any] = backend.finalize_query_siem_rule_ndjson(rule.sigma, query, 0, None)
    threshold: dict[str, Any] = {"field": list(spec.group_by), "value": least}
    if spec.type == "value_count":
        threshold.update(value=1, cardinality=[{"field": spec.field, "value": least}])
    item.update(
        type="threshold",
        threshold=threshold,
        interval=f"{spec.timespan}s",
        **{"from": f"now-{spec.timespan}s"},
        note=THRESHOLD_NOTE.format(type=spec.type, minutes=spec.timespan / 60),
    )
    return item


def export_rules(
    rules: Sequence[Rule], fmt: str, pipelines: Sequence[str] = ("ecs_linux",), index: str = "logs-*"
) -> tuple[str, list[ContentError]]:
    """The export text for ``rules`` (NDJSON lines, YAML documents or one query per line) and the rules that failed.

    A correlation's building blocks are what ``generate: false`` makes them: Kibana rules with
    ``building_block_type`` (no alerts of their own); for ElastAlert, part of the correlation's
    rule (pySigma converts ``event_count`` and ``value_count`` to ``frequency`` and
    ``metric_aggregation``) and not exported alone.
    """
    use_shipped_attack_data()  # the Kibana export maps ATT&CK tags to names
    backend, output = EXPORTS[fmt](resolve_pipelines(pipelines), index)
    blocks = building_blocks(rules)
    compiler: Compiler | None = None
    searched = Compiler("elasticsearch", pipelines)  # what soar itself refuses, every export refuses
    chunks: list[str] = []
    errors: list[ContentError] = []
    for rule in rules:
        if fmt == "elastalert" and rule.id in blocks:
            continue
        try:
            if rule.kind == "rule":
                fresh = _fresh(rule)
                assert isinstance(fresh, SigmaRule)
                produced = backend.convert_rule(fresh, output)
                try:  # the target expressed it; would soar's own search mean the same?
                    searched.compile(rule)
                except ContentError as exc:
                    raise NotExportable(f"not exported as {fmt}: {exc.message}", exc.source) from exc
            elif fmt == "elastalert":
                produced = _correlation(backend, output, rule, rules)
            elif fmt == "kibana-ndjson":
                if compiler is None:  # built once, for the correlations: the export's own case-folding backend
                    compiler = Compiler("lucene", pipelines)
                    compiler.backend = backend
                produced = [kibana_threshold(backend, rule, rules, compiler)]
            else:
                where = rule.error("", "correlation").source
                errors.append(NotExportable(f"correlation rules are not exported as {fmt} (soar runs them)", where))
                continue
        except ContentError as exc:  # ours: what the format cannot express, or the rule at fault
            if str(exc) not in map(str, errors):  # a broken base rule fails each correlation using it: say it once
                errors.append(exc)
            continue
        except (SigmaError, NotImplementedError) as exc:
            error = sigma_error(exc, rule.path, rule.positions)
            unsupported = isinstance(exc, SigmaFeatureNotSupportedByBackendError | NotImplementedError)
            if unsupported or rule.kind == "correlation":
                error = NotExportable(f"not exported as {fmt}: {error.message}", error.source)
            errors.append(error)
            continue
        for item in produced:
            if isinstance(item, dict) and fmt == "kibana-ndjson" and rule.id in blocks:
                item = {**item, "building_block_type": "default"}
            chunks.append(json.dumps(item, sort_keys=True) if isinstance(item, dict) else str(item))
    joiner = "\n---\n" if fmt == "elastalert" else "\n"
    return joiner.join(chunks) + ("\n" if chunks else ""), errors
