"""Sigma to Elasticsearch query DSL that keeps Sigma's meaning on the mappings real shippers use.

A user's ``logs-*`` data streams are mapped by their integrations (ECS: case-sensitive
``keyword``, ``wildcard`` for command lines, ``match_only_text`` for ``message``, ``ip``,
``long``), not by soar. So case is decided per value, at query time, never by a template:

- a Sigma string (case-insensitive) is a ``term``, ``prefix`` or ``wildcard`` query with
  ``case_insensitive: true`` on a keyword-like field; ``|cased`` is the same query without it;
- alternatives of one ``OR`` on one ``keyword`` field are searched together (:func:`merge_alternatives`):
  exact values as one ``terms``, case-insensitive exact/prefix/suffix/contains values of one shape as one
  ``regexp`` whose letters are ``[aA]`` classes (the ASCII folding ``case_insensitive`` does: a regexp's own
  ``case_insensitive`` folds Unicode, ``k`` matching the Kelvin sign), one automaton instead of one per value;
- ``|re`` is a ``regexp`` query (case-sensitive, Sigma's search meaning: unanchored);
- a full-text field (``message``) and Sigma keywords (values without a field) are searched with
  ``match_phrase``: the words of the value, in order, whatever their case;
- ``ip`` fields take exact addresses and ``|cidr`` ranges as ``term``; numbers compare as numbers.

What a field's type cannot mean (a wildcard on an ``ip``, ``|cased`` on full text) is refused
for both engines before conversion (:mod:`soar.detection._typed`). pySigma stays the parser: this
is a :class:`sigma.conversion.base.Backend` whose condition methods return DSL clauses.
"""

from __future__ import annotations

from typing import Any, ClassVar

from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionNOT,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.conversion.base import Backend
from sigma.conversion.state import ConversionState
from sigma.exceptions import SigmaFeatureNotSupportedByBackendError
from sigma.types import SigmaString, SpecialChars

from soar.detection._backends import (
    KEYWORD_SEARCH_FIELD,
    check_cidr_field,
    no_field_references,
    portable_regexp,
    search_regex,
)
from soar.detection._ecs import NUMERIC_TYPES, TEXT_TYPES, field_type, written_in_lower_case

Clause = dict[str, Any]


def _bool(kind: str, clauses: list[Clause]) -> Clause:
    """``bool`` of ``kind`` over ``clauses``, flattening nested ones of the same kind.

    A ``should``-only bool needs no ``minimum_should_match``: Elasticsearch requires one clause by default.
    """
    flat: list[Clause] = []
    for clause in clauses:
        inner = clause.get("bool")
        if inner is not None and set(inner) <= {kind, "minimum_should_match"} and kind in inner:
            flat.extend(inner[kind])
        else:
            flat.append(clause)
    if len(flat) == 1 and kind != "must_not":
        return flat[0]
    if kind == "should":
        flat = merge_alternatives(flat)
        if len(flat) == 1:
            return flat[0]
    return {"bool": {kind: flat}}


def _escape_wildcard(text: str) -> str:
    return text.replace("\\", "\\\\").replace("*", "\\*").replace("?", "\\?")


def _parts(value: SigmaString) -> list[str | SpecialChars]:
    """The value as literal strings and wildcards (placeholders are refused by then)."""
    out: list[str | SpecialChars] = []
    for part in value.s:
        if isinstance(part, str | SpecialChars):
            out.append(part)
        else:
            raise SigmaFeatureNotSupportedByBackendError(f"placeholder %{part}% left unresolved in a value")
    return out


def _folds(text: str) -> bool:
    """Does ``text`` hold an ASCII letter (the only characters ``case_insensitive`` folds)?"""
    return any("a" <= c.lower() <= "z" for c in text)


