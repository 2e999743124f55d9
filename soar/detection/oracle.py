"""A reference evaluator of Sigma detection semantics over one event: does this rule match this event, and why.

Small and pure (no pySigma, no database): it reads a rule's ``detection`` mapping as the Sigma
specification defines it and evaluates it on one ECS event. The property tests compare the
embedded engine and Elasticsearch with it (tests/unit/detection/test_oracle_property.py); a user
can call :func:`explain` to see which search identifiers of a rule an event satisfies.

What it implements (Sigma specification, pySigma's reading where the text leaves a choice open):

- values: a map is the AND of its fields, a list of maps the OR of them; a list of values is their OR
  (``|all``: their AND); strings match the whole value, ``*`` any run and ``?`` one character, ``\\``
  escaping ``*``, ``?`` and itself (before any other character it is a literal backslash);
- modifiers ``contains``, ``startswith``, ``endswith``, ``all``, ``windash`` (a ``-`` or ``/`` between a
  non-word and a word character becomes any of ``- / – — ―``, per literal run, as pySigma does),
  ``base64``, ``base64offset`` (pySigma's three offsets), ``utf16le``/``wide``, ``utf16be`` (ASCII
  only), ``re`` with ``i``, ``m``, ``s`` (a search, not a full match; ``\\d``, ``\\w``, ``\\s`` are ASCII as in
  PCRE, RE2 and Lucene; ``.`` never matches a newline without ``s``; ``$`` is the end of the value), ``cidr``,
  ``exists``, ``cased``, ``lt``/``lte``/``gt``/``gte``, ``fieldref`` (equality with another field's
  value), ``expand`` with the placeholders given (an undefined placeholder is refused);
- ``null``: the field is absent or null; keyword searches (values without a field); conditions with
  ``and``, ``or``, ``not``, parentheses, ``1 of``/``any of``/``all of`` a name, a ``*`` pattern or
  ``them`` (``them`` leaves out identifiers starting with ``_``).

Where Sigma leaves the meaning to the backend, the oracle states soar's:

- string matching is case-insensitive by folding **ASCII letters only** (``É`` never matches ``é``):
  that is what Elasticsearch's ``case_insensitive`` term/prefix/wildcard queries do and what the
  embedded engine mirrors; ``|cased`` compares exactly;
- a multi-valued field (a list) matches when any element does; ``|all`` needs each value to match
  some element (not necessarily the same one), as separate clauses on Elasticsearch do;
- on a keyword field (ECS ``keyword``/``wildcard``, or a field outside ECS), a number or boolean in the
  event is matched as its text (``42`` as ``"42"``, ``true`` as ``"true"``), as Elasticsearch indexes it;
- on a numeric field (``long``, …), an integer written as text in the event is that number (Elasticsearch
  coerces it when indexing);
- on an ``ip`` field, values are addresses (``2001:DB8:0::1`` is ``2001:db8::1``; IPv4-mapped IPv6 is
  IPv4), as Elasticsearch stores them;
- elsewhere, a string without wildcards that is an integer matches that integer; a number matches the same
  number or its decimal text; wildcards and ``|re`` only ever match text; ``|lt`` and friends
  compare numbers as numbers and text as text (code point order);
- full-text fields (``message`` in ECS, ``match_only_text``) are searched by their words: each
  literal run of a value must occur as a phrase (Elasticsearch's ``match_phrase`` with the standard
  analyser, :func:`soar.detection.embedded.words`), and Sigma keywords are such phrases in ``message``.
"""

from __future__ import annotations

import base64
import ipaddress
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import product
from typing import Any

from soar.detection._ecs import NUMERIC_TYPES, STRING_TYPES, field_type
from soar.detection.embedded import address, ascii_lower, words

MULTI = "\x00*"  # a ``*`` wildcard in a parsed value (a string no event text holds)
SINGLE = "\x00?"  # a ``?`` wildcard
Part = str  # a literal run, or MULTI / SINGLE
Pattern = tuple[Part, ...]

WINDASH = re.compile(r"\B[-/]\b")
DASHES = ("-", "/", "\u2013", "\u2014", "\u2015")
FLAGS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL}
COMPARE = {
    "lt": lambda a, b: a < b,
    "lte": lambda a, b: a <= b,
    "gt": lambda a, b: a > b,
    "gte": lambda a, b: a >= b,
}
_INTEGER = re.compile(r"-?[0-9]+")


class OracleRefusal(ValueError):
    """The rule uses something the oracle does not define (an unknown modifier, an undefined placeholder, …)."""


