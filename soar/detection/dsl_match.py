"""The compiled query DSL evaluated in process: does this event match this Elasticsearch query, as an
index mapped with the official ECS mappings would answer.

The scheduler's fetch path (:mod:`soar.scheduler.fetch`) reads each cycle's events of an index once and
matches every rule against them here instead of sending one search clause per rule. It evaluates
exactly the clauses :mod:`soar.detection._dsl` writes (and the exception clauses of
:mod:`soar.scheduler.query`); anything else is :class:`Unsupported`, and the rule stays on the search path.

Elasticsearch's meaning, per clause, on the ECS mappings as the integ-test server holds them (``wildcard``
fields are ``keyword`` there, ``match_only_text`` is ``text``, :data:`soar.detection._ecs.OPEN_MODULES_SUBSTITUTES`):

- keyword fields index each string whole, numbers and booleans as their JSON text, and nothing longer than
  the field's ``ignore_above`` (1,024 characters on most ECS keywords and on fields outside ECS): such a value
  matches no query, not even ``exists`` (``compile_query(..., ignore_above=False)`` drops that limit: the
  scheduler judges such values with Sigma's meaning, :mod:`soar.scheduler.overlong`);
  ``term``/``terms``/``prefix``/``wildcard`` compare the whole value,
  ``case_insensitive`` folding ASCII letters only; ``regexp`` is a Lucene regular expression over the whole
  value (run by RE2, linear in the value; ``.`` matches a newline in Lucene);
- numeric fields compare numbers (a string of digits in the event is the number Elasticsearch coerces);
  ``ip`` fields compare addresses, a ``term`` with a CIDR matches the network; ``boolean`` takes
  ``true``/``false`` or their text; ``date`` compares epoch milliseconds;
- text fields (``message``) are searched by their words (:func:`soar.detection.embedded.words`, the standard
  analyser): ``match_phrase`` finds the words of the phrase, in order, within one value;
- ``bool``: ``filter``/``must`` all, ``must_not`` none, ``should`` at least ``minimum_should_match`` (by
  default one when the bool has only ``should`` clauses, none otherwise, as Elasticsearch reads it).

The differential tests (tests/integration/scheduler/test_fetch_path.py) require the fetch path to give
exactly the alerts the search path gives on the same ECS-mapped index; tests/unit/scheduler/test_dsl_match.py
compares this evaluator with the oracle on generated rules.
"""

from __future__ import annotations

import ipaddress
import itertools
import json
import re
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from datetime import UTC, datetime
from functools import cache
from typing import Any, NamedTuple

from soar.detection._ecs import NUMERIC_TYPES, STRING_TYPES, TEXT_TYPES, events_index_mappings, field_type
from soar.detection.embedded import address, ascii_lower, words

Flat = Mapping[str, Sequence[Any]]  # an event: dotted field name -> its values (lists flattened, nulls left out)
Predicate = Callable[[Flat], bool]
DEFAULT_IGNORE_ABOVE = 1024  # strings_as_keyword, the dynamic template of fields outside ECS
# Whether the predicate being compiled drops keyword values longer than their field's ignore_above, as
# Elasticsearch's index does (True), or sees every value, as Sigma means (False: soar.scheduler.overlong)
_IGNORE_ABOVE: ContextVar[bool] = ContextVar("ignore_above", default=True)


class Unsupported(ValueError):
    """A clause this evaluator does not define: the rule is searched by Elasticsearch instead."""


class FlatEvent(dict[str, list[Any]]):
    """A flattened event, with the results its evaluation shares between rules (``memo``).

    Rules compiled by one pipeline repeat the same clauses (a log source's conditions, the same field
    folded to lower case): each is evaluated once per event, whichever rule asks first.
    """

    __slots__ = ("memo",)

    def __init__(self) -> None:
        super().__init__()
        self.memo: dict[Any, Any] = {}


def flat_event(event: Mapping[str, Any]) -> FlatEvent:
    """Every leaf of a (nested, dotted or mixed) event under its dotted name, as Elasticsearch flattens it."""
    out = FlatEvent()

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, Mapping):
            for key, value in node.items():
                walk(value, f"{prefix}{key}.")
        elif isinstance(node, list):
            for item in node:
                walk(item, prefix)
        elif node is not None:
            out.setdefault(prefix[:-1], []).append(node)

    walk(event, "")
    return out


