"""``ecs_linux`` per real source: one pySigma pipeline for each shipper that can carry a Sigma log source.

A Sigma log source such as ``category: process_creation`` reaches Elasticsearch from several
shippers, each with its own fields: Elastic Defend writes ``process.command_line``, Auditbeat
and auditd_manager only ``process.title`` and ``process.args``, the Filebeat-style auditd
integration neither. ``sources.yml`` says, per source and log source, which documents are the
source's (conditions), where each Sigma field lives (fields) and what the source never writes
(lacks). A rule is compiled once per source that carries its log source; a rule needing a field a
source lacks leaves that source out (:class:`SourceLacksField`), and coverage reports it.

A source recognised by ECS categorisation alone (``endpoint``: no ``event.dataset``,
``data_stream.dataset`` or ``event.module`` among its conditions) would also pick every other
source's documents of the same kind, where the rule's fields mean what that source's mapping says
(or are never written, so a ``not`` filter on them always passes). Its branch of a rule therefore
excludes the documents of every other source carrying the log source, by the identifying part of
their own conditions (:func:`exclusions`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from sigma.correlations import SigmaCorrelationRule
from sigma.exceptions import SigmaTransformationError
from sigma.processing.pipeline import ProcessingItem, ProcessingPipeline
from sigma.rule import SigmaRule

from soar.detection.pipelines._strict import ACCEPTED, StrictEcsLinuxFields, _fields, _logsource_key


class SourceLacksField(SigmaTransformationError):
    """The rule needs a field this source never writes: the source is left out of the rule's query."""


@dataclass(frozen=True)
class SourceMapping:
    source: str
    logsource: str  # "category:process_creation", "service:sshd"
    conditions: dict[str, Any]
    fields: dict[str, str]
    lacks: frozenset[str]


@dataclass(frozen=True)
class Source:
    name: str
    shipper: str
    logsources: dict[str, SourceMapping]


def sources_yaml_path() -> Path:
    return Path(str(resources.files("soar.detection.pipelines") / "sources.yml"))


def sources_identity() -> str:
    """sources.yml and the code that turns it into pipelines (exclusions, conditions): the compile cache's key."""
    digest = hashlib.sha256(sources_yaml_path().read_bytes())
    digest.update(Path(__file__).read_bytes())
    return digest.hexdigest()[:16]


@cache
def load_sources() -> dict[str, Source]:
    """Every source of ``sources.yml``, by name, in file order."""
    data = yaml.safe_load(sources_yaml_path().read_text(encoding="utf-8"))
    out: dict[str, Source] = {}
    for name, spec in data["sources"].items():
        mappings = {
            key: SourceMapping(
                name,
                key,
                dict(entry.get("conditions") or {}),
                dict(entry.get("fields") or {}),
                frozenset(entry.get("lacks") or ()),
            )
            for key, entry in spec["logsources"].items()
        }
        out[name] = Source(name, str(spec.get("shipper", name)), mappings)
    return out


def sources_for(logsource_key: str) -> list[SourceMapping]:
    """The sources that carry a log source, in file order."""
    return [s.logsources[logsource_key] for s in load_sources().values() if logsource_key in s.logsources]


# The condition fields that name a source's documents (its integration, data stream or module), rather
# than the kind of event (event.category, event.type, event.code, event.action, process.name).
IDENTIFYING_FIELDS = ("event.dataset", "data_stream.dataset", "event.module")


def identifying_conditions(mapping: SourceMapping) -> dict[str, Any]:
    """The part of a source's conditions that says whose documents they are (empty: ECS categorisation only)."""
    return {k: v for k, v in mapping.conditions.items() if k in IDENTIFYING_FIELDS}


@cache
def exclusions(source: str, logsource: str) -> tuple[dict[str, Any], ...]:
    """The documents a generic source's branch must not pick: every other source's for this log source.

    Only a source recognised by categorisation alone (no identifying condition) excludes anything; each
    other source carrying the log source contributes its identifying conditions once (AND-ed, as its own
    conditions are), e.g. ``{event.dataset: sysmon_linux.log}``, ``{event.module: auditd}``.
    """
    mapping = load_sources()[source].logsources[logsource]
    if identifying_conditions(mapping):
        return ()
    out: list[dict[str, Any]] = []
    for other in sources_for(logsource):
        ident = identifying_conditions(other)
        if other.source != source and ident and ident not in out:
            out.append(ident)
    return tuple(out)


