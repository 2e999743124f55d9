"""Detection as code: Sigma rules loaded, checked, compiled for Elasticsearch or the embedded store, and tested.

The interface other parts of soar build on is documented in docs/detection-api.md; the
modules behind it are private. :mod:`soar.detection.embedded` (the SQLite event store) and
:mod:`soar.detection.elastic` (Elasticsearch searches) are the two I/O edges.

Names are imported on first use: a warm ``soar rules convert`` (all in the compile cache)
never imports pySigma.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from soar.detection._attack import use_shipped_attack_data
    from soar.detection._compile import Compiler, compile_rule, compile_rules
    from soar.detection._compiled import CompileCache, CompiledRule, CorrelationSpec
    from soar.detection._convert import ConvertResult, convert_paths
    from soar.detection._correlate import CorrelationEvent, CorrelationMatch, evaluate_correlation
    from soar.detection._coverage import coverage
    from soar.detection._events_file import read_events_file
    from soar.detection._exports import EXPORTS, export_rules
    from soar.detection._fixtures import (
        RuleTestResult,
        load_fixtures,
        match_events,
        run_fixture_tests,
    )
    from soar.detection._loading import Rule, RuleSet, load_rules
    from soar.detection._validate import check_rules
    from soar.detection.pipelines import DEFAULT_PIPELINES, available_pipelines, resolve_pipelines

_WHERE: dict[str, str] = {
    "use_shipped_attack_data": "_attack",
    "CompileCache": "_compiled",
    "CompiledRule": "_compiled",
    "CorrelationSpec": "_compiled",
    "Compiler": "_compile",
    "compile_rule": "_compile",
    "compile_rules": "_compile",
    "ConvertResult": "_convert",
    "convert_paths": "_convert",
    "CorrelationEvent": "_correlate",
    "CorrelationMatch": "_correlate",
    "evaluate_correlation": "_correlate",
    "coverage": "_coverage",
    "EXPORTS": "_exports",
    "export_rules": "_exports",
    "RuleTestResult": "_fixtures",
    "load_fixtures": "_fixtures",
    "match_events": "_fixtures",
    "read_events_file": "_events_file",
    "run_fixture_tests": "_fixtures",
    "Rule": "_loading",
    "RuleSet": "_loading",
    "load_rules": "_loading",
    "check_rules": "_validate",
    "DEFAULT_PIPELINES": "pipelines",
    "available_pipelines": "pipelines",
    "resolve_pipelines": "pipelines",
}

__all__ = [
    "DEFAULT_PIPELINES",
    "EXPORTS",
    "CompileCache",
    "CompiledRule",
    "Compiler",
    "ConvertResult",
    "CorrelationEvent",
    "CorrelationMatch",
    "CorrelationSpec",
    "Rule",
    "RuleSet",
    "RuleTestResult",
    "available_pipelines",
    "check_rules",
    "compile_rule",
    "compile_rules",
    "convert_paths",
    "coverage",
    "evaluate_correlation",
    "export_rules",
    "load_fixtures",
    "load_rules",
    "match_events",
    "read_events_file",
    "resolve_pipelines",
    "run_fixture_tests",
    "use_shipped_attack_data",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'soar.detection' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"soar.detection.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
