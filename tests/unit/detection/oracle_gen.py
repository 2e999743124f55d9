"""Generated Sigma rules and ECS events for comparing the engines with the oracle (soar.detection.oracle).

The generator is written against a tiny :class:`Draw` interface so the same code feeds hypothesis (unit
test: shrinking, derandomized) and a seeded ``random.Random`` (the Elasticsearch batch and the benchmark).
Values come from a bounded alphabet with mixed case, Sigma's wildcards and escapes, regex-special
characters, Windows dashes and non-ASCII letters, and are mostly cut from the events so rules do match.
"""

from __future__ import annotations

import base64
import random
import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import yaml

from soar.detection.oracle import Oracle, OracleRefusal
from tests.unit.detection.helpers import rule_yaml

T = TypeVar("T")

# Letters with and without an ASCII case pair (É/é fold only in Unicode; K is the Kelvin sign), digits,
# wildcards and the escape, regex and LIKE/GLOB specials, the dashes windash knows.
ALPHABET = [
    *"aBcDxY19",
    "é",
    "É",
    "ß",
    "K",
    "ı",
    " ",
    " ",
    "\n",
    "\t",
    "-",
    "/",
    "\u2013",
    ".",
    "\\",
    "*",
    "?",
    "%",
    "_",
    "[",
    "]",
    "(",
    "+",
    "$",
    "^",
    "|",
    "'",
    ":",
]
WORDS = ["alpha", "Beta", "gamma", "DELTA", "é", "x1", "42", "éTé", "naïve"]
IPS = ["10.0.0.1", "10.1.2.3", "192.168.1.20", "192.168.2.1", "172.16.0.9", "2001:db8::1", "2001:db8:1::5"]
CIDRS = ["10.0.0.0/8", "10.0.0.0/16", "192.168.1.0/24", "192.168.0.0/16", "172.16.0.9/32", "2001:db8::/32"]
PLACEHOLDERS = {"admins": ["Root", "adm*"], "shells": ["/bin/sh", "-c"]}
# A pipeline that only defines placeholders (and so applies to every rule): fields are named as in ECS.
PIPELINE_YAML = """\
name: oracle_placeholders
priority: 20
vars:
  admins: ["Root", "adm*"]
  shells: ["/bin/sh", "-c"]
transformations:
  - id: oracle_value_placeholders
    type: value_placeholders
"""

STRING_FIELDS = ["process.command_line", "process.name", "custom.tag"]
LIST_FIELD = "process.args"
NUMBER_FIELD = "process.pid"
IP_FIELD = "destination.ip"
TEXT_FIELD = "message"


class Draw(Protocol):
    def choice(self, options: Sequence[T]) -> T: ...
    def integer(self, low: int, high: int) -> int: ...
    def chance(self, p: float) -> bool: ...


class RandomDraw:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def choice(self, options: Sequence[T]) -> T:
        return self.rng.choice(list(options))

    def integer(self, low: int, high: int) -> int:
        return self.rng.randint(low, high)

    def chance(self, p: float) -> bool:
        return self.rng.random() < p


class HypothesisDraw:
    def __init__(self, data: Any) -> None:
        from hypothesis import strategies as st

        self.data, self.st = data, st

    def choice(self, options: Sequence[T]) -> T:
        return self.data.draw(self.st.sampled_from(list(options)))  # type: ignore[no-any-return]

    def integer(self, low: int, high: int) -> int:
        return self.data.draw(self.st.integers(low, high))  # type: ignore[no-any-return]

    def chance(self, p: float) -> bool:
        # integers shrink towards low: "no" is the simple case
        return self.data.draw(self.st.integers(0, 99)) >= 100 - round(p * 100)  # type: ignore[no-any-return]


# -- events -----------------------------------------------------------------------------------------------------


def text(d: Draw, low: int = 0, high: int = 8) -> str:
    return "".join(d.choice(ALPHABET) for _ in range(d.integer(low, high)))


