"""Detection as code: Sigma rules loaded, checked, compiled for Elasticsearch or the embedded store, and tested.

The interface other parts of soar build on is documented in docs/detection-api.md; the
modules behind it are private. :mod:`soar.detection.embedded` (the SQLite event store) and
:mod:`soar.detection.elastic` (Elasticsearch searches) are the two I/O edges.
"""

from __future__ import annotations

from soar.detection._attack import use_shipped_attack_data
from soar.detection._compile import (
    CompileCache,
    CompiledRule,
    Compiler,
    CorrelationSpec,
    compile_rule,
    compile_rules,
)
from soar.detection._convert import ConvertResult, convert_paths
from soar.detection._correlate import CorrelationEvent, CorrelationMatch, evaluate_correlation
from soar.detection._coverage import coverage
from soar.detection._exports import EXPORTS, export_rules
from soar.detection._fixtures import (
    RuleTestResult,
    load_fixtures,
    match_events,
    read_events_file,
    run_fixture_tests,
)
from soar.detection._loading import Rule, RuleSet, load_rules
from soar.detection._validate import check_rules
from soar.detection.pipelines import DEFAULT_PIPELINES, available_pipelines, resolve_pipelines

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
