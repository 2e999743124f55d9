"""The production store: one Elasticsearch index per kind (``<prefix>-state-<kind>``).

Each document lives under a ``flattened`` field, so runs, alerts and audit
entries of any shape are searchable without mapping conflicts. Leaf values are
indexed as keywords: equality compares the string form, ranges compare strings
(ISO-8601 times sort correctly; numbers do not — use times or equality).
Optimistic writes use ``if_seq_no``/``if_primary_term``; ``create`` uses
``op_type=create`` for exactly-once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from elasticsearch import ConflictError, Elasticsearch, NotFoundError

from soar.actions.registry import BUILTIN_INTEGRATIONS
from soar.config import Settings
from soar.connections import elasticsearch_client
from soar.errors import SoarError
from soar.store.base import (
    Conflict,
    Mutates,
    Prefix,
    Range,
    Record,
    Where,
    check_field,
    check_kind,
    normalise_where,
)

TEMPLATE_FILE = BUILTIN_INTEGRATIONS / "elasticsearch" / "index_templates" / "soar-state.json"


def _term_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _version(meta: Mapping[str, Any]) -> str:
    return f"{meta['_seq_no']}:{meta['_primary_term']}"


class ElasticsearchStore(Mutates):
    """A Store on Elasticsearch indices."""

    def __init__(self, client: Elasticsearch, prefix: str = "soar", template_file: Path = TEMPLATE_FILE) -> None:
        self.client = client
        self.prefix = prefix
        self._ready: set[str] = set()
        template = json.loads(template_file.read_text(encoding="utf-8"))
        template["index_patterns"] = [f"{prefix}-state-*"]
        self.client.indices.put_index_template(name=f"{prefix}-state", **template)

    @classmethod
    def from_settings(cls, settings: Settings) -> ElasticsearchStore:
        return cls(elasticsearch_client(settings), settings.index_prefix)

    def index_name(self, kind: str) -> str:
        return f"{self.prefix}-state-{check_kind(kind)}"

    def _index(self, kind: str) -> str:
        name = self.index_name(kind)
        if name not in self._ready:
            self.client.options(ignore_status=400).indices.create(index=name)
            # another process may have created it a moment ago: wait until its primary shard serves reads.
            # Yellow alone is not that: a new index reports yellow before its primary is even assigned
            # (a get then fails with 503). The template gives every store index one shard.
            self.client.cluster.health(index=name, wait_for_status="yellow", wait_for_active_shards="1", timeout="30s")
            self._ready.add(name)
        return name

    def create(self, kind: str, id: str, doc: Mapping[str, Any]) -> bool:
        return self.insert(kind, id, doc) is not None

    def insert(self, kind: str, id: str, doc: Mapping[str, Any]) -> Record | None:
        try:
            resp = self.client.create(index=self._index(kind), id=id, document={"doc": dict(doc), "id": id})
        except ConflictError:
            return None
        return Record(id, dict(doc), _version(resp.body))

    def put(self, kind: str, id: str, doc: Mapping[str, Any]) -> Record:
        resp = self.client.index(index=self._index(kind), id=id, document={"doc": dict(doc), "id": id})
        return Record(id, dict(doc), _version(resp.body))

    def put_many(self, kind: str, docs: Mapping[str, Mapping[str, Any]]) -> int:
        if not docs:
            return 0
        index = self._index(kind)
        operations: list[dict[str, Any]] = []
        for id, doc in docs.items():
            operations += [{"index": {"_index": index, "_id": id}}, {"doc": dict(doc), "id": id}]
        resp = self.client.bulk(operations=operations)
        if resp.get("errors"):
            failed = next(i["index"] for i in resp["items"] if i["index"].get("error"))
            raise SoarError(f"{kind}/{failed.get('_id')}: bulk write failed: {failed['error'].get('reason')}")
        return len(docs)

    def put_many_if(self, kind: str, docs: Mapping[str, tuple[Mapping[str, Any], str | None]]) -> set[str]:
        if not docs:
            return set()
        index = self._index(kind)
        operations: list[dict[str, Any]] = []
        for id, (doc, version) in docs.items():
            if version is None:
                action: dict[str, Any] = {"create": {"_index": index, "_id": id}}
            else:
                seq_no, primary_term = (int(x) for x in version.split(":"))
                action = {"index": {"_index": index, "_id": id, "if_seq_no": seq_no, "if_primary_term": primary_term}}
            operations += [action, {"doc": dict(doc), "id": id}]
        resp = self.client.bulk(operations=operations)
        lost: set[str] = set()
        for item in resp["items"]:
            result = next(iter(item.values()))
            if result.get("status") == 409:
                lost.add(str(result.get("_id")))
            elif result.get("error"):
                raise SoarError(f"{kind}/{result.get('_id')}: bulk write failed: {result['error'].get('reason')}")
        return lost

    def get(self, kind: str, id: str) -> Record | None:
        try:
            resp = self.client.get(index=self._index(kind), id=id)
        except NotFoundError:
            return None
        return Record(id, dict(resp["_source"]["doc"]), _version(resp.body))

    def update(self, kind: str, id: str, doc: Mapping[str, Any], *, version: str) -> Record:
        seq_no, primary_term = (int(x) for x in version.split(":"))
        try:
            resp = self.client.index(
                index=self._index(kind),
                id=id,
                document={"doc": dict(doc), "id": id},
                if_seq_no=seq_no,
                if_primary_term=primary_term,
            )
        except ConflictError as exc:
            raise Conflict(f"{kind}/{id} changed since version {version}") from exc
        return Record(id, dict(doc), _version(resp.body))

    def delete(self, kind: str, id: str) -> bool:
        try:
            self.client.delete(index=self._index(kind), id=id)
        except NotFoundError:
            return False
        return True

    def _query(self, where: Where | None) -> dict[str, Any]:
        filters: list[dict[str, Any]] = []
        must_not: list[dict[str, Any]] = []
        for field, cond in normalise_where(where):
            path = "id" if field == "id" else f"doc.{field}"  # ``id`` is the record's id, stored in the document or not
            if isinstance(cond, Range):
                bounds = {
                    op: _term_value(v)
                    for op, v in (("gte", cond.gte), ("gt", cond.gt), ("lte", cond.lte), ("lt", cond.lt))
                    if v is not None
                }
                filters.append({"range": {path: bounds}})
            elif isinstance(cond, Prefix):
                filters.append({"prefix": {path: cond.value}})
            elif isinstance(cond, tuple):
                filters.append({"terms": {path: [_term_value(v) for v in cond]}})
            elif cond is None:
                must_not.append({"exists": {"field": path}})
            else:
                filters.append({"term": {path: _term_value(cond)}})
        return {"bool": {"filter": filters, "must_not": must_not}}

    def find(
        self,
        kind: str,
        where: Where | None = None,
        *,
        order_by: str | None = None,
        descending: bool = False,
        limit: int = 1000,
    ) -> list[Record]:
        index = self._index(kind)
        self.client.indices.refresh(index=index)
        sort: list[Any] = []
        if order_by:
            sort.append({f"doc.{check_field(order_by)}": {"order": "desc" if descending else "asc"}})
        sort.append({"id": {"order": "asc"}})  # deterministic order within equal keys, as in SQLite
        resp = self.client.search(
            index=index, query=self._query(where), sort=sort, size=min(limit, 10_000), seq_no_primary_term=True
        )
        return [Record(h["_id"], dict(h["_source"]["doc"]), _version(h)) for h in resp["hits"]["hits"]]

    def count(self, kind: str, where: Where | None = None) -> int:
        index = self._index(kind)
        self.client.indices.refresh(index=index)
        return int(self.client.count(index=index, query=self._query(where))["count"])

    def close(self) -> None:
        self.client.close()
