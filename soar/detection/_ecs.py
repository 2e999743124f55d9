"""The official ECS mappings: field types for compiling Sigma, and event indices mapped as real clusters map them.

Real shippers (Elastic Agent integrations, Auditbeat, Filebeat, Elastic Defend) write into
indices whose ECS fields carry these types: case-sensitive ``keyword``, ``wildcard`` for
command lines and paths, ``match_only_text`` for ``message``, ``ip``, ``long``. A field outside
ECS is mapped by the ``strings_as_keyword`` dynamic template (as Fleet's ``ecs@mappings`` does).
The copy in ``integrations/elasticsearch/ecs/`` is the one soar reads (licence and provenance there).
"""

from __future__ import annotations

import copy
import json
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

STRING_TYPES = frozenset({"keyword", "wildcard", "constant_keyword"})
TEXT_TYPES = frozenset({"text", "match_only_text"})
NUMERIC_TYPES = frozenset(
    {"long", "integer", "short", "byte", "unsigned_long", "double", "float", "half_float", "scaled_float"}
)
# Types the Elasticsearch integ-test distribution (open modules only) lacks, and what stands in for them.
# Each keeps Sigma's meaning: see integrations/elasticsearch/ecs/README.md.
OPEN_MODULES_SUBSTITUTES: dict[str, str] = {
    "wildcard": "keyword",
    "match_only_text": "text",
    "constant_keyword": "keyword",
    "scaled_float": "float",
}
_DROPPED_WITH_TYPE = {"scaled_float": ("scaling_factor",), "constant_keyword": ("value",)}


# ECS fields whose values are defined in lower case (ECS "allowed values", and the dataset/module names
# shippers set from their own constants). A value written in lower case is matched exactly there, on both
# engines: real shippers never write another case, and Elasticsearch answers a plain term lookup instead
# of a case-insensitive automaton.
LOWER_CASE_FIELDS = frozenset(
    {
        "event.kind",
        "event.category",
        "event.type",
        "event.outcome",
        "event.dataset",
        "event.module",
        "data_stream.type",
        "data_stream.dataset",
        "data_stream.namespace",
    }
)


def written_in_lower_case(field: str, literal: str) -> bool:
    """Is ``literal`` a lower-case value of a field ECS defines in lower case (matched exactly)?"""
    return field in LOWER_CASE_FIELDS and literal == literal.lower()


def ecs_dir() -> Path:
    """integrations/elasticsearch/ecs (in the repository, or shipped with the package)."""
    in_repo = Path(__file__).resolve().parents[2] / "integrations" / "elasticsearch" / "ecs"
    if in_repo.is_dir():
        return in_repo
    return Path(str(resources.files("integrations"))) / "elasticsearch" / "ecs"


@cache
def _ecs_properties() -> dict[str, Any]:
    properties: dict[str, Any] = {}
    for path in sorted((ecs_dir() / "component").glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        _merge(properties, data["template"]["mappings"]["properties"])
    return properties


def _merge(into: dict[str, Any], more: dict[str, Any]) -> None:
    for name, spec in more.items():
        if name in into and "properties" in into[name] and "properties" in spec:
            _merge(into[name]["properties"], spec["properties"])
        else:
            into[name] = copy.deepcopy(spec)


@cache
def ecs_field_types() -> dict[str, str]:
    """Every ECS leaf field (dotted) -> its Elasticsearch type; multi-fields as ``field.sub``."""
    out: dict[str, str] = {}

    def walk(props: dict[str, Any], prefix: str) -> None:
        for name, spec in props.items():
            full = f"{prefix}{name}"
            if "properties" in spec:
                walk(spec["properties"], f"{full}.")
                continue
            out[full] = str(spec.get("type", "object"))
            for sub, sub_spec in spec.get("fields", {}).items():
                out[f"{full}.{sub}"] = str(sub_spec.get("type"))

    walk(_ecs_properties(), "")
    return out


def field_type(name: str) -> str:
    """The type ``name`` has in an ECS-mapped index: its ECS type, else ``keyword`` (strings_as_keyword)."""
    return ecs_field_types().get(name, "keyword")


def _substitute(props: dict[str, Any], substitutes: dict[str, str]) -> None:
    for spec in props.values():
        if "properties" in spec:
            _substitute(spec["properties"], substitutes)
        kind = spec.get("type")
        if kind in substitutes:
            for key in _DROPPED_WITH_TYPE.get(kind, ()):
                spec.pop(key, None)
            spec["type"] = substitutes[kind]
        for sub in spec.get("fields", {}).values():
            if sub.get("type") in substitutes:
                sub["type"] = substitutes[sub["type"]]


def events_index_mappings(substitutes: dict[str, str] | None = None) -> dict[str, Any]:
    """The mappings of an index holding ECS events: every ECS field typed as ECS says, strings as keywords.

    ``substitutes`` replaces types the server lacks (default: :data:`OPEN_MODULES_SUBSTITUTES`, for the
    integ-test distribution); pass ``{}`` for a cluster with every module.
    """
    template = json.loads((ecs_dir() / "template.json").read_text(encoding="utf-8"))["template"]
    properties = copy.deepcopy(_ecs_properties())
    _substitute(properties, OPEN_MODULES_SUBSTITUTES if substitutes is None else substitutes)
    mappings: dict[str, Any] = dict(template["mappings"])
    mappings["properties"] = properties
    return mappings


def events_index_settings() -> dict[str, Any]:
    """The ECS template's index settings, one shard and no replica.

    Every ECS field set at once (about 3,200 fields with multi-fields) exceeds the sample template's
    3,000-field limit, which Elasticsearch enforces when the template is installed; Fleet maps only an
    integration's own field sets. The limit is raised to 5,000 so the whole of ECS fits one index.
    """
    template = json.loads((ecs_dir() / "template.json").read_text(encoding="utf-8"))["template"]
    settings: dict[str, Any] = copy.deepcopy(template.get("settings", {}))
    index = settings.setdefault("index", {})
    index.update({"number_of_shards": 1, "number_of_replicas": 0})
    index.setdefault("mapping", {}).setdefault("total_fields", {})["limit"] = 5000
    return settings
