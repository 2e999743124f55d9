"""Exports for people moving to or from other tools: Kibana detection rules, ElastAlert, ES|QL, EQL.

These are pySigma's own output formats run with soar's pipelines (so the strict field check
still applies). ES|QL and EQL are offered as files only: the open-modules Elasticsearch soar
tests against serves neither, and soar never runs them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from sigma.exceptions import SigmaError
from sigma.rule import SigmaRule

from soar.detection._attack import use_shipped_attack_data
from soar.detection._compile import _fresh
from soar.detection._loading import Rule, sigma_error
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


def export_rules(
    rules: Sequence[Rule], fmt: str, pipelines: Sequence[str] = ("ecs_linux",)
) -> tuple[str, list[ContentError]]:
    """The export text for ``rules`` (NDJSON lines, YAML documents or one query per line) and the rules that failed."""
    use_shipped_attack_data()  # the Kibana export maps ATT&CK tags to names
    backend, output = EXPORTS[fmt](resolve_pipelines(pipelines))
    chunks: list[str] = []
    errors: list[ContentError] = []
    for rule in rules:
        if rule.kind != "rule":
            errors.append(rule.error(f"correlation rules are not exported as {fmt}", "correlation"))
            continue
        fresh = _fresh(rule)
        assert isinstance(fresh, SigmaRule)
        try:
            produced = backend.convert_rule(fresh, output)
        except SigmaError as exc:
            errors.append(sigma_error(exc, rule.path, rule.positions))
            continue
        for item in produced:
            chunks.append(json.dumps(item, sort_keys=True) if isinstance(item, dict) else str(item))
    joiner = "\n---\n" if fmt == "elastalert" else "\n"
    return joiner.join(chunks) + ("\n" if chunks else ""), errors
