"""The compile cache: keyed by content, pipelines, target and versions; dependencies of correlations tracked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from soar.detection import CompileCache, compile_rules, convert_paths, load_rules
from tests.unit.detection.helpers import rule_yaml, write

BASE = rule_yaml(
    {"sel": {"event.outcome": "failure"}, "condition": "sel"},
    rule_id="66666666-0000-4000-8000-000000000001",
    logsource={"product": "linux", "service": "sshd"},
    extra={"name": "c_ssh_failure"},
)
CORRELATION = """\
title: Brute force
id: 66666666-0000-4000-8000-000000000002
status: test
correlation:
  type: event_count
  rules: [c_ssh_failure]
  group-by: [SourceIp]
  timespan: 5m
  condition: {gte: 5}
level: high
"""


def _pack(tmp_path: Path) -> Path:
    rules = tmp_path / "rules"
    write(rules / "base.yml", BASE)
    write(rules / "corr.yml", CORRELATION)
    write(rules / "other.yml", rule_yaml({"sel": {"Image": "/bin/sh"}, "condition": "sel"}))
    return rules


def test_warm_run_uses_the_cache_and_gives_the_same_result(tmp_path: Path) -> None:
    rules = _pack(tmp_path)
    cache = CompileCache(tmp_path / "cache")
    cold = convert_paths([rules], cache=cache)
    warm = convert_paths([rules], cache=cache)
    assert (cold.cache_hits, warm.cache_hits) == (0, 3)
    assert warm.compiled == cold.compiled
    plain = [c for c in cold.compiled if c.correlation is None]
    assert len(plain) == 2 and all(c.dsl and c.query is None for c in plain)  # incl. the base rule the correlation uses
    assert cold.errors == warm.errors == []


def test_a_changed_file_misses_and_a_changed_base_invalidates_its_correlation(tmp_path: Path) -> None:
    rules = _pack(tmp_path)
    cache = CompileCache(tmp_path / "cache")
    convert_paths([rules], cache=cache)
    write(rules / "other.yml", rule_yaml({"sel": {"Image": "/bin/zsh"}, "condition": "sel"}))
    again = convert_paths([rules], cache=cache)
    assert again.cache_hits == 2
    assert any("zsh" in json.dumps(c.dsl) for c in again.compiled)
    write(rules / "base.yml", BASE.replace("event.outcome: failure", "event.outcome: FAILURE"))
    again = convert_paths([rules], cache=cache)
    assert again.cache_hits == 1  # base and the correlation that reads it are recompiled
    (corr,) = [c for c in again.compiled if c.correlation]
    assert corr.correlation is not None and "FAILURE" in json.dumps(corr.correlation.rules[0].dsl)


def test_embedded_bulk_conversion_keeps_base_rules(tmp_path: Path) -> None:
    result = convert_paths([_pack(tmp_path)], target="embedded")
    assert result.errors == []
    assert all(c.sql and "event.outcome" in c.sql for c in result.compiled if c.rule_id.endswith("0001"))


def test_pipeline_and_target_are_part_of_the_key(tmp_path: Path) -> None:
    rules = _pack(tmp_path)
    cache = CompileCache(tmp_path / "cache")
    convert_paths([rules], cache=cache)
    assert convert_paths([rules], target="embedded", cache=cache).cache_hits == 0
    custom = write(tmp_path / "p.yml", "name: p\ntransformations: []\n")
    assert convert_paths([rules], pipelines=("ecs_linux", str(custom)), cache=cache).cache_hits == 0


def test_rule_level_cache_in_compile_rules(tmp_path: Path) -> None:
    ruleset = load_rules([_pack(tmp_path)])
    cache = CompileCache(tmp_path / "cache")
    first, errors = compile_rules(ruleset, "embedded", cache=cache)
    assert errors == []
    second, _ = compile_rules(ruleset, "embedded", cache=cache)
    assert second == first
    assert cache.get(cache.key(ruleset.rules[2].content_hash, "ecs_linux:x", "embedded")) is None


DUP = "66666666-0000-4000-8000-0000000000dd"


def test_a_duplicate_id_across_files_cached_apart_is_still_an_error(tmp_path: Path) -> None:
    text = rule_yaml({"sel": {"Image": "/bin/sh"}, "condition": "sel"}, rule_id=DUP)
    first, second = write(tmp_path / "a.yml", text), write(tmp_path / "b.yml", text.replace("/bin/sh", "/bin/ksh"))
    cache = CompileCache(tmp_path / "cache")
    assert convert_paths([first], cache=cache).errors == convert_paths([second], cache=cache).errors == []
    for paths, cache_hits in (([first, second], 2), ([second], 1), ([first, second], 2)):
        result = convert_paths(paths, cache=cache)
        assert result.cache_hits == cache_hits
        if len(paths) == 1:
            assert result.errors == []
            continue
        line = text.splitlines().index(f"id: {DUP}") + 1
        assert [str(e) for e in result.errors] == [
            f"{second}:{line}:1: duplicate rule id {DUP} (first defined at {first}:{line}:1)"
        ]
        assert [c.path for c in result.compiled] == [str(first)]  # left out, as loading leaves it out
    # One file compiled in this run, the other cached: the loading reports it, once.
    write(tmp_path / "a.yml", text + "\n")
    result = convert_paths([first, second], cache=cache)
    assert result.cache_hits == 1
    assert len(result.errors) == 1 and "duplicate rule id" in str(result.errors[0])


def test_library_versions_are_part_of_the_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from soar.detection import _compiled

    rules = _pack(tmp_path)
    convert_paths([rules], cache=CompileCache(tmp_path / "cache"))
    assert "pysigma-backend-elasticsearch=" in _compiled.backend_versions()
    assert "pysigma-pipeline-sysmon=" in _compiled.backend_versions()  # upstream pipelines by name
    assert convert_paths([rules], cache=CompileCache(tmp_path / "cache")).cache_hits == 3
    monkeypatch.setattr(_compiled, "backend_versions", lambda: "pysigma-backend-elasticsearch=99.0")
    assert convert_paths([rules], cache=CompileCache(tmp_path / "cache")).cache_hits == 0


def test_a_refused_rule_is_cached_with_its_refusal(tmp_path: Path) -> None:
    rules = _pack(tmp_path)
    refused = write(rules / "refused.yml", rule_yaml({"sel": {"CommandLine|re": r"(a)\1"}, "condition": "sel"}))
    broken = write(rules / "broken.yml", "title: [unclosed\n")
    cache = CompileCache(tmp_path / "cache")
    cold = convert_paths([rules], cache=cache)
    warm = convert_paths([rules], cache=cache)
    assert (cold.cache_hits, warm.cache_hits) == (0, 5)  # the refused and the broken file too: nothing is parsed
    assert [str(e) for e in warm.errors] == [str(e) for e in cold.errors]
    assert [e.source.path for e in warm.errors if e.source] == [broken, refused]  # in file order, at their lines
    assert "back-references" in warm.errors[1].message
    assert warm.compiled == cold.compiled
    moved = tmp_path / "moved"
    rules.rename(moved)  # the key is the content: the refusal is told at the file's new place
    again = convert_paths([moved], cache=cache)
    assert again.cache_hits == 4  # all but the correlation, whose base rule is named by its old path
    assert [e.source.path for e in again.errors if e.source] == [moved / "broken.yml", moved / "refused.yml"]


def test_a_file_whose_error_depends_on_another_file_is_not_cached(tmp_path: Path) -> None:
    rules = _pack(tmp_path)
    (rules / "base.yml").unlink()  # the correlation's base rule is gone: its error is about another file
    cache = CompileCache(tmp_path / "cache")
    cold = convert_paths([rules], cache=cache)
    assert cold.errors and str(cold.errors[0]).startswith(str(rules / "corr.yml"))
    warm = convert_paths([rules], cache=cache)
    assert warm.cache_hits == 1  # other.yml; corr.yml is compiled again
    assert [str(e) for e in warm.errors] == [str(e) for e in cold.errors]


def test_compile_rules_caches_a_refusal_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rules = tmp_path / "rules"
    path = write(rules / "refused.yml", rule_yaml({"sel": {"CommandLine|re": r"(a)\1"}, "condition": "sel"}))
    cache = CompileCache(tmp_path / "cache")
    _, cold = compile_rules(load_rules([rules]), "embedded", cache=cache)
    from soar.detection._compile import Compiler

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("compiled again")

    monkeypatch.setattr(Compiler, "compile", never)
    _, warm = compile_rules(load_rules([rules]), "embedded", cache=cache)
    assert [str(e) for e in warm] == [str(e) for e in cold]
    assert str(warm[0]).startswith(f"{path}:") and "back-references" in str(warm[0])