def string_value(d: Draw) -> str:
    kind = d.integer(0, 9)
    if kind == 0:  # something base64 (plain, or of UTF-16) somewhere in it
        inner = "".join(c for c in text(d, 1, 6) if c.isascii()) or "ab"
        data = inner.encode("utf-16-le" if d.chance(0.3) else "utf-8")
        return text(d, 0, 2) + base64.b64encode(b" " * d.integer(0, 2) + data).decode() + text(d, 0, 2)
    if kind == 1:  # a Windows-style parameter
        return text(d, 0, 3) + " " + d.choice(["-", "/", "\u2013", "\u2014", "\u2015"]) + text(d, 1, 4)
    return text(d)


def event(d: Draw) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for name in STRING_FIELDS:
        roll = d.integer(0, 9)
        if roll >= 2:
            flat[name] = string_value(d)
        elif roll == 1:
            flat[name] = None
    if d.chance(0.1):  # a number, a boolean in an ECS keyword field (outside ECS, the first value would type it)
        flat["process.name"] = d.choice([42, 7, True, False, 4.5])
    if d.chance(0.8):
        flat[LIST_FIELD] = [
            string_value(d) if d.chance(0.9) else d.choice([None, 42, 7]) for _ in range(d.integer(0, 3))
        ]
    if d.chance(0.8):  # sometimes as text: Elasticsearch coerces it into the long field
        flat[NUMBER_FIELD] = d.integer(0, 60) if d.chance(0.85) else str(d.integer(0, 60))
    if d.chance(0.7):  # sometimes written otherwise than canonically (the same address)
        flat[IP_FIELD] = d.choice([*IPS, "2001:0db8:0:0:0:0:0:1", "2001:DB8::1", "::ffff:10.0.0.1"])
    if d.chance(0.7):
        flat[TEXT_FIELD] = " ".join(d.choice([*WORDS, text(d, 1, 4)]) for _ in range(d.integer(1, 5)))
    out = nest(flat)
    if "custom" in out and d.chance(0.3):  # a dotted key, as some shippers write: the same field
        out["custom.tag"] = out.pop("custom")["tag"]
    return out


def nest(flat: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"@timestamp": "2026-11-28T10:00:00.000Z"}
    for name, value in flat.items():
        node = out
        *parents, last = name.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return out


# -- rules ------------------------------------------------------------------------------------------------------


def _strings_of(events: Sequence[dict[str, Any]], name: str) -> list[str]:
    from soar.detection.oracle import lookup

    return [v for e in events for v in lookup(e, name) if isinstance(v, str) and v]


def _escape_sigma(piece: str) -> str:
    return piece.replace("\\", "\\\\").replace("*", "\\*").replace("?", "\\?")


def piece(d: Draw, events: Sequence[dict[str, Any]], name: str) -> str:
    """A Sigma string value: mostly a (case-swapped, wildcarded) piece of an event's value, escaped."""
    pool = _strings_of(events, name)
    if pool and d.chance(0.85):
        source = d.choice(pool)
        start = d.integer(0, len(source) - 1)
        cut = source[start : start + d.integer(1, 6)]
    else:
        cut = text(d, 1, 5)
    if d.chance(0.3):
        cut = cut.swapcase()
    value = _escape_sigma(cut) if d.chance(0.8) else cut  # unescaped: its * ? \ are Sigma's
    if d.chance(0.25):
        at = d.integer(0, len(value))
        value = value[:at] + d.choice(["*", "?", "\\*", "\\?", "\\\\", "\\"]) + value[at:]
    return value