def parse_value(text: str) -> Pattern:
    """A Sigma string as literal runs and wildcards, with Sigma's escapes (``\\*``, ``\\?``, ``\\\\``)."""
    parts: list[Part] = []
    run: list[str] = []
    chars = iter(text)
    for char in chars:
        if char == "\\":
            nxt = next(chars, None)
            if nxt is None:
                run.append("\\")
            elif nxt in "*?\\":
                run.append(nxt)
            else:
                run.extend(("\\", nxt))
        elif char in "*?":
            if run:
                parts.append("".join(run))
                run = []
            parts.append(MULTI if char == "*" else SINGLE)
        else:
            run.append(char)
    if run:
        parts.append("".join(run))
    return tuple(parts)


def _literal(pattern: Pattern) -> str:
    if any(p in (MULTI, SINGLE) for p in pattern):
        raise OracleRefusal("base64 encoding of a value with wildcards is not defined")
    return "".join(pattern)


@dataclass
class Value:
    """One value of a detection item after its modifiers: what an event value is compared with."""

    kind: str  # string, regex, cidr, exists, null, number, bool, compare, fieldref
    alternatives: tuple[Pattern, ...] = ()  # string: any of these patterns (windash, base64offset, expand)
    cased: bool = False
    regex: re.Pattern[str] | None = None
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None
    scalar: Any = None  # number, bool, exists flag, compare bound, referenced field
    op: str = ""


def _expand(pattern: Pattern, placeholders: Mapping[str, Sequence[str]]) -> list[Pattern]:
    out: list[list[Part]] = [[]]
    for part in pattern:
        if part in (MULTI, SINGLE):
            out = [[*o, part] for o in out]
            continue
        pieces = re.split(r"%(\w+)%", part)
        for i, piece in enumerate(pieces):
            if i % 2 == 0:
                if piece:
                    out = [[*o, piece] for o in out]
                continue
            if piece not in placeholders:
                raise OracleRefusal(f"placeholder %{piece}% is not defined")
            out = [o + list(parse_value(v)) for o in out for v in placeholders[piece]]
    return [tuple(_merge(o)) for o in out]


def _merge(parts: Sequence[Part]) -> list[Part]:
    out: list[Part] = []
    for part in parts:
        if out and part not in (MULTI, SINGLE) and out[-1] not in (MULTI, SINGLE):
            out[-1] += part
        elif part:
            out.append(part)
    return out


def _windash(pattern: Pattern) -> list[Pattern]:
    choices: list[list[Part]] = []
    for part in pattern:
        if part in (MULTI, SINGLE):
            choices.append([part])
            continue
        pieces = WINDASH.split(part)
        for i, piece in enumerate(pieces):
            if i:
                choices.append(list(DASHES))
            if piece:
                choices.append([piece])
    return [tuple(_merge(c)) for c in product(*choices)]


def _encode(text: str, codec: str) -> str:
    if not text.isascii():
        raise OracleRefusal(f"|{codec} is only defined for ASCII text")
    return text.encode("utf-16-le" if codec in ("utf16le", "wide") else "utf-16-be").decode("utf-8")


def _base64offset(text: str) -> list[Pattern]:
    data = text.encode("utf-8")
    starts, ends = (0, 2, 3), (None, -3, -2)
    return [(base64.b64encode(i * b" " + data)[starts[i] : ends[(len(data) + i) % 3]].decode(),) for i in range(3)]


