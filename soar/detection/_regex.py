"""``|re`` patterns: evaluated by RE2 on the embedded engine, bounded as Elasticsearch bounds them.

Python's ``re`` backtracks: ``^(a+)+$`` against 28 ``a`` and a ``!`` takes seconds, doubling
with each character, and the command line is written by the attacker. RE2 (Google's, through
the ``google-re2`` binding) runs in time linear in the text, like Lucene's automata on
Elasticsearch. A pattern RE2 cannot compile (a back-reference, a lookaround, a repetition over
1000) is refused at the rule's line, as is a pattern longer than Elasticsearch's
``index.max_regex_length`` (1000 by default, counted on the regexp sent: the pattern wrapped
in ``.*( … ).*`` for Sigma's search meaning).
"""

from __future__ import annotations

from bisect import bisect_left
from functools import lru_cache
from typing import Any

import re2

MAX_REGEX_LENGTH = 1000  # Elasticsearch's index.max_regex_length default


def _options() -> Any:
    options = re2.Options()
    options.log_errors = False  # the reason is reported at the rule's line, not printed by RE2
    return options


@lru_cache(maxsize=1024)
def compiled(pattern: str) -> Any:
    """The RE2 program of ``pattern``; ``re2.error`` when RE2 cannot run it."""
    return re2.compile(pattern, _options())


def refusal(pattern: str) -> str | None:
    """Why RE2 cannot run ``pattern`` (None when it can)."""
    try:
        compiled(pattern)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        return reason.decode("utf-8", "replace") if isinstance(reason, bytes) else str(reason)
    return None


def search(pattern: str, value: str) -> bool:
    """Does ``pattern`` occur in ``value`` (Sigma's search meaning), in time linear in ``value``."""
    try:
        return compiled(pattern).search(value) is not None
    except UnicodeEncodeError:  # a lone surrogate (JSON "\ud800"): RE2 reads UTF-8
        return compiled(pattern).search(value.encode("utf-8", "replace").decode("utf-8")) is not None


# Elasticsearch's ``max_determinized_states`` (10,000) bounds Lucene's determinization: it gives up when
# the subsets of NFA states it has built add up to ten times that (Lucene's "effort").
MAX_DETERMINIZED_STATES = 10_000
_EFFORT_LIMIT = MAX_DETERMINIZED_STATES * 10
_MAX_POSITIONS = 100_000  # repetitions expanded beyond this: refused without trying
_TOP = 0x10FFFF

_CATEGORIES = {  # as Lucene (and RE2) read them: ASCII
    "CATEGORY_DIGIT": [(48, 57)],
    "CATEGORY_WORD": [(48, 57), (65, 90), (95, 95), (97, 122)],
    "CATEGORY_SPACE": [(9, 13), (32, 32)],
}


