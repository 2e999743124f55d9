"""Substrings finds exactly the literals a text holds, as ``literal in text`` would, overlaps and prefixes included."""

from __future__ import annotations

import random

import pytest

from soar.detection.substrings import Substrings


def test_every_occurring_literal_is_found_and_no_other() -> None:
    rng = random.Random(5)
    alphabet = "ab-/ é"  # few letters: many overlaps, shared prefixes and suffixes, one non-ASCII
    for _ in range(200):
        literals = list({"".join(rng.choice(alphabet) for _ in range(rng.randint(1, 5))) for _ in range(30)})
        automaton = Substrings(literals)
        for _ in range(20):
            text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
            assert automaton.found(text) == {n for n, lit in enumerate(literals) if lit in text}, (literals, text)


def test_named_cases() -> None:
    automaton = Substrings(["he", "she", "his", "hers", "bench-proc-1 ", "bench-proc-12 "])
    assert automaton.found("ushers") == {0, 1, 3}
    assert automaton.found("/bin/sh -c bench-proc-12 x") == {5}  # "bench-proc-1 " is not inside
    assert automaton.found("") == set()
    with pytest.raises(ValueError, match="empty literal"):
        Substrings(["x", ""])