@cache
def _ignore_above() -> dict[str, int]:
    """Dotted keyword field -> its ``ignore_above`` in the ECS mappings (absent: no limit)."""
    out: dict[str, int] = {}

    def walk(props: Mapping[str, Any], prefix: str) -> None:
        for name, spec in props.items():
            if "properties" in spec:
                walk(spec["properties"], f"{prefix}{name}.")
            elif "ignore_above" in spec:
                out[f"{prefix}{name}"] = int(spec["ignore_above"])

    walk(events_index_mappings()["properties"], "")
    return out


def _limit(name: str) -> int | None:
    if not _IGNORE_ABOVE.get():
        return None
    if name in _ignore_above():
        return _ignore_above()[name]
    from soar.detection._ecs import ecs_field_types

    return None if name in ecs_field_types() else DEFAULT_IGNORE_ABOVE


def _keyword(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value if isinstance(value, str) else None


def _keywords(name: str) -> Callable[[Flat], list[str]]:
    """The terms a keyword field indexes for an event."""
    limit = _limit(name)

    def terms(event: Flat) -> list[str]:
        out = []
        for v in event.get(name, ()):
            text = _keyword(v)
            if text is not None and (limit is None or len(text) <= limit):
                out.append(text)
        return out

    return terms


_INTEGER = re.compile(r"\s*-?[0-9]+(\.[0-9]*)?\s*")


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and _INTEGER.fullmatch(value):
        return float(value)
    return None


def _epoch_ms(value: Any) -> int | None:
    """A date as Elasticsearch stores it: milliseconds (sub-millisecond digits dropped)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    if not isinstance(value, str):
        return None
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    delta = dt - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def _wildcard_regex(pattern: str) -> str:
    """A Lucene ``wildcard`` value (``*``, ``?``, ``\\`` escaping) as a Python regex over the whole value."""
    out: list[str] = []
    chars = iter(pattern)
    for char in chars:
        if char == "\\":
            out.append(re.escape(next(chars, "\\")))
        elif char == "*":
            out.append(".*")
        elif char == "?":
            out.append(".")
        else:
            out.append(re.escape(char))
    return "".join(out)


@cache
def _python_regex(pattern: str, fold: bool) -> re.Pattern[str]:
    return re.compile(pattern, re.DOTALL)


def _lucene_regexp(pattern: str) -> Callable[[str], bool]:
    """A Lucene regexp (anchored; ``.`` any code point) run by RE2 in time linear in the value."""
    from soar.detection import _regex

    try:
        program = _regex.compiled(f"(?s:{pattern})")
    except Exception as exc:  # re2.error: a construct RE2 cannot run: Elasticsearch searches the rule instead
        raise Unsupported(f"regexp {pattern!r}: {exc}") from exc

    def run(text: str) -> bool:
        try:
            return program.fullmatch(text) is not None
        except UnicodeEncodeError:
            return program.fullmatch(text.encode("utf-8", "replace").decode("utf-8")) is not None

    return run


def _spec(body: Any, clause: str) -> tuple[str, Any, dict[str, Any]]:
    """(field, value, options) of a one-field clause written ``{f: v}`` or ``{f: {value: v, ...}}``."""
    if not isinstance(body, Mapping) or len(body) != 1:
        raise Unsupported(f"{clause}: expected one field")
    name, spec = next(iter(body.items()))
    if isinstance(spec, Mapping):
        options = dict(spec)
        if "value" not in options:
            raise Unsupported(f"{clause} on {name}: no value")
        value = options.pop("value")
        if set(options) - {"case_insensitive", "flags", "boost", "rewrite", "max_determinized_states"}:
            raise Unsupported(f"{clause} on {name}: options {sorted(options)}")
        return str(name), value, options
    return str(name), spec, {}


def _any(values: Callable[[Flat], list[Any]], test: Callable[[Any], bool]) -> Predicate:
    return lambda event: any(test(v) for v in values(event))


def _lowered(name: str) -> Callable[[Flat], list[str]]:
    """The field's indexed terms with ASCII letters folded, computed once per event."""
    values = _keywords(name)
    key = ("lower", name, _IGNORE_ABOVE.get())

    def lowered(event: Flat) -> list[str]:
        memo = getattr(event, "memo", None)
        if memo is None:
            return [ascii_lower(v) for v in values(event)]
        found: list[str] | None = memo.get(key)
        if found is None:
            found = memo[key] = [ascii_lower(v) for v in values(event)]
        return found

    return lowered


def _string_test(name: str, kind: str, value: Any, fold: bool) -> Predicate:
    """``term``/``prefix``/``wildcard``/``regexp`` on a keyword field: ``kind`` names which."""
    values = _lowered(name) if fold else _keywords(name)
    text = _keyword(value)
    if text is None:
        raise Unsupported(f"{kind} on {name}: value {value!r}")
    if fold:
        text = ascii_lower(text)
    if kind == "term":
        return _any(values, lambda v: v == text)
    if kind == "prefix":
        return _any(values, lambda v: v.startswith(text))
    if kind == "wildcard":
        regex = _python_regex(_wildcard_regex(text), fold)
        return _any(values, lambda v: regex.fullmatch(v) is not None)
    run = _lucene_regexp(text)
    return _any(values, run)


def _term(name: str, value: Any, fold: bool) -> Predicate:
    kind = field_type(name)
    if kind in STRING_TYPES:
        return _string_test(name, "term", value, fold)
    if kind in NUMERIC_TYPES:
        want = _number(value)
        if want is None:
            raise Unsupported(f"term on {name}: not a number {value!r}")
        return lambda event: any(_number(v) == want for v in event.get(name, ()))
    if kind == "ip":
        if isinstance(value, str) and "/" in value:
            network = ipaddress.ip_network(value, strict=False)
            return lambda event: any((a := address(v)) is not None and a in network for v in event.get(name, ()))
        wanted = address(value)
        if wanted is None:
            raise Unsupported(f"term on {name}: not an address {value!r}")
        return lambda event: any(address(v) == wanted for v in event.get(name, ()))
    if kind == "boolean":
        flag = value if isinstance(value, bool) else {"true": True, "false": False}.get(str(value))
        if flag is None:
            raise Unsupported(f"term on {name}: not a boolean {value!r}")
        text = "true" if flag else "false"
        return lambda event: any(v is flag or v == text for v in event.get(name, ()))
    if kind == "date":
        ms = _epoch_ms(value)
        return lambda event: any(_epoch_ms(v) == ms for v in event.get(name, ()))
    raise Unsupported(f"term on {name} ({kind})")


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "gt": lambda a, b: a > b,
    "gte": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "lte": lambda a, b: a <= b,
}


