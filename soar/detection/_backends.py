"""The pySigma text backends soar compiles to, extended where Sigma's semantics need it.

Elasticsearch searches use query DSL (:mod:`soar.detection._dsl`). The Lucene backend here is
for exports: pySigma's ``LuceneBackend`` with soar's refusals, and a regular expression keeping
Sigma's *search* meaning (Lucene anchors a regexp at both ends, so it is wrapped in ``.*``
unless it has ``^``/``$``).

Embedded: pySigma's SQLite backend over soar's event store (:mod:`soar.detection.embedded`),
where an event is one row and its fields a JSON object ``flat`` of dotted names. Every field
condition becomes ``EXISTS (SELECT 1 FROM json_each(flat, '$."field"') WHERE …)`` so that a
multi-valued field matches when any element does — as in Elasticsearch — and keyword
(full-text) searches, which upstream rejects, look at every string value.
"""

from __future__ import annotations

import copy
import re
from typing import Any, ClassVar

from sigma.backends.elasticsearch.elasticsearch_lucene import LuceneBackend
from sigma.backends.sqlite.sqlite import sqliteBackend
from sigma.conditions import ConditionFieldEqualsValueExpression, ConditionValueExpression
from sigma.conversion.state import ConversionState
from sigma.exceptions import SigmaFeatureNotSupportedByBackendError
from sigma.types import (
    SigmaCasedString,
    SigmaCIDRExpression,
    SigmaExists,
    SigmaExpansion,
    SigmaNull,
    SigmaRegularExpression,
    SigmaString,
    SpecialChars,
)

from soar.detection._ecs import NUMERIC_TYPES, STRING_TYPES, TEXT_TYPES, field_type, written_in_lower_case

_INTEGER = re.compile(r"-?[0-9]+")
KEYWORD_SEARCH_FIELD = "message"  # where Sigma keywords (values without a field) are searched, on both engines
VALUE = "value"  # the json_each column a field condition is evaluated on
TEXT = "type = 'text'"  # the json_each value is a string (not a number, boolean or null)
# A keyword field of Elasticsearch indexes a JSON number or boolean as its text (42 as "42", true as "true"):
# on such a field the embedded engine reads every element as text too, so wildcards, |re and ranges see it.
_AS_KEYWORD = (
    "CASE type WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' "
    "WHEN 'integer' THEN CAST(value AS TEXT) WHEN 'real' THEN CAST(value AS TEXT) ELSE value END AS value, "
    "CASE WHEN type IN ('integer', 'real', 'true', 'false') THEN 'text' ELSE type END AS type"
)
# A numeric field of Elasticsearch coerces an integer written as text ("42") into the number 42.
_INTEGER_TEXT = (
    "type = 'text' AND (value GLOB '[0-9]*' OR value GLOB '-[0-9]*') AND NOT substr(value, 2) GLOB '*[^0-9]*'"
)
_AS_NUMBER = (
    f"CASE WHEN {_INTEGER_TEXT} THEN CAST(value AS INTEGER) ELSE value END AS value, "
    f"CASE WHEN {_INTEGER_TEXT} THEN 'integer' ELSE type END AS type"
)


# Characters that are literals in a Python/PCRE regex but operators in Lucene's RegExp (ALL flags).
_LUCENE_OPERATORS = frozenset('&<>~#@"')


def _escape_lucene_operators(pattern: str) -> str:
    out: list[str] = []
    escaped = False
    for char in pattern:
        if escaped:
            out.append(char)
            escaped = False
        elif char == "\\":
            out.append(char)
            escaped = True
        elif char in _LUCENE_OPERATORS:
            out.append("\\" + char)
        else:
            out.append(char)
    return "".join(out)


# Python/PCRE constructs Lucene's RegExp lacks: rejected on both engines, so a rule means the same everywhere.
_UNPORTABLE_REGEX = (
    (re.compile(r"\(\?"), "groups with (?...) (non-capturing, lookaround, flags)"),
    (re.compile(r"(?<!\\)\\[bBAZzG]"), "anchors \\b \\B \\A \\Z"),
    (re.compile(r"(?<!\\)\\[1-9]"), "back-references"),
    (re.compile(r"[*+?}]\?"), "lazy quantifiers"),
    # Found by the oracle property test (tests/unit/detection/test_oracle.py): Elasticsearch rejects these at
    # search time, or reads them otherwise than Python and RE2 do.
    (
        re.compile(r"(?<!\\)\\(?![dDsSwW])[a-zA-Z0]"),
        "escapes other than \\d \\D \\s \\S \\w \\W (\\t, \\n, \\x41, …: write the character itself)",
    ),
    (re.compile(r"(?<!\\)\|(?=\||\)|$)|(?:^|(?<!\\)\()\|"), "empty alternatives (a|, |a, a||b, (|a))"),
    (re.compile(r"(?<!\\)\{,"), "quantifiers {,n} (write {0,n})"),
    (re.compile(r"\[:\^?[a-z]+:\]"), "POSIX classes such as [:digit:] (write [0-9])"),
    (
        re.compile(r"(?<!\\)(?<!\[)(?<!\[\^)-\]"),
        "a '-' last in a character class such as [a-] (write it first, [-a], or escaped, \\-)",
    ),
)