def build_value(raw: Any, modifiers: Sequence[str], placeholders: Mapping[str, Sequence[str]]) -> Value:
    """A raw YAML value with its modifiers applied left to right (``all`` is handled by the caller)."""
    mods = [m for m in modifiers if m != "all"]
    if raw is None:
        return Value("null")
    if "exists" in mods:
        return Value("exists", scalar=bool(raw))
    if isinstance(raw, bool):
        return Value("bool", scalar=raw)
    for op in COMPARE:
        if op in mods:
            if not isinstance(raw, int | float):
                raise OracleRefusal(f"|{op} needs a number")
            return Value("compare", scalar=raw, op=op)
    if "fieldref" in mods:
        return Value("fieldref", scalar=str(raw))
    if "re" in mods:
        flags = 0
        for m in mods[mods.index("re") + 1 :]:
            if m not in FLAGS:
                raise OracleRefusal(f"|{m} after |re is not defined")
            flags |= FLAGS[m]
        pattern = str(raw) if flags & re.MULTILINE else _dollar_at_end(str(raw))
        return Value("regex", regex=re.compile(pattern, flags | re.ASCII))
    if "cidr" in mods:
        return Value("cidr", network=ipaddress.ip_network(str(raw), strict=False))
    if isinstance(raw, int | float) and not mods:
        return Value("number", scalar=raw)
    alternatives: list[Pattern] = [parse_value(str(raw))]
    cased = False
    for mod in mods:
        if mod == "expand":
            alternatives = [e for a in alternatives for e in _expand(a, placeholders)]
        elif mod == "contains":
            alternatives = [_around(a, start=True, end=True) for a in alternatives]
        elif mod == "startswith":
            alternatives = [_around(a, start=False, end=True) for a in alternatives]
        elif mod == "endswith":
            alternatives = [_around(a, start=True, end=False) for a in alternatives]
        elif mod == "windash":
            alternatives = [w for a in alternatives for w in _windash(a)]
        elif mod == "base64":
            alternatives = [(base64.b64encode(_literal(a).encode("utf-8")).decode(),) for a in alternatives]
        elif mod == "base64offset":
            alternatives = [o for a in alternatives for o in _base64offset(_literal(a))]
        elif mod in ("utf16le", "wide", "utf16be"):
            alternatives = [tuple(p if p in (MULTI, SINGLE) else _encode(p, mod) for p in a) for a in alternatives]
        elif mod == "cased":
            cased = True
        else:
            raise OracleRefusal(f"modifier |{mod} is not defined here")
    return Value("string", alternatives=tuple(alternatives), cased=cased)


def replace_unescaped(pattern: str, char: str, replacement: str) -> str:
    """``pattern`` with each ``char`` outside a character class and not escaped replaced by ``replacement``."""
    out: list[str] = []
    escaped = in_class = False
    for at, c in enumerate(pattern):
        if escaped:
            escaped = False
        elif c == "\\":
            escaped = True
        elif in_class:
            # ']' right after '[' or '[^' is a member of the class, not its end
            in_class = c != "]" or pattern[at - 1] == "[" or pattern[at - 2 : at] == "[^"
        elif c == "[":
            in_class = True
        elif c == char:
            out.append(replacement)
            continue
        out.append(c)
    return "".join(out)


def _dollar_at_end(pattern: str) -> str:
    """``$`` as the end of the value only (RE2, Lucene); Python's also matches before a final newline."""
    return replace_unescaped(pattern, "$", "\\Z")


def _around(pattern: Pattern, start: bool, end: bool) -> Pattern:
    out = list(pattern)
    if start and (not out or out[0] != MULTI):
        out.insert(0, MULTI)
    if end and (not out or out[-1] != MULTI):
        out.append(MULTI)
    return tuple(out)


def _pattern_regex(pattern: Pattern, cased: bool) -> re.Pattern[str]:
    body = "".join(
        ".*" if p == MULTI else "." if p == SINGLE else re.escape(p if cased else ascii_lower(p)) for p in pattern
    )
    return re.compile(body, re.DOTALL)


def lookup(event: Mapping[str, Any], name: str) -> list[Any]:
    """The values of a dotted field in a nested (or flat, or mixed) event; lists are flattened, nulls left out."""
    found: list[Any] = []

    def walk(node: Any, rest: str) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item, rest)
            return
        if not isinstance(node, Mapping):
            return
        for key, value in node.items():
            if key == rest:
                _collect(value, found)
            elif rest.startswith(f"{key}."):
                walk(value, rest[len(key) + 1 :])

    walk(event, name)
    return found


def _collect(value: Any, into: list[Any]) -> None:
    if isinstance(value, list):
        for item in value:
            _collect(item, into)
    elif value is not None and not isinstance(value, Mapping):
        into.append(value)


