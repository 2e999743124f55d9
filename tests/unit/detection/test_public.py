"""soar.detection's public surface is declared and importable (the other areas build on it)."""

from __future__ import annotations

import soar.detection


def test_public_surface() -> None:
    assert {
        "load_rules",
        "compile_rule",
        "compile_rules",
        "CompileCache",
        "CompiledRule",
        "CorrelationSpec",
        "evaluate_correlation",
        "run_fixture_tests",
        "match_events",
        "check_rules",
        "coverage",
        "export_rules",
    } <= set(soar.detection.__all__)
    for name in soar.detection.__all__:
        assert hasattr(soar.detection, name), name
