"""Exports for people moving to or from other tools: Kibana detection rules, ElastAlert, ES|QL, EQL.

These are pySigma's own output formats run with soar's pipelines (so the strict field check
still applies). ES|QL and EQL are offered as files only: the open-modules Elasticsearch soar
tests against serves neither, and soar never runs them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from sigma.collection import SigmaCollection
from sigma.exceptions import SigmaError, SigmaFeatureNotSupportedByBackendError
from sigma.rule import SigmaRule

from soar.detection._attack import use_shipped_attack_data
from soar.detection._compile import _fresh
from soar.detection._loading import Rule, RuleSet, sigma_error
from soar.detection.pipelines import resolve_pipelines
from soar.errors import ContentError


def _kibana(pipeline: Any) -> tuple[Any, str]:
    from soar.detection._backends import SoarLuceneBackend

    return SoarLuceneBackend(pipeline), "siem_rule_ndjson"


def _elastalert(pipeline: Any) -> tuple[Any, str]:
    from sigma.backends.elasticsearch import ElastalertBackend  # type: ignore[attr-defined]

    return ElastalertBackend(pipeline), "default"


def _esql(pipeline: Any) -> tuple[Any, str]:
    from sigma.backends.elasticsearch import ESQLBackend  # type: ignore[attr-defined]

    return ESQLBackend(pipeline), "default"


def _eql(pipeline: Any) -> tuple[Any, str]:
    from sigma.backends.elasticsearch import EqlBackend  # type: ignore[attr-defined]

    return EqlBackend(pipeline), "default"


EXPORTS: dict[str, Callable[[Any], tuple[Any, str]]] = {
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


def export_rules(
    rules: Sequence[Rule], fmt: str, pipelines: Sequence[str] = ("ecs_linux",)
) -> tuple[str, list[ContentError]]:
    """The export text for ``rules`` (NDJSON lines, YAML documents or one query per line) and the rules that failed.

    A correlation's building blocks are what ``generate: false`` makes them: Kibana rules with
    ``building_block_type`` (no alerts of their own); for ElastAlert, part of the correlation's
    rule (pySigma converts ``event_count`` and ``value_count`` to ``frequency`` and
    ``metric_aggregation``) and not exported alone.
    """
    use_shipped_attack_data()  # the Kibana export maps ATT&CK tags to names
    backend, output = EXPORTS[fmt](resolve_pipelines(pipelines))
    blocks = building_blocks(rules)
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
            elif fmt == "elastalert":
                produced = _correlation(backend, output, rule, rules)
            else:
                where = rule.error("", "correlation").source
                errors.append(NotExportable(f"correlation rules are not exported as {fmt} (soar runs them)", where))
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