def _range(name: str, bounds: Any) -> Predicate:
    if not isinstance(bounds, Mapping) or not bounds or set(bounds) - set(_COMPARE):
        raise Unsupported(f"range on {name}: {bounds!r}")
    kind = field_type(name)
    convert: Callable[[Any], Any]
    if kind in NUMERIC_TYPES:
        convert = _number
    elif kind == "date":
        convert = _epoch_ms
    elif kind in STRING_TYPES:
        convert = _keyword
    else:
        raise Unsupported(f"range on {name} ({kind})")
    tests = [(_COMPARE[op], convert(bound)) for op, bound in bounds.items()]
    if any(b is None for _, b in tests):
        raise Unsupported(f"range on {name}: {bounds!r}")
    values: Callable[[Flat], list[Any]] = _keywords(name) if kind in STRING_TYPES else (lambda e: list(e.get(name, ())))

    def test(event: Flat) -> bool:
        for v in values(event):
            have = convert(v)
            if have is not None and type(have) is type(tests[0][1]) and all(op(have, b) for op, b in tests):
                return True
        return False

    return test


def _exists(name: str) -> Predicate:
    if field_type(name) in STRING_TYPES:
        values = _keywords(name)
        return lambda event: bool(values(event))
    return lambda event: bool(event.get(name))


def _phrase(name: str, text: Any) -> Predicate:
    if field_type(name) not in TEXT_TYPES or not isinstance(text, str):
        raise Unsupported(f"match_phrase on {name} ({field_type(name)})")
    want = words(text)
    n = len(want)
    if not n:
        return lambda event: False

    def test(event: Flat) -> bool:
        for v in event.get(name, ()):
            if isinstance(v, str):
                have = words(v)
                if any(have[i : i + n] == want for i in range(len(have) - n + 1)):
                    return True
        return False

    return test


_BOOL_KEYS = frozenset({"filter", "must", "must_not", "should", "minimum_should_match", "_name"})