def condition_count(source: str, logsource: str) -> int:
    """How many clauses a source adds to a rule for a log source (the first clauses of its AND).

    Its exclusions (one ``not`` clause per excluded source) come first, then one clause per condition field.
    """
    return len(exclusions(source, logsource)) + len(load_sources()[source].logsources[logsource].conditions)


def rule_logsource_key(rule: SigmaRule | SigmaCorrelationRule) -> str | None:
    """``category:x``/``service:x`` of a Linux rule whose log source some source carries, else None."""
    if not isinstance(rule, SigmaRule) or rule.logsource.product != "linux":
        return None
    key = _logsource_key(rule)
    return key if key is not None and sources_for(key) else None


@dataclass
class StrictSourceFields(StrictEcsLinuxFields):
    """The strict check for one source: a field it lacks (or a Sigma name only other sources map) leaves it out."""

    source: str = ""
    logsource: str = ""
    lacks: frozenset[str] = frozenset()
    others: frozenset[str] = frozenset()  # Sigma names other sources map for this log source

    def apply(self, rule: SigmaRule | SigmaCorrelationRule) -> None:
        if isinstance(rule, SigmaRule):
            for detection in rule.detection.detections.values():
                for name in _fields(detection):
                    if name in self.lacks or name in self.others:
                        raise SourceLacksField(f"{self.source} does not write {name}", source=rule.source)
        super().apply(rule)


def _condition(key: str) -> dict[str, str]:
    kind, value = key.split(":", 1)
    return {"type": "logsource", "product": "linux", kind: value}


@cache
def source_pipeline(source: str, logsource: str) -> ProcessingPipeline:
    """The pySigma pipeline of one source for one log source: mapping, conditions, strict field check."""
    mapping = load_sources()[source].logsources[logsource]
    items: list[dict[str, Any]] = []
    if mapping.fields:
        items.append(
            {
                "id": f"{source}_{logsource}_fields",
                "type": "field_name_mapping",
                "mapping": mapping.fields,
                "rule_conditions": [_condition(logsource)],
            }
        )
    items.append(
        {
            "id": f"{source}_{logsource}_logsource",
            "type": "add_condition",
            "conditions": mapping.conditions,
            "rule_conditions": [_condition(logsource)],
        }
    )
    # Each added condition goes before the rule's: the last one added comes first, so the exclusions are
    # added in reverse to read in sources.yml's order.
    for n, excluded in reversed(list(enumerate(exclusions(source, logsource)))):
        items.append(
            {
                "id": f"{source}_{logsource}_not_{n}",
                "type": "add_condition",
                "conditions": excluded,
                "negated": True,
                "rule_conditions": [_condition(logsource)],
            }
        )
    base = ProcessingPipeline.from_dict({"name": f"ecs_linux/{source}", "priority": 20, "transformations": items})
    known = set(ACCEPTED.get(logsource, ())) | set(mapping.fields.values()) | set(mapping.conditions)
    known |= {name for excluded in exclusions(source, logsource) for name in excluded}
    others = {name for other in sources_for(logsource) for name in other.fields} - set(mapping.fields)
    strict = StrictSourceFields(
        known={logsource: known - mapping.lacks},
        sigma_names={logsource: set(mapping.fields) | others},
        source=source,
        logsource=logsource,
        lacks=mapping.lacks,
        others=frozenset(others),
    )
    pipeline = base + ProcessingPipeline(items=[ProcessingItem(strict, identifier="ecs_linux_strict_fields")])
    pipeline.name = base.name
    return pipeline


@dataclass
class SourceCoverage:
    """Which sources a compiled rule searches, and why the others that carry its log source are left out."""

    searched: list[str] = field(default_factory=list)
    left_out: dict[str, str] = field(default_factory=dict)