def portable_regexp(value: Any) -> str:
    """The pattern of a ``|re`` value both engines run alike; raise for flags or unportable constructs."""
    if value.flags:
        raise SigmaFeatureNotSupportedByBackendError(
            "regular expression flags (|i, |m, |s) are not supported (Elasticsearch Lucene has none)"
        )
    pattern = str(value.regexp)
    check_portable_regex(pattern)
    return pattern


def check_portable_regex(pattern: str) -> None:
    """Raise when ``pattern`` uses a construct Elasticsearch's Lucene RegExp does not have, when RE2 (the
    embedded engine's regex engine) cannot run it, or when it is over Elasticsearch's own limits."""
    for construct, what in _UNPORTABLE_REGEX:
        if construct.search(pattern):
            raise SigmaFeatureNotSupportedByBackendError(
                f"regular expression '{pattern}' uses {what}, which Elasticsearch (Lucene RegExp) does not support"
            )
    from soar.detection import _regex

    sent = len(search_regex(pattern))
    if sent > _regex.MAX_REGEX_LENGTH:
        raise SigmaFeatureNotSupportedByBackendError(
            f"regular expression '{_shown(pattern)}' is {sent} characters as searched, over Elasticsearch's "
            f"index.max_regex_length of {_regex.MAX_REGEX_LENGTH}"
        )
    reason = _regex.refusal(pattern)
    if reason is not None:
        raise SigmaFeatureNotSupportedByBackendError(
            f"regular expression '{pattern}' cannot be compiled by RE2, which runs |re in linear time: {reason}"
        )
    reason = _regex.determinization_refusal(search_regex(pattern))
    if reason is not None:
        raise SigmaFeatureNotSupportedByBackendError(f"regular expression '{_shown(pattern)}': {reason}")


def _shown(pattern: str) -> str:
    """The start of a long pattern: enough for the message to find the rule's line."""
    return pattern if len(pattern) <= 120 else pattern[:120]


def _lower_case_value(field: str, value: SigmaString) -> bool:
    return written_in_lower_case(field, "".join(p for p in value.s if isinstance(p, str)))


def is_full_text(field: str) -> bool:
    """Is ``field`` full text (``message``: ``match_only_text``) in ECS mappings, searched by its words?"""
    return field_type(field) in TEXT_TYPES


def check_cidr_field(field: str) -> None:
    """|cidr needs an ``ip`` field of the ECS mappings. On a keyword, Elasticsearch would look for the
    literal text ``10.0.0.0/8`` while the embedded store matched addresses."""
    if field_type(field) != "ip":
        raise SigmaFeatureNotSupportedByBackendError(
            f"|cidr on '{field}': only ip fields of ECS (source.ip, destination.ip, host.ip, …) match address ranges"
        )


def no_field_references() -> SigmaFeatureNotSupportedByBackendError:
    """The one message both engines give for ``|fieldref`` (the quoted modifier finds the rule's line)."""
    return SigmaFeatureNotSupportedByBackendError(
        "'|fieldref' (comparing two fields) is not supported: Elasticsearch's Lucene backend has no such query"
    )


def _dot_without_newline(pattern: str) -> str:
    """Each ``.`` as ``[^\\n]``: Lucene's ``.`` matches a newline, Sigma's (PCRE's, RE2's) does not without ``|s``."""
    from soar.detection.oracle import replace_unescaped

    return replace_unescaped(pattern, ".", "[^\n]")


def search_regex(pattern: str) -> str:
    """A Lucene (anchored) regexp with the meaning of a search for ``pattern``."""
    pattern = _dot_without_newline(_escape_lucene_operators(pattern))
    start = "" if pattern.startswith("^") else ".*"
    body = pattern[1:] if pattern.startswith("^") else pattern
    anchored_end = body.endswith("$") and not body.endswith("\\$")
    body = body[:-1] if anchored_end else body
    end = "" if anchored_end else ".*"
    return f"{start}({body}){end}" if (start or end) else body


def case_insensitive_regexp(value: SigmaString) -> str:
    """A Lucene regexp for a Sigma string whose ASCII letters match in either case (``*`` ``.*``, ``?`` ``.``)."""
    from soar.detection._dsl import regexp_literal

    return "".join(
        regexp_literal(p) if isinstance(p, str) else (".*" if p is SpecialChars.WILDCARD_MULTI else ".")
        for p in value.s
    )


