"""Running rules over their own fixture events (and over an events file) on either engine.

Every fixture event of every rule is loaded once — into one throwaway Elasticsearch index
(bulk) or one embedded store — and each event gets an id. A plain rule's query runs restricted
to its own fixture ids (all rules in one ``_msearch``), so rules never see each other's
events. A correlation rule's fixtures are *scenarios*: each scenario's events are evaluated
alone and must (or must not) produce a correlation match.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import yaml
from elasticsearch import Elasticsearch

from soar import _yaml
from soar.detection._compile import CompiledRule, Compiler
from soar.detection._correlate import evaluate_correlation
from soar.detection._loading import Rule, RuleSet, yaml_error
from soar.detection._yamlpos import positions
from soar.detection.embedded import EventStore, flatten, parse_timestamp
from soar.detection.embedded import correlation_events as db_correlation_events
from soar.errors import ContentError, InputError, SourceLocation

KINDS = ("should_match", "should_not_match")


@dataclass
class Fixture:
    """One unit to test: an event (plain rule) or a scenario of events (correlation)."""

    kind: str  # should_match | should_not_match
    index: int
    location: SourceLocation
    events: list[dict[str, Any]]
    ids: list[str] = field(default_factory=list)
    # Per event: the real source its provenance names (pipelines/sources.yml), None for a hand-written event.
    sources: list[str | None] = field(default_factory=list)


@dataclass
class RuleTestResult:
    rule_id: str
    title: str
    path: str
    passed: bool
    failures: list[str] = field(default_factory=list)
    fixtures: int = 0
    tested_through: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.rule_id,
            "title": self.title,
            "path": self.path,
            "passed": self.passed,
            "fixtures": self.fixtures,
            "failures": self.failures,
            "tested_through": self.tested_through,
        }


def load_fixtures(rule: Rule) -> list[Fixture]:
    """The fixtures beside a rule; ContentError (file:line) when missing or malformed."""
    path = rule.fixtures_path
    if path is None:
        raise rule.error(f"no fixtures: expected {rule.path.with_suffix('').name}.tests.yml beside the rule")
    try:
        text = _yaml.read_text(path, _yaml.MAX_FIXTURES_BYTES)  # over 8 MiB: refused before reading
        node, data = _yaml.load_with_node(text)  # an alias is refused at its line
    except yaml.YAMLError as exc:
        raise yaml_error(path, exc, "fixtures YAML") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ContentError(f"cannot read fixtures: {exc}", SourceLocation(path)) from exc
    if node is None or not isinstance(data, dict):
        raise ContentError("fixtures must be a mapping with should_match and should_not_match", SourceLocation(path, 1))
    pos = positions(node)
    unknown = sorted(set(data) - set(KINDS))
    if unknown:
        mark = pos.of(unknown[0])
        raise ContentError(
            f"unknown fixtures key '{unknown[0]}' (expected {', '.join(KINDS)})",
            SourceLocation(path, mark.line, mark.column),
        )
    out: list[Fixture] = []
    for kind in KINDS:
        items = data.get(kind) or []
        mark = pos.of(kind)
        if not isinstance(items, list):
            raise ContentError(f"{kind} must be a list", SourceLocation(path, mark.line, mark.column))
        for i, item in enumerate(items):
            m = pos.of(kind, i)
            where = SourceLocation(path, m.line, m.column)
            entries = _fixture_entries(rule, item, where, f"{kind}[{i}]")
            events = [event for event, _ in entries]
            out.append(Fixture(kind, i, where, events, sources=[source for _, source in entries]))
    return out


PROVENANCE_KEYS = ("source", "integration", "integration_version", "file")


def is_documented(item: Any) -> bool:
    """A fixture entry of the documented form ``{provenance: {...}, event: {...}}``."""
    return isinstance(item, Mapping) and set(item) == {"provenance", "event"}


def unwrap(item: Any, where: SourceLocation, label: str) -> dict[str, Any]:
    """The event of a fixture entry: a bare event, or ``{provenance, event}`` (provenance checked, then dropped)."""
    if not is_documented(item):
        return dict(item)
    provenance = item["provenance"]
    missing = [k for k in PROVENANCE_KEYS if not isinstance(provenance, Mapping) or not provenance.get(k)]
    if missing:
        raise ContentError(f"{label}: provenance lacks {', '.join(missing)}", where)
    if not isinstance(item["event"], Mapping):
        raise ContentError(f"{label}: event must be a mapping", where)
    from soar.detection._provenance import SOURCE_FIELD_LISTS, invented_fields

    source = str(provenance["source"])
    if source not in SOURCE_FIELD_LISTS:
        raise ContentError(
            f"{label}: provenance source '{source}' is not a known source ({', '.join(SOURCE_FIELD_LISTS)})", where
        )
    invented = invented_fields(item["event"], source)
    if invented:
        raise ContentError(
            f"{label}: field {', '.join(invented[:5])} is neither an ECS field nor declared by {source}'s "
            "integrations: a real document never has it",
            where,
        )
    return dict(item["event"])


def _fixture_entries(
    rule: Rule, item: Any, where: SourceLocation, label: str
) -> list[tuple[dict[str, Any], str | None]]:
    """The (event, the real source its provenance names or None) pairs of one fixture item."""
    if rule.kind == "correlation":
        if isinstance(item, Mapping) and "events" in item:
            item = item["events"]
        if not isinstance(item, list) or not all(isinstance(e, Mapping) for e in item):
            raise ContentError(f"{label}: a correlation fixture is a list of events (a scenario)", where)
        raw = [(e, f"{label}[{i}]") for i, e in enumerate(item)]
    elif not isinstance(item, Mapping):
        raise ContentError(f"{label}: a fixture event must be a mapping", where)
    else:
        raw = [(item, label)]
    entries = [(unwrap(e, where, at), str(e["provenance"]["source"]) if is_documented(e) else None) for e, at in raw]
    for event, _ in entries:  # Elasticsearch would reject it, the embedded store would ignore it: an error for both
        stamp = event.get("@timestamp")
        if stamp is not None and parse_timestamp(stamp) is None:
            raise ContentError(f"{label}: @timestamp {stamp!r} is not an ISO 8601 date", where)
    return entries


@dataclass
class _Plan:
    rule: Rule
    compiled: CompiledRule | None
    fixtures: list[Fixture]
    error: str | None = None
    through: str | None = None  # a building block tested through this correlation in the same file


def _plan(ruleset: RuleSet, compiler: Compiler) -> tuple[list[_Plan], list[tuple[str, dict[str, Any]]]]:
    """Compile every rule and give every fixture event an id; return the plans and all (id, event)."""
    plans: list[_Plan] = []
    docs: list[tuple[str, dict[str, Any]]] = []
    counter = 0
    through = building_blocks(ruleset)
    for rule in ruleset.rules:
        try:
            compiled = compiler.compile(rule, ruleset)
            fixtures = [] if rule.id in through else load_fixtures(rule)
        except ContentError as exc:
            plans.append(_Plan(rule, None, [], str(exc)))
            continue
        if rule.id in through:
            plans.append(_Plan(rule, compiled, [], through=through[rule.id]))
            continue
        for fixture in fixtures:
            for event in fixture.events:
                doc_id = f"e{counter}"
                counter += 1
                fixture.ids.append(doc_id)
                docs.append((doc_id, event))
        plans.append(_Plan(rule, compiled, fixtures))
    return plans, docs


def building_blocks(ruleset: RuleSet) -> dict[str, str]:
    """Rule id -> id of the correlation in the same file that uses it; the file's fixtures are the correlation's."""
    out: dict[str, str] = {}
    by_id = ruleset.by_id
    for rule in ruleset.rules:
        if rule.kind != "correlation":
            continue
        for ref in rule.references:
            base = by_id.get(ref)
            if base is not None and base.path == rule.path:
                out.setdefault(base.id, rule.id)
    return out


def _judge(plan: _Plan, matched: Callable[[Fixture], bool]) -> RuleTestResult:
    rule = plan.rule
    result = RuleTestResult(rule.id, rule.title, str(rule.path), passed=True, fixtures=len(plan.fixtures))
    if plan.error is not None:
        result.passed = False
        result.failures.append(plan.error)
        return result
    if plan.through is not None:
        result.tested_through = plan.through
        return result
    if not any(f.kind == "should_match" for f in plan.fixtures) or not any(
        f.kind == "should_not_match" for f in plan.fixtures
    ):
        result.passed = False
        result.failures.append(f"{rule.fixtures_path}: needs at least one should_match and one should_not_match")
    for fixture in plan.fixtures:
        hit = matched(fixture)
        if hit != (fixture.kind == "should_match"):
            result.passed = False
            verb = "did not match" if fixture.kind == "should_match" else "matched"
            shown = json.dumps(fixture.events[0] if len(fixture.events) == 1 else fixture.events, sort_keys=True)
            result.failures.append(f"{fixture.location}: {fixture.kind}[{fixture.index}] {verb}: {shown}")
    return result


def run_fixture_tests(
    ruleset: RuleSet,
    engine: str = "embedded",
    pipelines: Sequence[str] = ("ecs_linux",),
    es: Elasticsearch | None = None,
    index_prefix: str = "soar-fixtures",
    into: str | None = None,
) -> list[RuleTestResult]:
    """Each rule against its own fixtures; one result per rule.

    ``into``: an existing index or data stream (mapped by someone else, e.g. a Fleet template) to write the
    fixtures into and search, instead of a throwaway ECS index; the fixtures are deleted from it afterwards.
    """
    target = "elasticsearch" if engine == "elasticsearch" else "embedded"
    if engine not in ("elasticsearch", "embedded"):
        raise InputError(f"--engine {engine}: unknown engine (known: elasticsearch, embedded)")
    compiler = Compiler(target, pipelines)
    plans, docs = _plan(ruleset, compiler)
    if engine == "embedded":
        return _run_embedded(plans, docs)
    if es is None:
        raise InputError("--engine elasticsearch needs an Elasticsearch client")
    if into is not None:
        return _run_elasticsearch(es, plans, docs, into, existing=True)
    return _run_elasticsearch(es, plans, docs, f"{index_prefix}-{uuid.uuid4().hex[:12]}")


def _run_embedded(plans: list[_Plan], docs: list[tuple[str, dict[str, Any]]]) -> list[RuleTestResult]:
    with EventStore() as store:
        row_ids = store.insert([event for _, event in docs])
        row_of = {doc_id: row for (doc_id, _), row in zip(docs, row_ids, strict=True)}
        results = []
        for plan in plans:
            matched_rows: set[int] = set()
            if plan.compiled is not None and plan.compiled.correlation is None:
                ids = [row_of[i] for f in plan.fixtures for i in f.ids]
                matched_rows = set(store.search(plan.compiled, ids))

            def matched(fixture: Fixture, plan: _Plan = plan, matched_rows: set[int] = matched_rows) -> bool:
                assert plan.compiled is not None
                rows = [row_of[i] for i in fixture.ids]
                spec = plan.compiled.correlation
                if spec is None:
                    return any(r in matched_rows for r in rows)
                return bool(evaluate_correlation(spec, db_correlation_events(store, spec, rows)))

            results.append(_judge(plan, matched))
        return results


def _run_elasticsearch(
    es: Elasticsearch, plans: list[_Plan], docs: list[tuple[str, dict[str, Any]]], index: str, existing: bool = False
) -> list[RuleTestResult]:
    from soar.detection.elastic import (
        bulk_index,
        correlation_events,
        create_events_index,
        delete_documents,
        search_rules,
    )

    if not existing:
        create_events_index(es, index)
    try:
        where = {i: f.location for p in plans for f in p.fixtures for i in f.ids}
        bulk_index(es, index, docs, where, op="create" if existing else "index")
        plain = [p for p in plans if p.compiled is not None and p.compiled.correlation is None]
        filters = {
            p.rule.id: [{"ids": {"values": [i for f in p.fixtures for i in f.ids]}}] for p in plain if p.compiled
        }
        size = max([len(v[0]["ids"]["values"]) for v in filters.values()] + [1])
        hits = search_rules(
            es, index, [p.compiled for p in plain if p.compiled], size=size, filters=filters, source=False
        )
        results = []
        for plan in plans:
            matched_ids = {h["_id"] for h in hits.get(plan.rule.id, [])}

            def matched(fixture: Fixture, plan: _Plan = plan, matched_ids: set[str] = matched_ids) -> bool:
                assert plan.compiled is not None
                spec = plan.compiled.correlation
                if spec is None:
                    return any(i in matched_ids for i in fixture.ids)
                events = correlation_events(es, index, spec, filters=[{"ids": {"values": fixture.ids}}])
                return bool(evaluate_correlation(spec, events))

            results.append(_judge(plan, matched))
        return results
    finally:
        if existing:
            delete_documents(es, index, {"ids": {"values": [doc_id for doc_id, _ in docs]}})
        else:
            es.options(ignore_status=404).indices.delete(index=index)


_SQL_FIELD = re.compile(r"""json_each\(flat, '\$\."((?:[^"\\]|\\.)*)"'\)""")
_DSL_LEAVES = ("term", "prefix", "wildcard", "regexp", "match_phrase", "range")


def query_fields(compiled: CompiledRule, required: bool = False) -> list[str]:
    """The event fields a compiled rule's query reads (both engines; a correlation: its base rules').

    ``required``: in the query DSL, only those an event must have to match, leaving out what is read under
    ``must_not`` only (a missing field passes a negation: the generic source's exclusion of other sources, a
    ``not`` filter). The SQL text does not tell a negated field apart: its fields are all counted.
    """
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if required and key == "must_not":
                    continue
                if key in _DSL_LEAVES and isinstance(value, dict):
                    found.extend(value)
                elif key == "exists" and isinstance(value, dict):
                    found.append(str(value.get("field")))
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(compiled.dsl)
    found.extend(re.sub(r"\\(.)", r"\1", m.group(1)) for m in _SQL_FIELD.finditer(compiled.sql or ""))
    for base in compiled.correlation.rules if compiled.correlation else ():
        found.extend(query_fields(base, required))
    return list(dict.fromkeys(found))


def absent_fields(
    compiled: CompiledRule, events: Sequence[Mapping[str, Any]], per_source: Mapping[str, Any] | None = None
) -> list[str]:
    """What stops the rule from matching ``events`` whatever their values: the fields its query reads that no
    event has. With ``per_source`` (each searched source's own query DSL), a source whose query finds all it
    reads means nothing is missing; otherwise the source lacking fewest fields is named."""
    present: set[str] = set()
    for event in events:
        present.update(flatten(dict(event)))

    def lacking(part: CompiledRule) -> list[str]:
        read = query_fields(part, required=True)
        return [f for f in read if f not in present and not any(p.startswith(f + ".") for p in present)]

    parts = [replace(compiled, dsl={"query": q}, sql=None) for q in (per_source or {}).values()] or [compiled]
    missing = [lacking(part) for part in parts]
    return [] if any(not m for m in missing) else min(missing, key=len)


def match_events(
    ruleset: RuleSet,
    events: Sequence[Mapping[str, Any]],
    engine: str = "embedded",
    pipelines: Sequence[str] = ("ecs_linux",),
    es: Elasticsearch | None = None,
    index_prefix: str = "soar-events-test",
    locations: Sequence[SourceLocation] | None = None,
) -> tuple[list[dict[str, Any]], list[ContentError]]:
    """For each rule, the 0-based indexes of ``events`` it matched (correlations: the events of their matches).

    ``locations``: where each event is in its file, for an event Elasticsearch rejects.
    """
    target = "elasticsearch" if engine == "elasticsearch" else "embedded"
    compiler = Compiler(target, pipelines)
    compiled: list[CompiledRule] = []
    errors: list[ContentError] = []
    for rule in ruleset.rules:
        try:
            compiled.append(compiler.compile(rule, ruleset))
        except ContentError as exc:
            errors.append(exc)
    # What each rule reads, told per source from its query DSL (the same fields on both engines).
    dsl = compiler if target == "elasticsearch" else Compiler("elasticsearch", pipelines)
    by_id = ruleset.by_id
    absent = {
        c.rule_id: absent_fields(c, events, dsl.source_queries(by_id[c.rule_id]) if c.rule_id in by_id else None)
        for c in compiled
    }
    report: list[dict[str, Any]] = []
    if engine == "embedded":
        with EventStore() as store:
            store.insert(events)
            for c in compiled:
                if c.correlation is None:
                    idx = store.search(c)
                else:
                    spec = c.correlation
                    idx = sorted(
                        {r for m in evaluate_correlation(spec, db_correlation_events(store, spec)) for r in m.refs}
                    )
                report.append(
                    {
                        "id": c.rule_id,
                        "title": c.title,
                        "matched_events": idx,
                        "absent_fields": absent.get(c.rule_id, []),
                    }
                )
        return report, errors
    if es is None:
        raise InputError("--engine elasticsearch needs an Elasticsearch client")
    from soar.detection.elastic import bulk_index, correlation_events, create_events_index, search_rules

    index = f"{index_prefix}-{uuid.uuid4().hex[:12]}"
    window = max(len(events), 1)  # every event can be a hit: the embedded engine has no cap either
    create_events_index(es, index, max_hits=window)
    try:
        where = {str(i): location for i, location in enumerate(locations or ())}
        bulk_index(es, index, [(str(i), e) for i, e in enumerate(events)], where)
        hits = search_rules(es, index, compiled, size=window, source=False, max_hits=window)
        for c in compiled:
            if c.correlation is None:
                idx = sorted(int(h["_id"]) for h in hits.get(c.rule_id, []))
            else:
                spec = c.correlation
                matches = evaluate_correlation(spec, correlation_events(es, index, spec))
                idx = sorted({int(r) for m in matches for r in m.refs})
            report.append(
                {"id": c.rule_id, "title": c.title, "matched_events": idx, "absent_fields": absent.get(c.rule_id, [])}
            )
    finally:
        es.options(ignore_status=404).indices.delete(index=index)
    return report, errors