def _bool(body: Any) -> Predicate:
    if not isinstance(body, Mapping) or set(body) - _BOOL_KEYS:
        raise Unsupported(f"bool: {sorted(body) if isinstance(body, Mapping) else body!r}")

    def clauses(key: str) -> list[Predicate]:
        items = body.get(key) or []
        return [compile_query(c) for c in (items if isinstance(items, list) else [items])]

    required = clauses("filter") + clauses("must")
    excluded = clauses("must_not")
    optional = clauses("should")
    msm = body.get("minimum_should_match")
    if msm is None:
        need = 0 if (required or excluded) else 1
    elif isinstance(msm, int) and not isinstance(msm, bool):
        need = msm if msm >= 0 else max(0, len(optional) + msm)
    else:
        raise Unsupported(f"minimum_should_match {msm!r}")
    need = min(need, len(optional)) if optional else 0
    if not optional and body.get("should") == [] and msm is None and not required and not excluded:
        return lambda event: True  # an empty bool matches every document

    def test(event: Flat) -> bool:
        if not all(p(event) for p in required) or any(p(event) for p in excluded):
            return False
        if need == 0:
            return True
        hits = 0
        for p in optional:
            if p(event):
                hits += 1
                if hits >= need:
                    return True
        return False

    return test


_SHARED: dict[str, Predicate] = {}  # a bool clause's canonical JSON -> its (memoising) predicate
SHARED_LIMIT = 100_000
_SLOTS = itertools.count()  # memo keys, unique in the process


def _shared_bool(body: Any) -> Predicate:
    """A bool clause compiled once per process, its result memoised per event (rules repeat them)."""
    try:
        key = json.dumps([_IGNORE_ABOVE.get(), body], sort_keys=True, default=str)
    except (TypeError, ValueError):
        return _bool(body)
    found = _SHARED.get(key)
    if found is not None:
        return found
    inner = _bool(body)
    slot = next(_SLOTS)

    def shared(event: Flat) -> bool:
        memo = getattr(event, "memo", None)
        if memo is None:
            return inner(event)
        result: bool | None = memo.get(slot)
        if result is None:
            result = memo[slot] = inner(event)
        return result

    if len(_SHARED) < SHARED_LIMIT:
        _SHARED[key] = shared
    return shared


def compile_query(query: Any, *, ignore_above: bool | None = None) -> Predicate:
    """A predicate over a flattened event (:func:`flat_event`) with the query's meaning; Unsupported otherwise.

    ``ignore_above=False`` sees keyword values of any length (Sigma's meaning); by default a value longer
    than its field's ``ignore_above`` matches nothing, as on Elasticsearch.
    """
    if ignore_above is None:
        return _compile(query)
    token = _IGNORE_ABOVE.set(ignore_above)
    try:
        return _compile(query)
    finally:
        _IGNORE_ABOVE.reset(token)


def _compile(query: Any) -> Predicate:
    if not isinstance(query, Mapping) or len(query) != 1:
        raise Unsupported(f"not one clause: {query!r}"[:200])
    kind, body = next(iter(query.items()))
    if kind == "bool":
        return _shared_bool(body)
    if kind == "match_all":
        return lambda event: True
    if kind == "match_none":
        return lambda event: False
    if kind == "exists":
        if not isinstance(body, Mapping) or not isinstance(body.get("field"), str):
            raise Unsupported(f"exists: {body!r}")
        return _exists(body["field"])
    if kind == "terms":
        if not isinstance(body, Mapping) or len(body) != 1:
            raise Unsupported(f"terms: {body!r}")
        name, values = next(iter(body.items()))
        if not isinstance(values, list):
            raise Unsupported(f"terms on {name}: {values!r}")
        tests = [_term(str(name), v, False) for v in values]
        return lambda event: any(t(event) for t in tests)
    if kind == "range":
        if not isinstance(body, Mapping) or len(body) != 1:
            raise Unsupported(f"range: {body!r}")
        name, bounds = next(iter(body.items()))
        return _range(str(name), bounds)
    if kind == "match_phrase":
        name, text, _ = _spec(body, kind)
        return _phrase(name, text)
    if kind in ("term", "prefix", "wildcard", "regexp"):
        name, value, options = _spec(body, kind)
        fold = bool(options.get("case_insensitive"))
        if kind == "regexp" and (fold or options.get("flags", "ALL") not in ("ALL", "NONE")):
            raise Unsupported(f"regexp on {name}: options {options}")
        if kind == "term":
            return _term(name, value, fold)
        if field_type(name) not in STRING_TYPES:
            raise Unsupported(f"{kind} on {name} ({field_type(name)})")
        return _string_test(name, kind, value, fold)
    raise Unsupported(f"query {kind!r}")


def matches(query: Mapping[str, Any], event: Mapping[str, Any], *, ignore_above: bool = True) -> bool:
    """Does ``event`` (as stored in ``_source``) match ``query`` on an ECS-mapped index?"""
    return compile_query(query, ignore_above=ignore_above)(flat_event(event))


# -- anchors: which rules an event can match at all ----------------------------------------------------------