def _as_keyword(value: Any) -> Any:
    """A scalar as a keyword field indexes it: its JSON text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value) if isinstance(value, int | float) else value


def _phrase(text: str, phrase: str) -> bool:
    want, have = words(phrase), words(text)
    n = len(want)
    return bool(want) and any(have[i : i + n] == want for i in range(len(have) - n + 1))


@dataclass
class Oracle:
    """Sigma detection semantics for one event (see the module's docstring for every choice made)."""

    placeholders: Mapping[str, Sequence[str]] = field(default_factory=dict)
    full_text_fields: frozenset[str] = frozenset({"message"})
    keyword_field: str = "message"
    field_types: Callable[[str], str] = field_type  # ECS type of a field ("keyword" outside ECS)

    # -- values ------------------------------------------------------------------------------------------------
    def value_matches(self, value: Value, event: Mapping[str, Any], name: str) -> bool:
        """Does field ``name`` of ``event`` match ``value`` (any of its elements)?"""
        found = lookup(event, name)
        if value.kind == "null":
            return not found
        if value.kind == "exists":
            return bool(found) is bool(value.scalar)
        if value.kind == "fieldref":
            other = lookup(event, value.scalar)
            return any(a == b and type(a) is type(b) for a in found for b in other)
        if value.kind == "string" and name in self.full_text_fields:
            return any(self._full_text(value, v) for v in found)
        if self.field_types(name) in STRING_TYPES:
            found = [_as_keyword(v) for v in found]
        if self.field_types(name) in NUMERIC_TYPES:
            found = [int(v) if isinstance(v, str) and _INTEGER.fullmatch(v) else v for v in found]
        if self.field_types(name) == "ip" and value.kind in ("string", "cidr"):
            return any(self._address(value, v) for v in found)
        return any(self._one(value, v) for v in found)

    def _full_text(self, value: Value, text: Any) -> bool:
        if not isinstance(text, str):
            return False
        for pattern in value.alternatives:
            runs = [p.strip() for p in pattern if p not in (MULTI, SINGLE) and p.strip()]
            if all(_phrase(text, run) for run in runs):
                return True
        return False

    def _address(self, value: Value, have: Any) -> bool:
        found = address(have)
        if found is None:
            return False
        if value.kind == "cidr":
            return value.network is not None and found in value.network
        return any(address("".join(p)) == found for p in value.alternatives)

    def _one(self, value: Value, have: Any) -> bool:
        kind = value.kind
        if kind == "bool":
            text = "true" if value.scalar else "false"
            return (isinstance(have, bool) and have == value.scalar) or (isinstance(have, str) and have == text)
        if isinstance(have, bool):
            return False
        if kind == "number":
            if isinstance(have, int | float):
                return bool(have == value.scalar)
            return isinstance(have, str) and have == str(value.scalar)
        if kind == "compare":
            if isinstance(have, int | float):
                return bool(COMPARE[value.op](have, value.scalar))
            return isinstance(have, str) and bool(COMPARE[value.op](have, str(value.scalar)))
        if kind == "cidr":
            try:
                return value.network is not None and ipaddress.ip_address(str(have)) in value.network
            except ValueError:
                return False
        if kind == "regex":
            return isinstance(have, str) and value.regex is not None and value.regex.search(have) is not None
        return any(self._string(pattern, value.cased, have) for pattern in value.alternatives)

    def _string(self, pattern: Pattern, cased: bool, have: Any) -> bool:
        wild = any(p in (MULTI, SINGLE) for p in pattern)
        if isinstance(have, int | float):
            text = "".join(pattern)
            return not wild and not cased and _INTEGER.fullmatch(text) is not None and have == int(text)
        if not isinstance(have, str):
            return False
        return _pattern_regex(pattern, cased).fullmatch(have if cased else ascii_lower(have)) is not None

    # -- detection items ---------------------------------------------------------------------------------------
    def item_matches(self, key: str, raw: Any, event: Mapping[str, Any]) -> bool:
        """One ``field|modifiers: value(s)`` of a map."""
        name, *modifiers = key.split("|")
        if not name:
            raise OracleRefusal(f"'{key}': a keyword with modifiers is not defined here")
        raws = raw if isinstance(raw, list) else [raw]
        if not raws:
            return False
        results = (self.value_matches(build_value(r, modifiers, self.placeholders), event, name) for r in raws)
        return all(results) if "all" in modifiers else any(results)

    def keyword_matches(self, raw: Any, event: Mapping[str, Any]) -> bool:
        """A value without a field: its literal runs occur as phrases in the keyword field (``message``)."""
        value = build_value(raw, [], self.placeholders)
        if value.kind == "number":
            value = Value("string", alternatives=((str(raw),),))
        if value.kind != "string":
            raise OracleRefusal(f"keyword {raw!r}: only strings and numbers are searched without a field")
        return any(self._full_text(value, v) for v in lookup(event, self.keyword_field))

    def search_matches(self, search: Any, event: Mapping[str, Any]) -> bool:
        """One search identifier's definition: a map (AND), a list of maps (OR) or a list of keywords (OR)."""
        if isinstance(search, Mapping):
            return all(self.item_matches(str(k), v, event) for k, v in search.items())
        if isinstance(search, list):
            return any(
                self.search_matches(item, event) if isinstance(item, Mapping) else self.keyword_matches(item, event)
                for item in search
            )
        return self.keyword_matches(search, event)

    # -- conditions --------------------------------------------------------------------------------------------
    def matches(self, detection: Mapping[str, Any], event: Mapping[str, Any]) -> bool:
        """Does ``event`` match the rule whose ``detection`` mapping is given (every condition: OR)?"""
        conditions = detection.get("condition")
        if conditions is None:
            raise OracleRefusal("the detection has no condition")
        searches = {k: v for k, v in detection.items() if k not in ("condition", "timeframe")}
        memo: dict[str, bool] = {}

        def search(name: str) -> bool:
            if name not in memo:
                memo[name] = self.search_matches(searches[name], event)
            return memo[name]

        texts = conditions if isinstance(conditions, list) else [conditions]
        return any(_Condition(str(text), list(searches), search).parse() for text in texts)

    def explain(self, detection: Mapping[str, Any], event: Mapping[str, Any]) -> dict[str, bool]:
        """Each search identifier of the rule: does ``event`` satisfy it (and the rule as a whole: ``condition``)."""
        out = {
            str(k): self.search_matches(v, event) for k, v in detection.items() if k not in ("condition", "timeframe")
        }
        out["condition"] = self.matches(detection, event)
        return out


_TOKEN = re.compile(r"\s*(\(|\)|[^\s()]+)")


class _Condition:
    """Recursive descent over a Sigma condition: ``or`` < ``and`` < ``not`` < ``x of`` / name / parentheses."""

    def __init__(self, text: str, names: list[str], search: Callable[[str], bool]) -> None:
        self.tokens = [m.group(1) for m in _TOKEN.finditer(text)]
        self.pos = 0
        self.names = names
        self.search = search
        self.text = text

    def _peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def _take(self) -> str:
        token = self._peek()
        if token is None:
            raise OracleRefusal(f"condition '{self.text}' ends too early")
        self.pos += 1
        return token

    def parse(self) -> bool:
        result = self._or()
        if self._peek() is not None:
            raise OracleRefusal(f"condition '{self.text}': unexpected '{self._peek()}'")
        return result

    def _or(self) -> bool:
        return self._chain("or", self._and, any)

    def _and(self) -> bool:
        return self._chain("and", self._not, all)

    def _chain(self, word: str, operand: Callable[[], bool], combine: Callable[[list[bool]], bool]) -> bool:
        """``operand (word operand)*``: every operand is parsed (and evaluated), then combined."""
        results = [operand()]
        while (self._peek() or "").lower() == word:
            self._take()
            results.append(operand())
        return combine(results)

    def _not(self) -> bool:
        if (self._peek() or "").lower() == "not":
            self._take()
            return not self._not()
        return self._atom()

    def _atom(self) -> bool:
        token = self._take()
        if token == "(":  # noqa: S105 - a condition token, not a secret
            result = self._or()
            if self._take() != ")":
                raise OracleRefusal(f"condition '{self.text}': missing ')'")
            return result
        if token.lower() in ("1", "any", "all") and (self._peek() or "").lower() == "of":
            self._take()
            chosen = list(self._matching(self._take()))
            if not chosen:
                raise OracleRefusal(f"condition '{self.text}': no search identifier matches")
            results = [self.search(n) for n in chosen]
            return all(results) if token.lower() == "all" else any(results)
        if token not in self.names:
            raise OracleRefusal(f"condition '{self.text}': unknown search identifier '{token}'")
        return self.search(token)

    def _matching(self, pattern: str) -> Iterator[str]:
        if pattern == "them":
            yield from (n for n in self.names if not n.startswith("_"))
            return
        regex = re.compile("".join(".*" if c == "*" else re.escape(c) for c in pattern))
        for name in self.names:
            if regex.fullmatch(name) and (pattern.startswith("_") or not name.startswith("_")):
                yield name


def matches(
    detection: Mapping[str, Any], event: Mapping[str, Any], placeholders: Mapping[str, Sequence[str]] | None = None
) -> bool:
    """Does ``event`` match a rule's ``detection`` mapping (Sigma semantics, soar's choices: module docstring)?"""
    return Oracle(placeholders=placeholders or {}).matches(detection, event)


def explain(
    detection: Mapping[str, Any], event: Mapping[str, Any], placeholders: Mapping[str, Sequence[str]] | None = None
) -> dict[str, bool]:
    """Which search identifiers of ``detection`` ``event`` satisfies, and the condition's result."""
    return Oracle(placeholders=placeholders or {}).explain(detection, event)