def string_clause(field: str, value: SigmaString, case_insensitive: bool) -> Clause:
    """``term``, ``prefix`` or ``wildcard`` on a keyword-like field.

    ``case_insensitive`` only where it changes something: not for a value without ASCII letters, nor for a
    lower-case value of a field ECS defines in lower case (same matches, a fraction of the search cost).
    """
    parts = _parts(value)
    literal = "".join(p for p in parts if isinstance(p, str))
    if not _folds(literal) or written_in_lower_case(field, literal):
        case_insensitive = False
    flag = {"case_insensitive": True} if case_insensitive else {}
    if not any(isinstance(p, SpecialChars) for p in parts):
        text = "".join(p for p in parts if isinstance(p, str))
        return {"term": {field: {"value": text, **flag}}} if flag else {"term": {field: text}}
    head, last = parts[:-1], parts[-1]
    if last is SpecialChars.WILDCARD_MULTI and not any(isinstance(p, SpecialChars) for p in head):
        return {"prefix": {field: {"value": "".join(p for p in head if isinstance(p, str)), **flag}}}
    pattern = "".join(
        _escape_wildcard(p) if isinstance(p, str) else ("*" if p is SpecialChars.WILDCARD_MULTI else "?") for p in parts
    )
    return {"wildcard": {field: {"value": pattern, **flag}}}


# index.max_regex_length is 1,000 characters by default: a merged regexp is cut into chunks below it. A chunk
# this long of exact, prefix, suffix or contains alternatives stays within Lucene's default determinization
# effort (measured on Elasticsearch 9.5 with 2- to 40-character values).
MAX_REGEXP_LENGTH = 900
_SHAPES = {"exact": "({})", "prefix": "({}).*", "suffix": ".*({})", "contains": ".*({}).*"}


def regexp_literal(text: str) -> str:
    """A Lucene regexp matching ``text`` with its ASCII letters in either case and nothing else folded.

    ASCII letters become ``[aA]``; other ASCII characters that are not digits are escaped (a backslash makes
    any character literal: reserved ones ``. ? + * | { } [ ] ( ) " \\ # @ & < > ~`` and the rest alike);
    digits and non-ASCII characters stand for themselves (``\\d``, ``\\w``… would be classes).
    """
    out: list[str] = []
    for char in text:
        if not char.isascii() or char.isdigit():
            out.append(char)
        elif char.isalpha():
            out.append(f"[{char.lower()}{char.upper()}]")
        else:
            out.append("\\" + char)
    return "".join(out)


def _unescape_wildcard(pattern: str) -> list[str | None]:
    """A ``wildcard`` value as literal runs and ``None`` for ``*`` (``?`` left in as a run marker ``"?"``)."""
    out: list[str | None] = []
    run: list[str] = []
    chars = iter(pattern)
    for char in chars:
        if char == "\\":
            run.append(next(chars, ""))
        elif char in "*?":
            out.append("".join(run))
            out.append(None if char == "*" else "?")
            run = []
        else:
            run.append(char)
    out.append("".join(run))
    return out


def _alternative(clause: Clause) -> tuple[str, str, str] | None:
    """(field, shape, literal) of a case-insensitive term/prefix/wildcard a merged regexp can stand for."""
    if len(clause) != 1:
        return None
    kind, body = next(iter(clause.items()))
    if kind not in ("term", "prefix", "wildcard") or not isinstance(body, dict) or len(body) != 1:
        return None
    field, spec = next(iter(body.items()))
    if not isinstance(spec, dict) or set(spec) != {"value", "case_insensitive"} or spec["case_insensitive"] is not True:
        return None
    # A `wildcard`-typed field (ECS command lines) approximates a regexp by its ngrams, which [aA] classes defeat.
    if field_type(field) != "keyword" or not isinstance(spec["value"], str) or not spec["value"]:
        return None
    value: str = spec["value"]
    if kind != "wildcard":
        return field, "exact" if kind == "term" else "prefix", value
    parts = _unescape_wildcard(value)
    # Only *literal, *literal* (and literal*, literal): values with inner wildcards or ? keep their own clause.
    if len(parts) == 3 and parts[0] == "" and parts[1] is None and parts[2]:
        return field, "suffix", parts[2]
    if len(parts) == 5 and parts[0] == "" and parts[1] is None and parts[2] and parts[3] is None and parts[4] == "":
        return field, "contains", parts[2]
    return None


def _exact_term(clause: Clause) -> tuple[str, str] | None:
    """(field, value) of a plain (case-sensitive) term on a keyword field, which ``terms`` can stand for."""
    if len(clause) != 1 or "term" not in clause or len(clause["term"]) != 1:
        return None
    field, value = next(iter(clause["term"].items()))
    if isinstance(value, dict):
        if set(value) != {"value"}:
            return None
        value = value["value"]
    if not isinstance(value, str) or field_type(field) != "keyword":
        return None
    return field, value


