"""``|re`` is bounded: RE2 on the embedded engine (no catastrophic backtracking), and what RE2 or
Elasticsearch cannot run is refused at the rule's line, the same on both engines.

Times are a generous guard (5 s), not a benchmark: before, ``^(a+)+$`` on 28 characters took 8 s
on the embedded engine and doubled with each character.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from soar.detection import compile_rule, load_rules
from soar.detection.embedded import EventStore
from soar.errors import ContentError
from tests.unit.detection.helpers import process_event, rule_yaml, write

GUARD = 5.0


def _rule(tmp_path: Path, pattern: str) -> Path:
    return write(tmp_path / "re.yml", rule_yaml({"sel": {"CommandLine|re": pattern}, "condition": "sel"}))


def _pattern_line(path: Path) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if "CommandLine|re" in line)


def test_nested_quantifiers_on_an_attacker_written_command_line_return_at_once(tmp_path: Path) -> None:
    path = _rule(tmp_path, "^(a+)+$")
    compiled = compile_rule(load_rules([path]).rules[0], target="embedded")
    events = [process_event("a" * n + "!") for n in (28, 40, 5000)] + [process_event("a" * 30)]
    with EventStore() as store:
        store.insert(events)
        start = time.perf_counter()
        found = store.search(compiled)
        assert time.perf_counter() - start < GUARD
    assert len(found) == 1  # only the all-"a" line matches


def test_a_regex_search_is_unanchored_and_keeps_its_meaning_on_re2(tmp_path: Path) -> None:
    compiled = compile_rule(load_rules([_rule(tmp_path, r"wget\s+http[s]?://\d+")]).rules[0], target="embedded")
    with EventStore() as store:
        store.insert([process_event("sh -c 'wget  http://10.0.0.1/x'"), process_event("wget ftp://x")])
        assert len(store.search(compiled)) == 1


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        (r"(a)\1", "back-references"),
        (r"(?=a)b", "groups with (?...)"),
        ("x{1001}", "cannot be compiled by RE2, which runs |re in linear time: invalid repetition size"),
        ("(?:ab", "groups with (?...)"),
        ("[z-a]", "cannot be compiled by RE2, which runs |re in linear time: invalid character class range"),
        ("a" * 995, "over Elasticsearch's index.max_regex_length of 1000"),
    ],
    ids=["backreference", "lookahead", "repetition", "unclosed", "bad-range", "too-long"],
)
@pytest.mark.parametrize("target", ["elasticsearch", "embedded"])
def test_a_regex_that_cannot_be_bounded_is_refused_at_its_line_on_both_engines(
    tmp_path: Path, pattern: str, reason: str, target: str
) -> None:
    path = _rule(tmp_path, pattern)
    ruleset = load_rules([path])
    if ruleset.errors:  # pySigma refuses some patterns itself when loading (Python's re cannot compile them)
        error = ruleset.errors[0]
    else:
        start = time.perf_counter()
        with pytest.raises(ContentError) as info:
            compile_rule(ruleset.rules[0], target=target)
        assert time.perf_counter() - start < GUARD
        error = info.value
        assert reason in error.message
    assert error.source is not None
    assert error.source.line == _pattern_line(path)


@pytest.mark.parametrize(
    ("pattern", "refused"),
    [
        ("x{300}", False),
        ("x{315}", True),  # 315 states whose subsets grow one by one: Lucene's effort passes 100,000
        ("a.{11}b", False),
        ("a.{12}b", True),  # 2**12 subsets of the positions after an 'a'
        ("(.{1,222})x", True),
        ("^(a+)+$", False),  # nested quantifiers are a small automaton: only backtracking made them costly
        (r"(\d{1,3}\.){3}\d{1,3}", False),
    ],
)
def test_a_regex_elasticsearch_cannot_determinize_is_refused_at_its_line(
    tmp_path: Path, pattern: str, refused: bool
) -> None:
    path = _rule(tmp_path, pattern)
    rule = load_rules([path]).rules[0]
    start = time.perf_counter()
    for target in ("elasticsearch", "embedded"):
        if not refused:
            compile_rule(rule, target=target)
            continue
        with pytest.raises(ContentError) as info:
            compile_rule(rule, target=target)
        assert "max_determinized_states 10000" in info.value.message
        assert info.value.source is not None and info.value.source.line == _pattern_line(path)
    assert time.perf_counter() - start < GUARD