def regex(d: Draw, events: Sequence[dict[str, Any]], name: str) -> str:
    pool = _strings_of(events, name)
    parts: list[str] = []
    for _ in range(d.integer(1, 3)):
        kind = d.integer(0, 9)
        if kind <= 4 and pool:
            source = d.choice(pool)
            start = d.integer(0, len(source) - 1)
            parts.append(re.escape(source[start : start + d.integer(1, 4)]))
        else:
            parts.append(
                d.choice(
                    [
                        *(".", ".*", "[a-z]+", "[^ ]", "\\d", "\\w", "(a|B)", "x?", "[é-ë]", "\\s", "[A-Z]"),
                        *("[[:digit:]]", "a{1,2}", ".{0,3}", "\\.", "[^a-z]", "\\p{L}", "\\x41", "(c|)", "\\W"),
                    ]
                )
            )
    body = "".join(parts)
    if d.chance(0.2):
        body = "^" + body
    if d.chance(0.2):
        body += "$"
    return body


@dataclass
class Generated:
    detection: dict[str, Any]
    modifiers: set[str] = field(default_factory=set)

    def yaml(self, title: str = "oracle property") -> str:
        return rule_yaml(self.detection, title=title)


def item(d: Draw, events: Sequence[dict[str, Any]], used: set[str]) -> tuple[str, Any]:
    """One ``field|modifiers: value(s)`` entry."""
    kind = d.integer(0, 19)
    if kind <= 9:
        name = d.choice([*STRING_FIELDS, LIST_FIELD])
        mods = d.choice(
            [
                [],
                ["contains"],
                ["startswith"],
                ["endswith"],
                ["contains", "all"],
                ["cased"],
                ["contains", "cased"],
                ["startswith", "cased"],
                ["endswith", "cased"],
                ["contains", "all", "windash"],
                ["contains", "all", "cased"],
                ["contains", "windash"],
                ["windash"],
                ["startswith", "windash"],
                ["base64"],
                ["base64offset", "contains"],
                ["wide", "base64offset", "contains"],
                ["wide", "base64", "contains"],
                ["utf16be", "base64offset", "contains"],
                ["utf16le", "base64offset", "contains"],
                ["expand"],
                ["re"],
                ["re", "i"],
                ["exists"],
                ["fieldref"],
            ]
        )
        used.update(mods)
        if mods == ["exists"]:
            return f"{name}|exists", d.chance(0.5)
        if mods == ["fieldref"]:
            return f"{name}|fieldref", d.choice([n for n in [*STRING_FIELDS, LIST_FIELD] if n != name])
        if mods and mods[0] == "re":
            value: Any = regex(d, events, name)
        elif mods == ["expand"]:
            value = d.choice(["%admins%", "%shells%", "x%admins%", "%shells% *"])
        else:
            value = piece(d, events, name)
            if any(m.startswith(("base64", "wide", "utf16")) for m in mods):
                value = value.replace("*", "").replace("?", "").replace("\\", "")
                if mods[0] in ("wide", "utf16le", "utf16be"):
                    value = "".join(c for c in value if c.isascii())
                value = value or "ab"
        count = d.integer(1, 3) if d.chance(0.35) or "all" in mods else 1
        if not mods and d.chance(0.1):
            value = d.choice([42, 7, True])
        if count > 1 and mods and mods[0] != "re":
            value = [value, *(piece(d, events, name) for _ in range(count - 1))]
            if any(m.startswith(("base64", "wide", "utf16")) for m in mods):
                value = [v.replace("*", "").replace("?", "").replace("\\", "") or "ab" for v in value]
                value = [v if v.isascii() else "ab" for v in value]
        if not mods and d.chance(0.1):
            value = [*(value if isinstance(value, list) else [value]), None]
        if d.chance(0.05):
            return name, None
        return "|".join([name, *mods]), value
    if kind <= 13:
        mods = d.choice([[], ["lt"], ["lte"], ["gt"], ["gte"], ["exists"]])
        used.update(mods)
        if mods == ["exists"]:
            return f"{NUMBER_FIELD}|exists", d.chance(0.5)
        number: Any = d.integer(0, 60)
        if not mods and d.chance(0.3):
            number = str(number) + d.choice(["", "", "*", "?"])
        if not mods and d.chance(0.3):
            number = [number, d.integer(0, 60)]
        return "|".join([NUMBER_FIELD, *mods]), number
    if kind <= 16:
        mods = d.choice([[], ["cidr"], ["cidr"], ["exists"]])
        used.update(mods)
        if mods == ["exists"]:
            return f"{IP_FIELD}|exists", d.chance(0.5)
        if mods == ["cidr"]:
            return f"{IP_FIELD}|cidr", d.choice(CIDRS) if d.chance(0.7) else [d.choice(CIDRS), d.choice(CIDRS)]
        return IP_FIELD, d.choice([*IPS, "2001:DB8:0::1", "::ffff:10.1.2.3"])
    # (an exact value, startswith or endswith on full text is refused on both engines: rarely drawn)
    mods = d.choice([*[["contains"]] * 6, ["contains", "all"], ["contains", "all"], ["startswith"]])
    used.update(mods)
    words = [d.choice(WORDS) for _ in range(d.integer(1, 2))]
    value = " ".join(words)
    return "|".join([TEXT_FIELD, *mods]), value if "all" not in mods else [value, d.choice(WORDS)]


