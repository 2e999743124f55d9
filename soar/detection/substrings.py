"""Which of many fixed strings occur in a text, in one pass over the text (Aho–Corasick).

The fetch path judges an event only by the rules it could match (:mod:`soar.scheduler.fetch`); a rule whose
condition is a ``contains`` (a wildcard ``*literal*``) names a literal every match holds. Testing thousands of
such literals one by one per event costs as much as evaluating the rules; this automaton finds every literal in
a value in time linear in the value (plus the matches), however many literals there are. Built once per rule set.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable


class Substrings:
    """An automaton over ``literals``; :meth:`found` gives the indices of those occurring in a text."""

    def __init__(self, literals: Iterable[str]) -> None:
        self.literals = list(literals)
        self._goto: list[dict[str, int]] = [{}]
        self._out: list[frozenset[int]] = [frozenset()]
        for n, literal in enumerate(self.literals):
            if not literal:
                raise ValueError("an empty literal occurs everywhere: anchor on something else")
            state = 0
            for char in literal:
                nxt = self._goto[state].get(char)
                if nxt is None:
                    nxt = len(self._goto)
                    self._goto[state][char] = nxt
                    self._goto.append({})
                    self._out.append(frozenset())
                state = nxt
            self._out[state] = self._out[state] | {n}
        self._fail = [0] * len(self._goto)
        queue = deque(self._goto[0].values())
        while queue:  # breadth first: a state's failure link points at a shallower state, already complete
            state = queue.popleft()
            for char, nxt in self._goto[state].items():
                queue.append(nxt)
                fall = self._fail[state]
                while fall and char not in self._goto[fall]:
                    fall = self._fail[fall]
                target = self._goto[fall].get(char, 0)
                self._fail[nxt] = target if target != nxt else 0
                self._out[nxt] = self._out[nxt] | self._out[self._fail[nxt]]

    def found(self, text: str) -> set[int]:
        """Indices (into ``literals``) of the literals occurring in ``text``."""
        goto, fail, out = self._goto, self._fail, self._out
        hits: set[int] = set()
        state = 0
        for char in text:
            while state and char not in goto[state]:
                state = fail[state]
            state = goto[state].get(char, 0)
            if out[state]:
                hits |= out[state]
        return hits
