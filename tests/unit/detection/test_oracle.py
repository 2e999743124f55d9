"""The oracle (soar.detection.oracle) and the embedded engine mean the same: generated rules, named regressions.

The property test draws ECS events and a Sigma rule (tests/unit/detection/oracle_gen.py) and requires the
embedded engine to match exactly the events the oracle matches, or to refuse the rule at its line.
Elasticsearch is compared on a generated batch in tests/integration/detection/test_oracle_es.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from soar.detection import load_rules
from soar.detection._compile import Compiler
from soar.detection.embedded import EventStore
from soar.detection.oracle import OracleRefusal, explain, matches, parse_value
from soar.errors import ContentError
from tests.unit.detection import oracle_gen as gen
from tests.unit.detection.helpers import rule_yaml, write


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("oracle")


@pytest.fixture(scope="module")
def embedded(workdir: Path) -> Iterator[Compiler]:
    yield Compiler("embedded", [str(gen.pipeline_file(workdir))])


def embedded_hits(compiler: Compiler, path: Path, detection: dict[str, Any], events: list[dict[str, Any]]) -> Any:
    """The events the embedded engine matches, or the ContentError refusing the rule."""
    write(path, rule_yaml(detection))
    ruleset = load_rules([path])
    if ruleset.errors:
        return ruleset.errors[0]
    try:
        compiled = compiler.compile(ruleset.rules[0])
    except ContentError as exc:
        return exc
    with EventStore() as store:
        store.insert(events)
        return store.search(compiled)


# -- the oracle on its own -------------------------------------------------------------------------------------


def ev(**flat: Any) -> dict[str, Any]:
    return gen.nest({k.replace("__", "."): v for k, v in flat.items()})


@pytest.mark.parametrize(
    ("detection", "event", "expected"),
    [
        ({"s": {"process.name": "BASH"}, "condition": "s"}, ev(process__name="bash"), True),
        ({"s": {"process.name": "ÉTÉ"}, "condition": "s"}, ev(process__name="été"), False),  # ASCII folding only
        ({"s": {"process.name|cased": "Bash"}, "condition": "s"}, ev(process__name="bash"), False),
        ({"s": {"process.name": "b?sh*"}, "condition": "s"}, ev(process__name="bash -x"), True),
        ({"s": {"process.name": "a\\*b"}, "condition": "s"}, ev(process__name="axb"), False),
        ({"s": {"process.name": "a\\*b"}, "condition": "s"}, ev(process__name="a*b"), True),
        ({"s": {"process.name": "a\\b"}, "condition": "s"}, ev(process__name="a\\b"), True),
        ({"s": {"process.args|contains|all": ["-e", "sh"]}, "condition": "s"}, ev(process__args=["-e", "sh"]), True),
        ({"s": {"process.args|contains|all": ["-e", "zsh"]}, "condition": "s"}, ev(process__args=["-e", "sh"]), False),
        (
            {"s": {"process.command_line|contains|windash": " -x"}, "condition": "s"},
            ev(process__command_line="a /x"),
            True,
        ),
        ({"s": {"process.command_line|re": "^a.c$"}, "condition": "s"}, ev(process__command_line="abc"), True),
        ({"s": {"process.command_line|re": "\\w$"}, "condition": "s"}, ev(process__command_line="aé"), False),
        ({"s": {"process.command_line|re|i": "ABC"}, "condition": "s"}, ev(process__command_line="xabc"), True),
        ({"s": {"destination.ip|cidr": "10.0.0.0/8"}, "condition": "s"}, ev(destination__ip="10.2.3.4"), True),
        ({"s": {"process.pid|gte": 10}, "condition": "s"}, ev(process__pid=10), True),
        ({"s": {"process.pid": "42"}, "condition": "s"}, ev(process__pid=42), True),
        ({"s": {"process.pid": "4*"}, "condition": "s"}, ev(process__pid=42), False),
        ({"s": {"process.name": None}, "condition": "s"}, ev(process__pid=1), True),
        ({"s": {"process.name|exists": False}, "condition": "s"}, ev(process__name=None), True),
        ({"s": {"process.name|fieldref": "user.name"}, "condition": "s"}, ev(process__name="a", user__name="a"), True),
        ({"s": {"custom.tag|base64": "ab"}, "condition": "s"}, ev(custom__tag="YWI="), True),
        ({"s": {"custom.tag|base64offset|contains": "abc"}, "condition": "s"}, ev(custom__tag="xx IGFiYw"), True),
        ({"s": {"custom.tag|wide|base64": "ab"}, "condition": "s"}, ev(custom__tag="YQBiAA=="), True),
        ({"s": {"custom.tag|utf16be|base64": "ab"}, "condition": "s"}, ev(custom__tag="AGEAYg=="), True),
        ({"s": {"process.name|expand": "%admins%"}, "condition": "s"}, ev(process__name="ADMIN1"), True),
        ({"k": ["foo bar"], "condition": "k"}, ev(message="x FOO bar y"), True),
        ({"k": ["foo bar"], "condition": "k"}, ev(message="bar foo"), False),
        ({"a": {"x": "1"}, "b": {"y": "1"}, "condition": "1 of them"}, ev(y="1"), True),
        ({"a": {"x": "1"}, "_b": {"y": "1"}, "condition": "all of them"}, ev(x="1"), True),
        ({"a1": {"x": "1"}, "a2": {"y": "1"}, "condition": "all of a*"}, ev(x="1"), False),
        ({"a": {"x": "1"}, "b": {"y": "1"}, "condition": "not (a or b) and not a"}, ev(z="1"), True),
        ({"a": {"x": "1"}, "b": {"y": "1"}, "condition": "a or b and not a"}, ev(x="1"), True),
    ],
)
def test_oracle_semantics(detection: dict[str, Any], event: dict[str, Any], expected: bool) -> None:
    assert matches(detection, event, gen.PLACEHOLDERS | {"admins": ["admin?"]}) is expected


def test_oracle_explains_each_search_identifier() -> None:
    detection = {"sel": {"process.name": "bash"}, "filter": {"user.name": "root"}, "condition": "sel and not filter"}
    assert explain(detection, ev(process__name="bash", user__name="ROOT")) == {
        "sel": True,
        "filter": True,
        "condition": False,
    }


def test_oracle_refuses_what_it_does_not_define() -> None:
    with pytest.raises(OracleRefusal, match="placeholder %nope%"):
        matches({"s": {"a|expand": "%nope%"}, "condition": "s"}, ev(a="x"))
    with pytest.raises(OracleRefusal, match="unknown search identifier"):
        matches({"s": {"a": "x"}, "condition": "t"}, ev(a="x"))
    assert parse_value("a\\") == ("a\\",)


# -- regressions: every disagreement the generators found ------------------------------------------------------

WIN = ev(process__command_line="certutil -decode in out")
WIN_SLASH = ev(process__command_line="certutil /decode in out")
WIN_EN = ev(process__command_line="certutil \u2013decode in out")

REGRESSIONS: list[tuple[str, dict[str, Any], list[dict[str, Any]], list[int] | str]] = [
    (
        # The field was lost: the expansion was converted inside json_each with the column as its field.
        "windash keeps its field on the embedded engine",
        {"sel": {"process.command_line|contains|windash": "-decode "}, "condition": "sel"},
        [WIN, WIN_SLASH, WIN_EN, ev(process__command_line="certutil decode")],
        [0, 1, 2],
    ),
    (
        # pySigma 1.5 knows the specification's alias `wide` only: `utf16le` was refused as unknown.
        "utf16le, the specification's name of wide, is accepted and means wide",
        {"sel": {"process.command_line|utf16le|base64offset|contains": "ping"}, "condition": "sel"},
        [
            ev(process__command_line="powershell -enc cABpAG4AZwAgADEAMAAuADAALgAwAC4AMQA="),
            ev(process__command_line="powershell -enc cABpbmcgMTAuMC4wLjE="),  # utf-8, not utf-16le
        ],
        [0],
    ),
    (
        "base64offset keeps its field on the embedded engine",
        {"sel": {"custom.tag|base64offset|contains": "abc"}, "condition": "sel"},
        [ev(custom__tag="YWJj"), ev(custom__tag="IGFiYw"), ev(custom__tag="ICBhYmM="), ev(custom__tag="abc")],
        [0, 1, 2],
    ),
    (
        "expand keeps its field on the embedded engine",
        {"sel": {"process.name|expand": "%admins%"}, "condition": "sel"},
        [ev(process__name="root"), ev(process__name="admin7"), ev(process__name="user")],
        [0, 1],
    ),
    (
        # pySigma cuts the shifted encodings by characters: é (two bytes) gave '*w*', '*', '*DqQ==*' — everything.
        "base64offset of a non-ASCII value is refused",
        {"sel": {"custom.tag|base64offset|contains": "é"}, "condition": "sel"},
        [ev(custom__tag="anything")],
        "pySigma cuts the shifted encodings by characters",
    ),
    (
        # A one-byte value has an empty shifted encoding: with |contains it matched every value.
        "base64offset of one character is refused",
        {"sel": {"custom.tag|base64offset|contains": "x"}, "condition": "sel"},
        [ev(custom__tag="anything")],
        "a one-character value has an empty shifted encoding",
    ),
    (
        # Elasticsearch's standard tokenizer emits no token for a lone '_': the words either side are adjacent.
        "a lone underscore is no word in full text",
        {"k": ["éTé DELTA"], "condition": "k"},
        [ev(message="' éTé ^_] DELTA 42"), ev(message="éTé x DELTA"), ev(message="a_b DELTA")],
        [0],
    ),
    (
        "a lone underscore is no word in a full-text field",
        {"sel": {"message|contains": "42 gamma"}, "condition": "sel"},
        [ev(message="42 é _ gamma"), ev(message="42 _ gamma"), ev(message="42 __ x gamma")],
        [1],
    ),
    (
        # UAX #29 joins letters across an apostrophe, digits across it too, never a digit and a letter.
        "an apostrophe between a digit and a letter splits words",
        {"k": ["é"], "condition": "k"},
        [ev(message="naïve alpha gamma c9'é"), ev(message="don'é"), ev(message="1'é2")],
        [0],
    ),
    (
        # Elasticsearch indexes a number or boolean in a keyword field as its text; the embedded engine read
        # such an element as a number, which no wildcard or |re ever matched.
        "a number in a keyword field matches as its text",
        {"sel": {"process.name|contains": "4"}, "condition": "sel"},
        [ev(process__name=42), ev(process__name="142"), ev(process__name=7), ev(process__name=4.5)],
        [0, 1, 3],
    ),
    (
        "a boolean in a keyword field matches as its text",
        {"sel": {"process.name|re": "^tr"}, "condition": "sel"},
        [ev(process__name=True), ev(process__name=False), ev(process__name="tr")],
        [0, 2],
    ),
    (
        "a number among the elements of a keyword field matches as its text",
        {"sel": {"process.args|startswith": "4"}, "condition": "sel"},
        [ev(process__args=["kill", 42]), ev(process__args=["kill", "-9"]), ev(process__args=[None, "4"])],
        [0, 2],
    ),
    (
        # Lucene's '.' matches a newline; Sigma's (PCRE, RE2) only with |s: sent to Elasticsearch as [^\n].
        "re . does not match a newline",
        {"sel": {"custom.tag|re": "a.b"}, "condition": "sel"},
        [ev(custom__tag="a\nb"), ev(custom__tag="axb")],
        [1],
    ),
    (
        # Python's '$' also matched before a final newline (the oracle's fault): the end of the value only.
        "re $ is the end of the value",
        {"sel": {"custom.tag|re": "^a$"}, "condition": "sel"},
        [ev(custom__tag="a\n"), ev(custom__tag="a")],
        [1],
    ),
    (
        # Elasticsearch compares addresses; the embedded engine compared their text.
        "an ip field compares addresses, not text",
        {"sel": {"destination.ip": "2001:db8::1"}, "condition": "sel"},
        [
            ev(destination__ip="2001:0db8:0:0:0:0:0:1"),
            ev(destination__ip="2001:DB8::1"),
            ev(destination__ip="2001:db8::2"),
        ],
        [0, 1],
    ),
    (
        # Elasticsearch stores an IPv4-mapped IPv6 address as the IPv4 address.
        "an IPv4-mapped address is IPv4",
        {
            "sel": {"destination.ip|cidr": "10.0.0.0/8"},
            "filter": {"destination.ip": "::ffff:10.0.0.2"},
            "condition": "sel or filter",
        },
        [ev(destination__ip="::ffff:10.0.0.1"), ev(destination__ip="11.0.0.1"), ev(destination__ip="11.0.0.2")],
        [0],
    ),
    (
        # Elasticsearch coerces "42" into a long field; the embedded engine compared it as text ('42' < '9').
        "an integer written as text in a numeric field is a number",
        {"sel": {"process.pid|lt": 9}, "filter": {"process.pid": 42}, "condition": "sel or filter"},
        [
            ev(process__pid="42"),
            ev(process__pid="8"),
            ev(process__pid="042"),
            ev(process__pid=10),
            ev(process__pid="-3"),
        ],
        [0, 1, 2, 4],
    ),
    (
        # \w is ASCII in Lucene, RE2 and PCRE; Python's re matched 'ı' (the oracle follows PCRE).
        "re \\w is ASCII",
        {"sel": {"custom.tag|re": "x?\\w$"}, "condition": "sel"},
        [ev(custom__tag="ßı"), ev(custom__tag="ab")],
        [1],
    ),
    # |re constructs Elasticsearch rejects at search time or reads otherwise than RE2 (and the oracle): refused
    # at the rule's line on both engines (soar.detection._backends._UNPORTABLE_REGEX).
    *(
        (
            f"re {pattern} is refused",
            {"sel": {"custom.tag|re": pattern}, "condition": "sel"},
            [ev(custom__tag="a")],
            why,
        )
        for pattern, why in (
            ("\\x41", "escapes other than"),  # Elasticsearch: invalid character class
            ("\\t", "escapes other than"),
            ("(c|)", "empty alternatives"),  # Elasticsearch: expected ')'
            ("|a", "empty alternatives"),  # Elasticsearch matched nothing, RE2 everything
            ("a||b", "empty alternatives"),  # Elasticsearch read a|b, RE2 matched everything
            ("a{,2}", "quantifiers {,n}"),  # RE2: a literal '{,2}'; Elasticsearch: integer expected
            ("[[:digit:]]", "POSIX classes"),  # RE2: a digit; Lucene and PCRE without POSIX: other text
            ("[a-]", "a '-' last in a character class"),  # Elasticsearch: invalid range
        )
    ),
]


@pytest.mark.parametrize(
    ("detection", "events", "expected"), [r[1:] for r in REGRESSIONS], ids=[r[0] for r in REGRESSIONS]
)
def test_regression(
    embedded: Compiler, workdir: Path, detection: dict[str, Any], events: list[dict[str, Any]], expected: Any
) -> None:
    got = embedded_hits(embedded, workdir / "regression.yml", detection, events)
    if isinstance(expected, str):
        assert isinstance(got, ContentError), got
        assert expected in got.message
        assert got.source is not None and got.source.line is not None and got.source.line > 1
        return
    assert got == expected
    assert gen.oracle_hits(detection, events) == expected


# -- the property ----------------------------------------------------------------------------------------------


@settings(
    max_examples=400,
    derandomize=True,
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.generate],  # no shrinking: the failure message shows the rule and the events
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_embedded_engine_agrees_with_the_oracle(embedded: Compiler, workdir: Path, data: st.DataObject) -> None:
    draw = gen.HypothesisDraw(data)
    events = [gen.event(draw) for _ in range(draw.integer(1, 8))]
    generated = gen.rule(draw, events)
    want = gen.oracle_hits(generated.detection, events)
    if want is None:
        return
    got = embedded_hits(embedded, workdir / "property.yml", generated.detection, events)
    if isinstance(got, ContentError):
        assert got.source is not None and got.source.line is not None, f"refused without a line: {got}"
        return
    assert got == want, f"embedded={got} oracle={want}\n{gen.show(generated.detection)}\nevents: {events}"