def search(d: Draw, events: Sequence[dict[str, Any]], used: set[str]) -> Any:
    roll = d.integer(0, 9)
    if roll == 0:  # keywords: searched in message
        used.add("keywords")
        words: list[Any] = [
            " ".join(d.choice([*WORDS, "*", "?", "x*1"]) for _ in range(d.integer(1, 2)))
            for _ in range(d.integer(1, 2))
        ]
        if d.chance(0.2):
            words.append(d.choice([42, 1]))
        return words if len(words) > 1 else words[0]
    if roll == 1:  # a list of maps: their OR
        return [dict([item(d, events, used)]) for _ in range(2)]
    out: dict[str, Any] = {}
    for _ in range(d.integer(1, 2)):
        key, value = item(d, events, used)
        out.setdefault(key, value)
    return out


NAMES = ["sel", "sel_b", "filter", "_aux"]


def condition(d: Draw, names: list[str], depth: int = 0) -> str:
    roll = d.integer(0, 9)
    if depth >= 2 or roll <= 3:
        return d.choice(names)
    if roll == 4:
        return f"not {condition(d, names, depth + 1)}"
    if roll == 5:
        return d.choice(["1 of sel*", "all of sel*", "1 of them", "all of them", "1 of _*"])
    op = d.choice(["and", "or"])
    return f"({condition(d, names, depth + 1)} {op} {condition(d, names, depth + 1)})"


def rule(d: Draw, events: Sequence[dict[str, Any]]) -> Generated:
    used: set[str] = set()
    names = NAMES[: d.integer(1, len(NAMES))]
    detection: dict[str, Any] = {name: search(d, events, used) for name in names}
    cond = condition(d, names)
    if "_aux" not in names and "_*" in cond:
        cond = cond.replace("1 of _*", "1 of sel*")
    detection["condition"] = cond
    for word in ("not", "1 of", "all of"):
        if word in cond:
            used.add(word)
    return Generated(detection, used)


# -- running the oracle ----------------------------------------------------------------------------------------

ORACLE = Oracle(placeholders=PLACEHOLDERS)


def oracle_hits(detection: dict[str, Any], events: Sequence[dict[str, Any]]) -> list[int] | None:
    """The events the oracle matches, or None when it refuses the rule."""
    try:
        return [i for i, e in enumerate(events) if ORACLE.matches(detection, e)]
    except (OracleRefusal, re.error, ValueError):
        return None


def pipeline_file(directory: Path) -> Path:
    path = directory / "oracle_pipeline.yml"
    path.write_text(PIPELINE_YAML, encoding="utf-8")
    return path


def show(detection: dict[str, Any]) -> str:
    return textwrap.indent(yaml.safe_dump({"detection": detection}, sort_keys=False, allow_unicode=True), "  ")