def merge_alternatives(clauses: list[Clause]) -> list[Clause]:
    """The clauses of one ``should``, alternatives on the same keyword field searched together.

    Exact values (no letter to fold, or a lower-case value of a lower-case ECS field) of a field become one
    ``terms``; case-insensitive values of one shape (exact, prefix, suffix, contains) on a field one ``regexp``
    (cut below :data:`MAX_REGEXP_LENGTH`). Each merged clause takes the place of its first value; the others
    keep their order. Same documents as one clause per value, one term-dictionary walk instead of one per value.
    """
    regexps: dict[tuple[str, str], list[tuple[int, str]]] = {}
    terms: dict[str, list[tuple[int, str]]] = {}
    for i, clause in enumerate(clauses):
        alternative = _alternative(clause)
        if alternative is not None:
            field, shape, literal = alternative
            regexps.setdefault((field, shape), []).append((i, regexp_literal(literal)))
            continue
        exact = _exact_term(clause)
        if exact is not None:
            terms.setdefault(exact[0], []).append((i, exact[1]))
    placed: dict[int, list[Clause]] = {}
    merged: set[int] = set()
    for field, values in terms.items():
        if len(values) > 1:
            placed.setdefault(values[0][0], []).append({"terms": {field: [v for _, v in values]}})
            merged.update(i for i, _ in values)
    for (field, shape), patterns in regexps.items():
        if len(patterns) < 2:
            continue
        chunk: list[tuple[int, str]] = []
        chunks: list[list[tuple[int, str]]] = []
        for item in patterns:
            if chunk and len(_SHAPES[shape].format("|".join(p for _, p in [*chunk, item]))) > MAX_REGEXP_LENGTH:
                chunks.append(chunk)
                chunk = []
            chunk.append(item)
        chunks.append(chunk)
        for chunk in chunks:
            if len(chunk) == 1:
                continue  # a value alone keeps its own clause
            value = _SHAPES[shape].format("|".join(p for _, p in chunk))
            placed.setdefault(chunk[0][0], []).append({"regexp": {field: {"value": value, "flags": "NONE"}}})
            merged.update(i for i, _ in chunk)
    out: list[Clause] = []
    for i, clause in enumerate(clauses):
        out.extend(placed.get(i, []))
        if i not in merged:
            out.append(clause)
    return out


def phrase_clause(field: str, value: SigmaString) -> Clause:
    """The value's literal runs as phrases on a full-text field (each must occur; the analyser folds case)."""
    runs = [p.strip() for p in _parts(value) if isinstance(p, str) and p.strip()]
    if not runs:
        return {"exists": {"field": field}}
    return _bool("filter", [{"match_phrase": {field: run}} for run in runs])


