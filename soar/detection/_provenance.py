"""Fixtures that claim a real shipper: every field must be one that shipper can write.

A fixture entry ``{provenance: {source: …, integration: …, integration_version: …, file: …}, event: …}``
says the event is a document as that source writes it (values changed at most). A field that is
neither an ECS field nor one the source's integration declares (``soar/data/shipper_fields/``,
flattened from the integrations' ``fields/*.yml``, provenance in each file's header) was invented:
the fixture fails at its line.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterator, Mapping
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from soar.detection._ecs import ecs_field_types

# soar's source (pipelines/sources.yml) -> the field lists of the shippers behind it.
SOURCE_FIELD_LISTS: dict[str, tuple[str, ...]] = {
    "endpoint": ("endpoint",),
    "sysmon_linux": ("sysmon_linux",),
    "auditd_manager": ("auditd_manager", "auditbeat_auditd"),
    "auditd_log": ("auditd_log",),
    "file_integrity": ("fim", "auditbeat_file_integrity"),
    "system": ("system_auth", "system_syslog"),
}
# Fields Elastic Agent itself adds to every document, declared by Fleet rather than by each integration.
AGENT_FIELDS = frozenset(
    {
        "elastic_agent.id",
        "elastic_agent.snapshot",
        "elastic_agent.version",
        "input.type",
        "host.containerized",
        "host.os.codename",
    }
)


def _lists_dir() -> Path:
    return Path(str(resources.files("soar") / "data" / "shipper_fields"))


@cache
def declared_fields(source: str) -> frozenset[str]:
    """The fields the integrations behind ``source`` declare (empty for an unknown source)."""
    names: set[str] = set()
    for listing in SOURCE_FIELD_LISTS.get(source, ()):
        path = _lists_dir() / f"{listing}.txt"
        for line in path.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                names.add(line)
    return frozenset(names)


@cache
def _ecs_objects() -> tuple[frozenset[str], frozenset[str]]:
    """(ECS leaf fields, ECS fields whose values are free-form objects: ``object``/``flattened``/``nested``)."""
    types = ecs_field_types()
    free = frozenset(k for k, v in types.items() if v in ("object", "flattened", "nested", "geo_point"))
    return frozenset(types), free


def leaves(event: Mapping[str, Any], prefix: str = "") -> Iterator[str]:
    for key, value in event.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            yield from leaves(value, f"{name}.")
        else:
            yield name


@cache
def _patterns(source: str) -> tuple[re.Pattern[str], ...]:
    """Declared names with a wildcard (``auditd.data.a*``: fields.yml's dynamic fields) as patterns."""
    return tuple(re.compile(fnmatch.translate(n)) for n in declared_fields(source) if "*" in n)


def _known(name: str, declared: frozenset[str], source: str) -> bool:
    ecs, free = _ecs_objects()
    if name in ecs or name in declared or name in AGENT_FIELDS:
        return True
    if any(p.match(name) for p in _patterns(source)):
        return True
    parts = name.split(".")
    # Below an object ECS leaves open (labels, *.geo.location, flattened fields) any key is the shipper's.
    return any(".".join(parts[:i]) in free for i in range(1, len(parts)))


def invented_fields(event: Mapping[str, Any], source: str) -> list[str]:
    """The fields of ``event`` that neither ECS nor ``source``'s integrations declare."""
    if source not in SOURCE_FIELD_LISTS:
        return []
    declared = declared_fields(source)
    return [name for name in leaves(event) if not _known(name, declared, source)]