class Anchor(NamedTuple):
    """What every match needs: the keyword field has ``value`` (ASCII case folded) as one of its values, or,
    ``within``, inside one of them (a ``wildcard`` or ``prefix`` names such a literal)."""

    field: str
    value: str
    within: bool = False


_GENERIC = ("event.", "data_stream.", "ecs.", "agent.", "host.os.")
MIN_LITERAL = 3  # a wildcard's literal shorter than this is inside too many values to anchor on


def _anchor_cost(anchors: frozenset[Anchor]) -> int:
    """How many events such anchors are likely to let through: a log source's fields let most through; a
    literal inside a value is looked for rather than looked up, so a whole value is preferred to it."""
    return sum(100 if a.field.startswith(_GENERIC) else 2 if a.within else 1 for a in anchors)


def _longest_literal(pattern: str) -> str:
    """The longest run of a Lucene ``wildcard`` value without ``*`` or ``?`` (``\\`` escapes one character)."""
    runs, run = [], ""
    chars = iter(pattern)
    for char in chars:
        if char in "*?":
            runs.append(run)
            run = ""
        else:
            run += next(chars, "\\") if char == "\\" else char
    runs.append(run)
    return max(runs, key=len)


def anchors(query: Any) -> frozenset[Anchor] | None:
    """A necessary condition of ``query``: the event matches only if one of its keyword fields holds (ASCII
    case folded) one of these values, or one of these literals inside a value; None when the query has no such
    condition.

    Exact: an event with none of them cannot match (a ``term`` is true only on a value it equals, a
    ``wildcard`` or ``prefix`` only on a value holding each of its literals, folded or not — folding ASCII
    letters keeps a string's length and positions —, and ``bool`` keeps only what every match needs), so a
    fetch may skip evaluating the rule on it.
    """
    if not isinstance(query, Mapping) or len(query) != 1:
        return None
    kind, body = next(iter(query.items()))
    if kind in ("term", "terms") and isinstance(body, Mapping) and len(body) == 1:
        name, spec = next(iter(body.items()))
        if field_type(str(name)) not in STRING_TYPES:
            return None
        if kind == "term":
            values = [spec.get("value") if isinstance(spec, Mapping) else spec]
        else:
            values = spec if isinstance(spec, list) else []
        texts = [_keyword(v) for v in values]
        if not texts or any(t is None for t in texts):
            return None
        return frozenset(Anchor(str(name), ascii_lower(t)) for t in texts if t is not None)
    if kind in ("wildcard", "prefix") and isinstance(body, Mapping) and len(body) == 1:
        name, spec = next(iter(body.items()))
        value = spec.get("value") if isinstance(spec, Mapping) else spec
        if field_type(str(name)) not in STRING_TYPES or not isinstance(value, str):
            return None
        literal = value if kind == "prefix" else _longest_literal(value)
        if len(literal) < MIN_LITERAL:
            return None
        return frozenset({Anchor(str(name), ascii_lower(literal), within=True)})  # in the value, folded or not
    if kind != "bool" or not isinstance(body, Mapping):
        return None
    options: list[frozenset[Anchor]] = []
    for key in ("filter", "must"):
        items = body.get(key) or []
        for clause in items if isinstance(items, list) else [items]:
            found = anchors(clause)
            if found is not None:
                options.append(found)
    should = body.get("should") or []
    should = should if isinstance(should, list) else [should]
    msm = body.get("minimum_should_match")
    required = msm is None and not (body.get("filter") or body.get("must") or body.get("must_not"))
    if should and (required or (isinstance(msm, int) and not isinstance(msm, bool) and msm >= 1)):
        parts = [anchors(clause) for clause in should]
        if all(p is not None for p in parts):
            options.append(frozenset().union(*(p for p in parts if p is not None)))
    return min(options, key=_anchor_cost) if options else None


@cache
def _anchor_terms(name: str, ignore_above: bool) -> Callable[[Flat], list[str]]:
    token = _IGNORE_ABOVE.set(ignore_above)
    try:
        return _lowered(name)
    finally:
        _IGNORE_ABOVE.reset(token)


def anchored_values(event: Flat, name: str, *, ignore_above: bool = True) -> list[str]:
    """The event's folded terms of ``name``, as :func:`anchors` names them (memoised per event)."""
    return _anchor_terms(name, ignore_above)(event)


def anchor_holds(anchor: Anchor, event: Flat) -> bool:
    """Does the event meet this anchor (every value, whatever its length: a superset of what may match)?"""
    values = anchored_values(event, anchor.field, ignore_above=False)
    return any(anchor.value in v for v in values) if anchor.within else anchor.value in values
