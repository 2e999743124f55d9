"""Data streams as Fleet creates them for an integration, for tests that must run on a user's kind of mapping.

Fleet installs, per integration data stream, an index template ``logs-<dataset>`` for
``logs-<dataset>-*`` with ``data_stream: {}``, priority 200 (above any ``logs-*`` template),
composed of component templates holding the ECS mappings and the integration's fields, with
``strings_as_keyword`` dynamic mapping, and ``_meta: {managed_by: fleet}``. This builds the same from
the official ECS component templates (integrations/elasticsearch/ecs/, with the open-modules
substitutions documented there). The test server cannot delete data streams (no x-pack data-streams
API), so the names are fixed and their documents are deleted instead.
"""

from __future__ import annotations

import copy

from elasticsearch import Elasticsearch

from soar.detection._ecs import events_index_mappings, events_index_settings
from soar.detection.elastic import delete_documents


def fleet_data_stream(es: Elasticsearch, dataset: str, namespace: str = "default") -> str:
    """``logs-<dataset>-<namespace>``, mapped as Fleet maps an integration's data stream; emptied."""
    mappings = events_index_mappings()
    settings = events_index_settings()
    es.cluster.put_component_template(
        name=f"logs-{dataset}@package",
        template={"settings": copy.deepcopy(settings), "mappings": mappings},
        meta={"managed_by": "fleet", "managed": True, "package": {"name": dataset.split(".", 1)[0]}},
    )
    es.indices.put_index_template(
        name=f"logs-{dataset}",
        index_patterns=[f"logs-{dataset}-*"],
        data_stream={},
        priority=200,
        composed_of=[f"logs-{dataset}@package"],
        meta={"managed_by": "fleet", "managed": True},
    )
    stream = f"logs-{dataset}-{namespace}"
    if es.options(ignore_status=404).indices.get(index=stream, expand_wildcards="all").meta.status == 404:
        es.index(index=stream, document={"@timestamp": "2000-01-01T00:00:00Z"}, op_type="create", refresh=True)
    delete_documents(es, stream, {"match_all": {}})
    return stream
