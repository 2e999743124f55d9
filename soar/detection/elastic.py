"""Compiled rules on Elasticsearch: soar's own event indices, batched searches, correlation events.

All rules of a cycle go out as one ``_msearch``; correlation base rules fetch only the fields
the evaluation needs (timestamp, group-by, aggregated field), paged with a point in time. A
chained correlation's base correlation is evaluated first, over its own range widened by its
timespan, and its matches in the range are the events.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from elasticsearch import ApiError, Elasticsearch

from soar.detection._compile import CompiledRule, CorrelationSpec
from soar.detection._correlate import CorrelationEvent, chained_events, evaluate_correlation, group_key
from soar.detection._ecs import events_index_mappings, events_index_settings
from soar.detection.embedded import flatten, parse_timestamp
from soar.errors import InputError, SourceLocation

TEMPLATE_NAME = "soar-events"
PAGE = 5000
MAX_HITS = 10_000  # Elasticsearch's default index.max_result_window
BULK = 5000  # events per bulk request: a large events file stays under http.max_content_length
# Where Fleet's integrations write their data streams: never soar's to re-map.
SHIPPER_NAMESPACES = ("logs-", "metrics-", "traces-", "synthetics-", "profiling-")
MANAGED_BY = "soar"


def _reaches_shipper_data(pattern: str) -> bool:
    """Does ``pattern`` match names in the data-stream namespaces shippers write to (logs-*, metrics-*, …)?"""
    literal = pattern.split("*", 1)[0]
    return any(ns.startswith(literal) or literal.startswith(ns) for ns in SHIPPER_NAMESPACES) or literal == ""


def template_conflicts(es: Elasticsearch, index_patterns: Sequence[str]) -> list[str]:
    """Why each pattern may not get soar's template: shippers' namespaces, or data soar does not own."""
    problems: list[str] = []
    for pattern in index_patterns:
        if _reaches_shipper_data(pattern):
            problems.append(
                f"{pattern}: matches the data streams shippers write (logs-*, metrics-*, …); "
                "their integrations map them, soar installs no template there"
            )
            continue
        # Backing indices name their data stream; the data stream API itself is x-pack, so ask the index API.
        found = es.options(ignore_status=404).indices.get(index=pattern, expand_wildcards="all")
        seen: set[str] = set()
        for name, index in found.body.items() if found.meta.status == 200 else ():
            owner = ((index.get("mappings") or {}).get("_meta") or {}).get("managed_by")
            if owner == MANAGED_BY:
                continue
            stream = index.get("data_stream")
            what = f"data stream {stream}" if stream else f"index {name}"
            if what not in seen:
                seen.add(what)
                problems.append(f"{pattern}: matches {what}, which soar does not own")
    return problems


def events_template(index_patterns: Sequence[str], data_stream: bool = False) -> dict[str, Any]:
    """An index template mapping ECS events as real clusters do (official ECS mappings, strings as keywords)."""
    mappings = events_index_mappings()
    mappings["_meta"] = {"managed_by": MANAGED_BY, "source": "official ECS mappings (integrations/elasticsearch/ecs)"}
    body: dict[str, Any] = {
        "index_patterns": list(index_patterns),
        "priority": 100,
        "template": {"settings": events_index_settings(), "mappings": mappings},
        "_meta": {"managed_by": MANAGED_BY, "description": "ECS events for soar's own indices (demo, tests)"},
    }
    if data_stream:
        body["data_stream"] = {}
    return body


def install_index_template(
    es: Elasticsearch, index_patterns: Sequence[str], name: str = TEMPLATE_NAME, data_stream: bool = False
) -> None:
    """Install the ECS events template on ``index_patterns``: soar's own indices only.

    Refused (InputError naming the pattern) for the shippers' namespaces (``logs-*``, …) and for any
    pattern matching a data stream or index soar did not create: a user's data is mapped by its
    integrations, and soar's queries keep Sigma's meaning on those mappings without a template.
    """
    if not index_patterns:
        raise InputError("install-template: name at least one --pattern (soar's own indices, e.g. soar-events-*)")
    problems = template_conflicts(es, index_patterns)
    if problems:
        raise InputError("refused: " + "; ".join(problems))
    body = events_template(index_patterns, data_stream)
    es.indices.put_index_template(
        name=name,
        index_patterns=body["index_patterns"],
        template=body["template"],
        priority=body["priority"],
        meta=body["_meta"],
        data_stream=body.get("data_stream"),
    )


def create_events_index(es: Elasticsearch, index: str, max_hits: int = MAX_HITS) -> None:
    """A concrete index mapped with the official ECS mappings (for soar's throwaway fixture and test indices).

    ``max_hits`` above 10,000 raises the index's result window, so one search can return every event.
    """
    settings = events_index_settings()
    if max_hits > MAX_HITS:
        settings["index"]["max_result_window"] = max_hits
    mappings = events_index_mappings()
    mappings["_meta"] = {"managed_by": MANAGED_BY}
    es.indices.create(index=index, settings=settings, mappings=mappings)


def bulk_index(
    es: Elasticsearch,
    index: str,
    docs: Sequence[tuple[str, Mapping[str, Any]]],
    locations: Mapping[str, SourceLocation] | None = None,
    op: str = "index",
) -> None:
    """Index (id, event) pairs and refresh; raise InputError naming the first rejected document (and where it is).

    ``op="create"`` for a data stream (which takes nothing else).
    """
    for start in range(0, len(docs), BULK):
        ops: list[dict[str, Any]] = []
        for doc_id, event in docs[start : start + BULK]:
            ops.append({op: {"_index": index, "_id": doc_id}})
            ops.append(dict(event))
        last = start + BULK >= len(docs)  # one refresh, after the last request, makes them all searchable
        result = es.bulk(operations=ops, refresh="wait_for" if last else False)
        if result.get("errors"):
            for item in result["items"]:
                info = item.get(op, {})
                if info.get("error"):
                    reason = info["error"].get("reason", info["error"])
                    doc_id = str(info.get("_id"))
                    where = (locations or {}).get(doc_id)
                    raise InputError(f"event {doc_id}: Elasticsearch rejected it: {reason}", where)


def delete_documents(es: Elasticsearch, index: str, query: Mapping[str, Any]) -> int:
    """Delete the documents ``query`` finds in ``index`` (a data stream too) by id, in their backing indices.

    ``_delete_by_query`` belongs to the reindex module, which the open-modules server lacks.
    """
    deleted = 0
    while True:
        hits = es.search(index=index, query=dict(query), size=BULK, source=False)["hits"]["hits"]
        if not hits:
            return deleted
        es.bulk(operations=[{"delete": {"_index": h["_index"], "_id": h["_id"]}} for h in hits], refresh="wait_for")
        deleted += len(hits)


def _body(compiled: CompiledRule, filters: Sequence[Mapping[str, Any]], size: int, source: Any) -> dict[str, Any]:
    if compiled.dsl is None:
        raise InputError(f"rule {compiled.rule_id}: not compiled for Elasticsearch")
    query = dict(compiled.dsl["query"])
    if filters:
        query = {"bool": {"must": [query], "filter": list(filters)}}
    return {
        "query": query,
        "size": size,
        "_source": source,
        "sort": [{"@timestamp": {"order": "asc", "unmapped_type": "date"}}],
    }


def _range(time_range: tuple[str, str] | None) -> list[dict[str, Any]]:
    if time_range is None:
        return []
    return [{"range": {"@timestamp": {"gte": time_range[0], "lt": time_range[1]}}}]


def search_rules(
    es: Elasticsearch,
    index: str,
    compiled: Sequence[CompiledRule],
    time_range: tuple[str, str] | None = None,
    size: int = 1000,
    filters: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
    source: Any = True,
    max_hits: int = MAX_HITS,
) -> dict[str, list[dict[str, Any]]]:
    """Hits of every non-correlation rule, one ``_msearch``; ``filters`` adds per-rule filter clauses.

    At most ``size`` (capped at ``max_hits``: the index's result window, 10,000 by default) hits per rule,
    oldest first.
    """
    size = min(size, max_hits)
    plain = [c for c in compiled if c.correlation is None]
    if not plain:
        return {}
    searches: list[dict[str, Any]] = []
    for rule in plain:
        extra = [*_range(time_range), *((filters or {}).get(rule.rule_id, ()))]
        searches.append({"index": index, "ignore_unavailable": True})
        searches.append(_body(rule, extra, size, source))
    response = es.msearch(searches=searches)
    out: dict[str, list[dict[str, Any]]] = {}
    for rule, answer in zip(plain, response["responses"], strict=True):
        if "error" in answer:
            reason = answer["error"].get("root_cause", [{}])[0].get("reason") or answer["error"].get("reason")
            raise InputError(f"rule {rule.rule_id} ({rule.path}): Elasticsearch rejected the query: {reason}")
        out[rule.rule_id] = list(answer["hits"]["hits"])
    return out


def _source_fields(spec: CorrelationSpec, rule_id: str) -> list[str]:
    return ["@timestamp", *spec.fields_of(rule_id), *([spec.field] if spec.field else [])]


def correlation_events(
    es: Elasticsearch,
    index: str,
    spec: CorrelationSpec,
    time_range: tuple[str, str] | None = None,
    filters: Sequence[Mapping[str, Any]] = (),
) -> list[CorrelationEvent]:
    """The events of a correlation's base rules, paged through a point in time (a chained base: its matches)."""
    out: list[CorrelationEvent] = []
    for base in spec.rules:
        if base.correlation is not None:
            out.extend(_chained(es, index, spec, base, time_range, filters))
    plain = [base for base in spec.rules if base.correlation is None]
    if not plain:
        return out
    try:
        pit = es.open_point_in_time(index=index, keep_alive="1m")["id"]
    except ApiError as exc:
        raise InputError(f"{index}: cannot open a point in time: {exc.message}") from exc
    try:
        groups = _candidate_groups(es, pit, spec, [*_range(time_range), *filters])
        if groups is not None and not groups:
            return out  # no group has enough events: nothing to fetch
        narrowed = [*_range(time_range), *filters, *([_groups_filter(spec, groups)] if groups else [])]
        for base in plain:
            fields = _source_fields(spec, base.rule_id)
            body = _body(base, narrowed, PAGE, fields)
            body["sort"] = [{"@timestamp": {"order": "asc", "unmapped_type": "date"}}, {"_shard_doc": "asc"}]
            after: list[Any] | None = None
            while True:
                page = es.search(
                    pit={"id": pit, "keep_alive": "1m"},
                    query=body["query"],
                    size=PAGE,
                    source_includes=fields,
                    sort=body["sort"],
                    search_after=after,
                )
                hits = page["hits"]["hits"]
                for hit in hits:
                    out.extend(_event(base.rule_id, spec, hit))
                if len(hits) < PAGE:
                    break
                after = hits[-1]["sort"]
    finally:
        es.close_point_in_time(id=pit)
    return out


def _chained(
    es: Elasticsearch,
    index: str,
    spec: CorrelationSpec,
    base: CompiledRule,
    time_range: tuple[str, str] | None,
    filters: Sequence[Mapping[str, Any]],
) -> list[CorrelationEvent]:
    """The matches of the correlation ``base`` ending in ``time_range``, as events of ``spec``."""
    inner = base.correlation
    assert inner is not None
    start = parse_timestamp(time_range[0]) if time_range is not None else None
    wider = time_range
    if time_range is not None and start is not None:  # its windows reach back one timespan before the range
        wider = (datetime.fromtimestamp(start - inner.timespan, UTC).isoformat(), time_range[1])
    matches = evaluate_correlation(inner, correlation_events(es, index, inner, wider, filters))
    return [e for e in chained_events(spec, base.rule_id, matches) if start is None or e.timestamp >= start]


MAX_CANDIDATE_GROUPS = 500


def _candidate_groups(
    es: Elasticsearch, pit: str, spec: CorrelationSpec, filters: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]] | None:
    """For ``event_count`` with ``gt``/``gte``: the groups with enough events in the whole range (a
    composite aggregation), so only their events are fetched. None when the shortcut does not apply."""
    if spec.type != "event_count" or spec.op not in ("gt", "gte") or not spec.group_by:
        return None
    if spec.rule_fields or any(r.correlation is not None for r in spec.rules):
        return None  # aliases: the group-by fields differ per base rule; chained: matches count as events too
    need = spec.count + (1 if spec.op == "gt" else 0)
    should = [dict(r.dsl["query"]) for r in spec.rules if r.dsl is not None]
    query = {"bool": {"should": should, "minimum_should_match": 1, "filter": list(filters)}}
    sources = [{f"g{i}": {"terms": {"field": name}}} for i, name in enumerate(spec.group_by)]
    out: list[dict[str, Any]] = []
    after: dict[str, Any] | None = None
    while True:
        composite: dict[str, Any] = {"size": 1000, "sources": sources}
        if after is not None:
            composite["after"] = after
        try:
            page = es.search(
                pit={"id": pit, "keep_alive": "1m"}, query=query, size=0, aggs={"groups": {"composite": composite}}
            )
        except ApiError:
            return None  # e.g. a group-by field mapped as text in someone else's template: fetch everything
        agg = page["aggregations"]["groups"]
        for bucket in agg["buckets"]:
            if bucket["doc_count"] >= need:
                out.append({name: bucket["key"][f"g{i}"] for i, name in enumerate(spec.group_by)})
                if len(out) > MAX_CANDIDATE_GROUPS:
                    return None  # too many to filter on: fetch everything instead
        after = agg.get("after_key")
        if not agg["buckets"] or after is None:
            return out


def _groups_filter(spec: CorrelationSpec, groups: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    return {
        "bool": {
            "should": [{"bool": {"filter": [{"term": {k: v}} for k, v in group.items()]}} for group in groups],
            "minimum_should_match": 1,
        }
    }


def _event(rule_id: str, spec: CorrelationSpec, hit: Mapping[str, Any]) -> list[CorrelationEvent]:
    flat = flatten(hit.get("_source", {}))
    ts = parse_timestamp(flat.get("@timestamp"))
    if ts is None:
        return []
    value = flat.get(spec.field) if spec.field else None
    return [CorrelationEvent(rule_id, ts, group_key(flat, spec.fields_of(rule_id)), value, hit["_id"])]


def hit_events(base_rule_id: str, spec: CorrelationSpec, hit: Mapping[str, Any]) -> list[CorrelationEvent]:
    """A base rule's search hit as the evaluator's event (the scheduler batches its own searches)."""
    return _event(base_rule_id, spec, hit)