class SoarElasticsearchDSLBackend(Backend):
    """Sigma conditions as Elasticsearch query DSL clauses (dicts), typed by the ECS mappings."""

    name: ClassVar[str] = "soar Elasticsearch query DSL"
    formats: ClassVar[dict[str, str]] = {"default": "Elasticsearch query DSL (the query clause)"}
    requires_pipeline: ClassVar[bool] = False

    # Correlations are evaluated by soar itself (soar.detection._correlate) over base-rule queries.
    def _no_correlation(self, *args: Any, **kwargs: Any) -> Any:
        raise SigmaFeatureNotSupportedByBackendError("correlations are evaluated by soar, not converted to DSL")

    convert_correlation_event_count_rule = _no_correlation
    convert_correlation_value_count_rule = _no_correlation
    convert_correlation_temporal_rule = _no_correlation
    convert_correlation_temporal_ordered_rule = _no_correlation
    convert_correlation_extended_temporal_rule = _no_correlation
    convert_correlation_extended_temporal_ordered_rule = _no_correlation
    convert_correlation_value_sum_rule = _no_correlation
    convert_correlation_value_avg_rule = _no_correlation
    convert_correlation_value_percentile_rule = _no_correlation
    convert_correlation_value_median_rule = _no_correlation

    def decide_convert_condition_as_in_expression(self, cond: Any, state: ConversionState) -> bool:
        return False  # `terms` has no case_insensitive: a list stays one clause per value

    def convert_condition_as_in_expression(self, cond: Any, state: ConversionState) -> Any:
        raise NotImplementedError  # never chosen (above)

    # -- structure ---------------------------------------------------------------------------------------------
    def convert_condition_or(self, cond: ConditionOR, state: ConversionState) -> Any:
        return _bool("should", [self.convert_condition(arg, state) for arg in cond.args])

    def convert_condition_and(self, cond: ConditionAND, state: ConversionState) -> Any:
        return _bool("filter", [self.convert_condition(arg, state) for arg in cond.args])

    def convert_condition_not(self, cond: ConditionNOT, state: ConversionState) -> Any:
        return {"bool": {"must_not": [self.convert_condition(cond.args[0], state)]}}

    # -- values on a field -------------------------------------------------------------------------------------
    def convert_condition_field_eq_val_str(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> Any:
        return self._string(cond.field, cond.value, case_insensitive=True)

    def convert_condition_field_eq_val_str_case_sensitive(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> Any:
        return self._string(cond.field, cond.value, case_insensitive=False)

    def _string(self, field: str, value: Any, case_insensitive: bool) -> Clause:
        kind = field_type(field)
        if kind in TEXT_TYPES:
            return phrase_clause(field, value)
        if kind in NUMERIC_TYPES or kind in ("ip", "boolean", "date"):
            # A typed field never holds a wildcard (refused before); the value is read as the type.
            return {"term": {field: str(value)}}
        return string_clause(field, value, case_insensitive)

    def convert_condition_field_eq_val_num(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> Any:
        number: Any = cond.value
        return {"term": {cond.field: number.number}}

    def convert_condition_field_eq_val_bool(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> Any:
        flag: Any = cond.value
        return {"term": {cond.field: bool(flag.boolean)}}

    def convert_condition_field_eq_val_re(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> Any:
        return {"regexp": {cond.field: {"value": search_regex(portable_regexp(cond.value)), "flags": "ALL"}}}

    def convert_condition_field_eq_val_cidr(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> Any:
        check_cidr_field(cond.field)
        cidr: Any = cond.value
        return {"term": {cond.field: str(cidr.network)}}

    def convert_condition_field_compare_op_val(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> Any:
        compare: Any = cond.value
        op = {"LT": "lt", "LTE": "lte", "GT": "gt", "GTE": "gte"}[compare.op.name]
        return {"range": {cond.field: {op: compare.number.number}}}

    def convert_condition_field_eq_val_null(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> Any:
        return {"bool": {"must_not": [{"exists": {"field": cond.field}}]}}

    def convert_condition_field_exists(self, cond: ConditionFieldEqualsValueExpression, state: ConversionState) -> Any:
        return {"exists": {"field": cond.field}}

    def convert_condition_field_not_exists(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> Any:
        return {"bool": {"must_not": [{"exists": {"field": cond.field}}]}}

    def convert_condition_field_eq_field(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> Any:
        raise no_field_references()

    def convert_condition_field_eq_val_timestamp_part(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> Any:
        raise SigmaFeatureNotSupportedByBackendError("timestamp part modifiers (|minute, |hour, …) are not supported")

    def convert_condition_field_eq_query_expr(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> Any:
        raise SigmaFeatureNotSupportedByBackendError("query expressions are not supported")

    # -- values without a field (Sigma keywords) ---------------------------------------------------------------
    def convert_condition_val_str(self, cond: ConditionValueExpression, state: ConversionState) -> Any:
        value: Any = cond.value
        return phrase_clause(KEYWORD_SEARCH_FIELD, value)

    def convert_condition_val_num(self, cond: ConditionValueExpression, state: ConversionState) -> Any:
        return phrase_clause(KEYWORD_SEARCH_FIELD, SigmaString(str(cond.value)))

    def convert_condition_val_re(self, cond: ConditionValueExpression, state: ConversionState) -> Any:
        raise SigmaFeatureNotSupportedByBackendError(
            "a regular expression without a field cannot be searched: the message is full text"
        )

    def convert_condition_query_expr(self, cond: ConditionValueExpression, state: ConversionState) -> Any:
        raise SigmaFeatureNotSupportedByBackendError("query expressions are not supported")