def load_generated(directory: Path, generated: Sequence[Generated]) -> list[Any]:
    """Each generated rule loaded from its own file: a Rule, or the ContentError refusing it at its line."""
    from soar.detection import load_rules

    out: list[Any] = []
    for n, g in enumerate(generated):
        path = directory / f"oracle_{n}.yml"
        path.write_text(g.yaml(title=f"oracle property {n}"), encoding="utf-8")
        ruleset = load_rules([path])
        out.append(ruleset.errors[0] if ruleset.errors else ruleset.rules[0])
    return out


@dataclass
class BatchResult:
    """One generated batch run on the engines and the oracle."""

    rules: int = 0
    events: int = 0
    compared: int = 0  # rules every engine compiled and the oracle evaluated
    refused: int = 0  # rules refused (at their line) by an engine, or not defined by the oracle
    pairs: int = 0  # rule x event decisions compared, per engine
    matched: int = 0  # compared rules matching at least one event and not every event
    disagreements: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


def run_batch(
    directory: Path, seed: int, n_events: int, n_rules: int, es: Any = None, index: str | None = None
) -> BatchResult:
    """Generate events and rules from ``seed``; compare the embedded engine (and Elasticsearch) with the oracle.

    With ``es``, the events are indexed once into ``index`` (which must not exist: it is created with the
    ECS mappings) and every rule is searched in one ``_msearch``.
    """
    import time

    from soar.detection._compile import Compiler
    from soar.detection.embedded import EventStore
    from soar.errors import ContentError

    result = BatchResult(events=n_events, rules=n_rules)
    draw = RandomDraw(seed)
    events = [event(draw) for _ in range(n_events)]
    generated = [rule(draw, events) for _ in range(n_rules)]
    t0 = time.perf_counter()
    wants = [oracle_hits(g.detection, events) for g in generated]
    result.seconds["oracle"] = time.perf_counter() - t0
    pipeline = [str(pipeline_file(directory))]
    targets = ["embedded", *(["elasticsearch"] if es is not None else [])]
    t0 = time.perf_counter()
    loaded = load_generated(directory, generated)
    compilers = {t: Compiler(t, pipeline) for t in targets}
    compiled: dict[str, list[Any]] = {t: [] for t in targets}
    kept: list[int] = []
    for n, loaded_rule in enumerate(loaded):
        if wants[n] is None or isinstance(loaded_rule, ContentError):
            result.refused += 1
            continue
        try:
            both = [compilers[t].compile(loaded_rule) for t in targets]
        except ContentError as exc:
            assert exc.source is not None and exc.source.line is not None, f"refused without a line: {exc}"
            result.refused += 1
            continue
        kept.append(n)
        for target, c in zip(targets, both, strict=True):
            compiled[target].append(c)
    result.seconds["compile"] = time.perf_counter() - t0
    got: dict[str, list[list[int]]] = {}
    t0 = time.perf_counter()
    with EventStore() as store:
        store.insert(events)
        got["embedded"] = [store.search(c) for c in compiled["embedded"]]
    result.seconds["embedded"] = time.perf_counter() - t0
    if es is not None and index is not None:
        from soar.detection.elastic import bulk_index, create_events_index, search_rules

        t0 = time.perf_counter()
        create_events_index(es, index)
        bulk_index(es, index, [(str(i), e) for i, e in enumerate(events)])
        hits = search_rules(es, index, compiled["elasticsearch"], size=n_events, source=False)
        got["elasticsearch"] = [sorted(int(h["_id"]) for h in hits[c.rule_id]) for c in compiled["elasticsearch"]]
        result.seconds["elasticsearch"] = time.perf_counter() - t0
    for position, n in enumerate(kept):
        want = wants[n]
        assert want is not None
        result.compared += 1
        result.matched += 0 < len(want) < n_events
        for target in targets:
            result.pairs += n_events
            have = got[target][position]
            if have != want:
                result.disagreements.append(
                    f"{target}={have} oracle={want} (seed {seed}, rule {n})\n{show(generated[n].detection)}"
                )
    return result
