"""Alternatives on one keyword field, searched together: the clause forms the DSL compiler writes."""

from __future__ import annotations

import re
from typing import Any

from sigma.types import SigmaString

from soar.detection._dsl import MAX_REGEXP_LENGTH, merge_alternatives, regexp_literal, string_clause


def clauses(field: str, *values: str, case_insensitive: bool = True) -> list[dict[str, Any]]:
    return [string_clause(field, SigmaString(v), case_insensitive) for v in values]


def test_a_literal_folds_ascii_letters_only_and_escapes_every_other_ascii_character() -> None:
    assert regexp_literal("Ab") == "[aA][bB]"
    assert regexp_literal("a+b") == r"[aA]\+[bB]"
    assert regexp_literal("x.y") == r"[xX]\.[yY]"
    assert regexp_literal("[x]") == r"\[[xX]\]"
    assert regexp_literal('@#~<>&"') == r"\@\#\~\<\>\&\""
    assert regexp_literal("a\\b c") == r"[aA]\\[bB]\ [cC]"
    assert regexp_literal("/tmp/*?") == r"\/[tT][mM][pP]\/\*\?"
    # Digits are not escaped (\d would be a class); non-ASCII letters match themselves only, as with
    # case_insensitive term queries (a regexp's own case_insensitive folds É/é and k/K (Kelvin sign)).
    assert regexp_literal("0x42") == "0[xX]42"
    assert regexp_literal("Éks") == "É[kK][sS]"


def test_values_without_letters_are_one_terms_clause() -> None:
    values = clauses("file.path", "/1", "/2/", "-", "+3")
    assert all(c == {"term": {"file.path": c["term"]["file.path"]}} for c in values)  # no case_insensitive
    assert merge_alternatives(values) == [{"terms": {"file.path": ["/1", "/2/", "-", "+3"]}}]


def test_lower_case_values_of_a_lower_case_ecs_field_are_one_terms_clause() -> None:
    merged = merge_alternatives(clauses("event.category", "process", "file", "network"))
    assert merged == [{"terms": {"event.category": ["process", "file", "network"]}}]


def test_case_insensitive_values_of_one_shape_are_one_regexp_per_field_and_shape() -> None:
    values = [
        *clauses("process.executable", "*/sshd", "/usr/bin/*", "*/Su", "/sbin/*", "*tmp*", "*a*b*", "/bin/sh"),
        *clauses("process.name", "Bash", "42", "sh"),
    ]
    assert merge_alternatives(values) == [
        {"regexp": {"process.executable": {"value": r".*(\/[sS][sS][hH][dD]|\/[sS][uU])", "flags": "NONE"}}},
        {
            "regexp": {
                "process.executable": {
                    "value": r"(\/[uU][sS][rR]\/[bB][iI][nN]\/|\/[sS][bB][iI][nN]\/).*",
                    "flags": "NONE",
                }
            }
        },
        {"wildcard": {"process.executable": {"value": "*tmp*", "case_insensitive": True}}},  # alone in its shape
        {"wildcard": {"process.executable": {"value": "*a*b*", "case_insensitive": True}}},  # inner wildcard
        {"term": {"process.executable": {"value": "/bin/sh", "case_insensitive": True}}},
        {"regexp": {"process.name": {"value": "([bB][aA][sS][hH]|[sS][hH])", "flags": "NONE"}}},
        {"term": {"process.name": "42"}},
    ]


def test_contains_values_are_one_regexp_and_question_marks_keep_their_clause() -> None:
    merged = merge_alternatives(clauses("process.title", "*curl *", "*| sh*", "*wget?*"))
    assert merged == [
        {"regexp": {"process.title": {"value": r".*([cC][uU][rR][lL]\ |\|\ [sS][hH]).*", "flags": "NONE"}}},
        {"wildcard": {"process.title": {"value": "*wget?*", "case_insensitive": True}}},
    ]


def test_wildcard_typed_fields_and_cased_patterns_keep_one_clause_per_value() -> None:
    # ECS maps command lines as `wildcard`, which approximates a regexp by ngrams that [aA] classes defeat.
    command_lines = clauses("process.command_line", "*curl *", "*wget *")
    assert merge_alternatives(command_lines) == command_lines
    cased = clauses("process.executable", "*/Sshd", "*/Su", case_insensitive=False)
    assert merge_alternatives(cased) == cased
    # |cased exact values are exact terms: one `terms` (case-sensitive, as each term was).
    exact = clauses("process.name", "Bash", "SH", case_insensitive=False)
    assert merge_alternatives(exact) == [{"terms": {"process.name": ["Bash", "SH"]}}]


def test_a_long_list_is_cut_below_the_regexp_length_limit_and_keeps_every_value() -> None:
    names = [f"/opt/Tool{n:03d}/bin" for n in range(120)]
    merged = merge_alternatives(clauses("process.executable", *names))
    assert len(merged) > 1
    found = []
    for clause in merged:
        if "term" in clause:  # a value left alone in the last chunk keeps its own clause
            found.append(regexp_literal(clause["term"]["process.executable"]["value"]))
            continue
        value = clause["regexp"]["process.executable"]["value"]
        assert len(value) <= MAX_REGEXP_LENGTH
        found.extend(value[1:-1].split("|"))
    assert sorted(found) == sorted(regexp_literal(n) for n in names)


def test_every_merged_regexp_matches_what_its_values_match() -> None:
    """Python's re reads these Lucene patterns alike (classes, escapes, .*): a local check of the translation."""
    values = ["a+b", "x.y", "[x]", "@a", "#b", "~c", "<d", '"e', "A&B", "a\\b", "Mixed Case"]
    for pattern, probe in (("{}", "{}"), ("{}*", "{}tail"), ("*{}", "head{}"), ("*{}*", "h{}t")):
        merged = merge_alternatives(clauses("user.name", *(pattern.format(v) for v in values)))
        (regexp,) = merged
        compiled = re.compile(regexp["regexp"]["user.name"]["value"], re.DOTALL)
        for v in values:
            assert compiled.fullmatch(probe.format(v.swapcase()))
        for near in ("axb", "xzy", "x", "a b", "Éb"):
            assert not compiled.fullmatch(probe.format(near)) or any(near.lower() == v.lower() for v in values)