class SearchSemantics:
    """What every text query language soar writes shares with Sigma: ``|re`` is a search (their regexps match
    the whole value, so the pattern is wrapped as :func:`search_regex` does) and ``|fieldref`` is refused."""

    def convert_condition_field_eq_val_re(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> Any:
        searched = copy.copy(cond)
        searched.value = SigmaRegularExpression(search_regex(portable_regexp(cond.value)))
        return super().convert_condition_field_eq_val_re(searched, state)  # type: ignore[misc]

    def convert_condition_field_eq_field(self, cond: Any, state: ConversionState) -> Any:
        raise no_field_references()


class SoarLuceneBackend(SearchSemantics, LuceneBackend):
    """LuceneBackend for ``--target lucene`` (what sigma-cli writes with the same pipeline), with soar's refusals
    and search-semantics ``|re``.

    A ``query_string`` has no case-insensitive term: on ECS keyword fields its values match with the case
    written, as with sigma-cli. The exports people load into other tools fold case
    (:class:`CaseFoldingLuceneBackend`); soar itself searches with query DSL (:mod:`soar.detection._dsl`).
    """

    name: ClassVar[str] = "soar Elasticsearch Lucene"
    re_flags: dict[Any, str] = {}  # noqa: RUF012 - overrides the base's table: no flags in Lucene regexps

    def convert_condition_field_eq_val_str_case_sensitive(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> Any:
        # A query_string term on an ECS keyword matches the case written: exactly what |cased means.
        return LuceneBackend.convert_condition_field_eq_val_str(self, cond, state)

    def convert_condition_field_eq_val_cidr(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> Any:
        check_cidr_field(cond.field)
        return super().convert_condition_field_eq_val_cidr(cond, state)


class CaseFoldingLuceneBackend(SoarLuceneBackend):
    """The query_string of the Kibana and ElastAlert exports, with Sigma's case-insensitive strings.

    A string with ASCII letters on a keyword field is written as a regexp whose letters are ``[aA]`` classes
    (the ASCII folding soar's own DSL searches with). ``|cased`` keeps the plain term, as do values without
    letters and lower-case values of lower-case ECS fields; full-text ``message`` matches by analysed words.
    """

    def convert_condition_field_eq_val_str(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> Any:
        value = cond.value
        if not isinstance(value, SigmaString):
            return super().convert_condition_field_eq_val_str(cond, state)
        folds = any(p.isascii() and any(c.isalpha() for c in p) for p in value.s if isinstance(p, str))
        if not folds or is_full_text(cond.field) or _lower_case_value(cond.field, value):
            return super().convert_condition_field_eq_val_str(cond, state)
        return f"{self.escape_and_quote_field(cond.field)}:/{case_insensitive_regexp(value)}/"


def _sql_str(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def json_path(field: str) -> str:
    """The JSON path of a dotted field name in the ``flat`` object, as a SQL literal."""
    return _sql_str('$."' + field.replace("\\", "\\\\").replace('"', '\\"') + '"')


class SoarSQLiteBackend(sqliteBackend):
    """SQLite backend over soar's event store: array-aware fields, keyword search, Sigma case rules."""

    name: ClassVar[str] = "soar embedded SQLite"
    collate_nocase: bool = True
    # Elasticsearch's case_insensitive term/prefix/wildcard queries fold ASCII letters only (É never
    # matches é there); soar_nocase and the store's like() fold exactly those too.
    collation_expression: ClassVar[str] = "{expr} COLLATE soar_nocase"
    table = "events"

    def finalize_query_default(self, rule: Any, query: str, index: int, state: ConversionState) -> Any:
        return query

    def _inside(self, field: str, inner: str) -> str:
        # The field is quoted by json_path; inner was produced by pySigma with quoted values.
        elements = f"json_each(flat, {json_path(field)})"
        kind = field_type(field)
        if kind in STRING_TYPES:
            elements = f"(SELECT {_AS_KEYWORD} FROM {elements})"  # noqa: S608 - constant SQL around a quoted path
        elif kind in NUMERIC_TYPES:
            elements = f"(SELECT {_AS_NUMBER} FROM {elements})"  # noqa: S608 - constant SQL around a quoted path
        return f"EXISTS (SELECT 1 FROM {elements} WHERE {inner})"  # noqa: S608 - SQL compiled by pySigma, values quoted

    def convert_condition_field_eq_val(self, cond: ConditionFieldEqualsValueExpression, state: ConversionState) -> Any:
        field = cond.field
        if isinstance(cond.value, SigmaExpansion):
            # windash, base64offset, expand: an OR of values on *this* field (each one looked up in the event);
            # converted below the json_each, pySigma's expansion would name the json_each column as the field.
            return self.convert_condition_field_eq_expansion(cond, state)
        if isinstance(cond.value, SigmaNull):
            return f"NOT {self._inside(field, f'{VALUE} IS NOT NULL')}"
        if isinstance(cond.value, SigmaCIDRExpression):
            check_cidr_field(field)
        if isinstance(cond.value, SigmaExists):
            exists = self._inside(field, f"{VALUE} IS NOT NULL")
            return exists if cond.value.exists else f"NOT {exists}"
        if isinstance(cond.value, SigmaString) and is_full_text(field):
            return self._words(field, cond.value, cond, state)
        if isinstance(cond.value, SigmaString) and field_type(field) == "ip":
            # Elasticsearch compares addresses, not their text (wildcards on an ip field are refused before).
            return self._inside(field, f"soar_same_address({VALUE}, {_sql_str(str(cond.value))})")
        inner = copy.copy(cond)
        inner.field = VALUE
        if type(cond.value) is SigmaString and _lower_case_value(field, cond.value):
            inner.value = SigmaCasedString.from_sigma_string(cond.value)  # as on Elasticsearch: exact
        return self._inside(field, str(super().convert_condition_field_eq_val(inner, state)))

    def _words(self, field: str, value: SigmaString, cond: Any, state: ConversionState) -> str:
        """A full-text field as Elasticsearch searches it (``match_phrase`` per literal run): each run occurs."""
        runs = [p.strip() for p in value.s if isinstance(p, str) and p.strip()]
        if not runs:
            return self._inside(field, f"{VALUE} IS NOT NULL")
        parts = [self._inside(field, f"soar_phrase({VALUE}, {_sql_str(run)})") for run in runs]
        return parts[0] if len(parts) == 1 else "(" + " AND ".join(parts) + ")"

    def escape_and_quote_field(self, field: str) -> str:
        if field == VALUE:
            return VALUE
        return str(super().escape_and_quote_field(field))  # type: ignore[no-untyped-call]

    def convert_condition_field_eq_val_num(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> Any:
        # Elasticsearch compares a number with a keyword's text too; so does this.
        number: Any = cond.value
        return f"({VALUE} = {number} OR {VALUE} = '{number}')"

    def convert_condition_field_eq_val_str(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> Any:
        # Elasticsearch reads "4242" against a numeric field as the number: a plain integer string
        # matches a JSON number too. Wildcards only ever match text there (a long has no terms to scan).
        text = str(super().convert_condition_field_eq_val_str(cond, state))
        value: Any = cond.value
        if value.contains_special():
            return f"({TEXT} AND {text})"
        if cond.field == VALUE and _INTEGER.fullmatch(str(value)):
            return f"({text} OR (type = 'integer' AND {VALUE} = {int(str(value))}))"
        return text

    def convert_condition_field_eq_val_str_case_sensitive(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> Any:
        # On Elasticsearch |cased reads the .cased sub-field, which only strings have.
        return f"({TEXT} AND {super().convert_condition_field_eq_val_str_case_sensitive(cond, state)})"

    def convert_condition_field_compare_op_val(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> Any:
        # |lt |lte |gt |gte: numbers compare as numbers; text compares as text (byte order, case kept), as a
        # range query on an ECS keyword does in Elasticsearch. SQLite alone would rank any text above any number.
        compare: Any = cond.value
        op, number = self.compare_operators[compare.op], compare.number
        return (
            f"(CASE WHEN type IN ('integer', 'real') THEN {VALUE} {op} {number} "
            f"ELSE {VALUE} COLLATE BINARY {op} {_sql_str(str(number))} END)"
        )

    def convert_condition_field_eq_field(self, cond: Any, state: ConversionState) -> Any:
        raise no_field_references()

    def convert_condition_field_eq_val_cidr(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> Any:
        cidr: Any = cond.value
        return f"soar_cidr({VALUE}, {_sql_str(str(cidr.network))})"

    def convert_condition_field_eq_val_re(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> Any:
        return f"({TEXT} AND soar_regexp({_sql_str(portable_regexp(cond.value))}, {VALUE}))"  # .cased: strings only

    def convert_condition_val_str(self, cond: ConditionValueExpression, state: ConversionState) -> Any:
        """Keyword search: the words of the keyword occur in the event's ``message`` (as on Elasticsearch)."""
        value: Any = cond.value
        return self._words(KEYWORD_SEARCH_FIELD, value, cond, state)

    def convert_condition_val_num(self, cond: ConditionValueExpression, state: ConversionState) -> Any:
        return self._words(KEYWORD_SEARCH_FIELD, SigmaString(str(cond.value)), cond, state)