def _complement(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out, low = [], 0
    for start, end in sorted(ranges):
        if start > low:
            out.append((low, start - 1))
        low = max(low, end + 1)
    if low <= _TOP:
        out.append((low, _TOP))
    return out


def _category(name: str) -> list[tuple[int, int]]:
    negated = name.startswith("CATEGORY_NOT_")
    ranges = _CATEGORIES.get(name.replace("CATEGORY_NOT_", "CATEGORY_"), [(0, _TOP)])
    return _complement(ranges) if negated else ranges


def _charset(op: str, av: Any) -> list[tuple[int, int]]:
    if op == "LITERAL":
        return [(av, av)]
    if op == "NOT_LITERAL":
        return _complement([(av, av)])
    if op == "ANY":  # Lucene's '.' is any code point, a newline too
        return [(0, _TOP)]
    if op == "RANGE":
        return [(av[0], av[1])]
    if op == "CATEGORY":
        return _category(str(av))
    if op == "IN":
        negate = bool(av) and str(av[0][0]) == "NEGATE"
        ranges = [r for sub_op, sub_av in av if str(sub_op) != "NEGATE" for r in _charset(str(sub_op), sub_av)]
        return _complement(ranges) if negate else ranges
    raise ValueError(op)


class _TooLarge(Exception):
    pass


class _Glushkov:
    """Positions (one per character class occurrence) and their follow sets, as bit masks."""

    def __init__(self) -> None:
        self.classes: list[list[tuple[int, int]]] = [[]]  # position 0: the start
        self.follow: list[int] = [0]

    def _link(self, last: int, first: int) -> None:
        while last:
            low = last & -last
            self.follow[low.bit_length() - 1] |= first
            last ^= low

    def build(self, items: Any) -> tuple[bool, int, int]:
        """(nullable, first, last) of a sequence of parsed items."""
        nullable, first, last = True, 0, 0
        for op, av in items:
            n2, f2, l2 = self.item(str(op), av)
            self._link(last, f2)
            first = first | f2 if nullable else first
            last = l2 | last if n2 else l2
            nullable = nullable and n2
        return nullable, first, last

    def item(self, op: str, av: Any) -> tuple[bool, int, int]:
        if op in ("LITERAL", "NOT_LITERAL", "ANY", "IN", "RANGE", "CATEGORY"):
            if len(self.classes) >= _MAX_POSITIONS:
                raise _TooLarge
            self.classes.append(_charset(op, av))
            self.follow.append(0)
            bit = 1 << (len(self.classes) - 1)
            return False, bit, bit
        if op == "SUBPATTERN":
            return self.build(av[3])
        if op == "BRANCH":
            parts = [self.build(branch) for branch in av[1]]
            return any(p[0] for p in parts), _or(p[1] for p in parts), _or(p[2] for p in parts)
        if op in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            return self.repeat(av[0], av[1], av[2])
        return True, 0, 0  # AT (an anchor): Lucene has none, it matches the empty string here

    def repeat(self, low: int, high: int, items: Any) -> tuple[bool, int, int]:
        """As Lucene's Operations.repeat: A{m,} is m copies then A*; A{m,n} is m copies then n-m optional
        copies, each entered only from the one before (A(A(A)?)?)?, never all at once)."""
        nullable, first, last = True, 0, 0
        for _ in range(low):
            n2, f2, l2 = self.build(items)
            self._link(last, f2)
            first = first | f2 if nullable else first
            last = l2 | last if n2 else l2
            nullable = nullable and n2
        if high > 100_000:  # MAXREPEAT: the star
            n2, f2, l2 = self.build(items)
            self._link(l2, f2)
            self._link(last, f2)
            return nullable, first | f2 if nullable else first, last | l2
        entry = last  # where the next optional copy is entered from
        reach_first = nullable  # the optional copy can begin the whole
        for _ in range(high - low):
            n2, f2, l2 = self.build(items)
            self._link(entry, f2)
            first = first | f2 if reach_first else first
            entry = l2 | entry if n2 else l2
            last |= l2
            reach_first = reach_first and n2
        return nullable, first, last


def _or(masks: Any) -> int:
    out = 0
    for mask in masks:
        out |= mask
    return out


@lru_cache(maxsize=1024)
def determinization_refusal(lucene_pattern: str) -> str | None:
    """Why Elasticsearch would refuse ``lucene_pattern`` (the regexp as sent) as too complex to determinize.

    Lucene turns the regexp into an automaton with one state per character class occurrence (and
    repetitions expanded), then determinizes it; this does the same subset construction, counting
    its effort as Lucene does, and stops at Lucene's limit.
    """
    import re._parser as sre_parser  # type: ignore[import-not-found]

    try:
        parsed = sre_parser.parse(lucene_pattern)
        automaton = _Glushkov()
        _, first, _ = automaton.build(parsed)
    except _TooLarge:
        return f"it expands to over {_MAX_POSITIONS} states"
    except Exception:
        return None
    automaton.follow[0] = first
    points = sorted({point for ranges in automaton.classes[1:] for s, e in ranges for point in (s, e + 1)})
    cells = [p for p in points if p <= _TOP] or [0]
    members = [0] * len(cells)  # per cell (interval from cells[i]): the positions whose class holds it
    for position, ranges in enumerate(automaton.classes[1:], start=1):
        for start, end in ranges:
            for i in range(bisect_left(cells, start), bisect_left(cells, end + 1)):
                members[i] |= 1 << position
    seen, todo, effort = {1}, [1], 0
    while todo:
        state = todo.pop()
        effort += state.bit_count()
        if effort >= _EFFORT_LIMIT:
            return (
                f"Elasticsearch would refuse it as too complex (determinizing its automaton needs more than "
                f"max_determinized_states {MAX_DETERMINIZED_STATES})"
            )
        reach = 0
        bits = state
        while bits:
            low = bits & -bits
            reach |= automaton.follow[low.bit_length() - 1]
            bits ^= low
        if not reach:
            continue
        for cell in members:
            target = reach & cell
            if target and target not in seen:
                seen.add(target)
                todo.append(target)
    return None
