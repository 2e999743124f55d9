"""What a rule pack covers: log sources, the ECS fields it reads, ATT&CK techniques, and what cannot compile."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sigma.exceptions import SigmaError
from sigma.rule import SigmaDetection, SigmaDetectionItem, SigmaRule

from soar.detection._attack import techniques
from soar.detection._compile import Compiler, _fresh
from soar.detection._loading import RuleSet
from soar.detection._validate import TECHNIQUE
from soar.detection.pipelines._sources import load_sources
from soar.errors import ContentError


def _fields(detection: SigmaDetection) -> set[str]:
    out: set[str] = set()
    for item in detection.detection_items:
        if isinstance(item, SigmaDetection):
            out |= _fields(item)
        elif isinstance(item, SigmaDetectionItem) and item.field:
            out.add(item.field)
    return out


def coverage(ruleset: RuleSet, pipelines: Sequence[str] = ("ecs_linux",)) -> dict[str, Any]:
    """Per rule: log source, mapped fields, techniques, whether (and why not) it compiles, and per real source
    whether its query searches that source's documents (``sources``) or why not (``left_out``)."""
    names = techniques()
    compiler = Compiler("elasticsearch", pipelines)
    rows: list[dict[str, Any]] = []
    by_logsource: dict[str, list[str]] = defaultdict(list)
    by_technique: dict[str, list[str]] = defaultdict(list)
    for rule in ruleset.rules:
        error: str | None = None
        fields: set[str] = set()
        searched: list[str] = []
        left_out: dict[str, str] = {}
        try:
            compiled = compiler.compile(rule, ruleset)
            for part in [compiled, *(compiled.correlation.rules if compiled.correlation else ())]:
                searched += [s for s in part.sources if s not in searched]
                left_out.update({k: v for k, v in part.left_out.items() if k not in searched})
            if compiled.correlation is not None:  # what a correlation reads: its group-by and value fields
                spec = compiled.correlation
                read = [spec.fields_of(base.rule_id) for base in spec.rules if base.correlation is None]
                fields |= {*(f for names in read for f in names), *([spec.field] if spec.field else [])}
        except ContentError as exc:
            error = str(exc)
        if rule.kind == "rule" and error is None:
            fresh = _fresh(rule)
            assert isinstance(fresh, SigmaRule)
            try:
                compiler.backend.processing_pipeline.apply(fresh)
                for detection in fresh.detection.detections.values():
                    fields |= _fields(detection)
            except SigmaError:  # pragma: no cover - it compiled above
                pass
        logsource = "/".join(f"{k}:{v}" for k, v in rule.logsource.items()) or rule.kind
        techs = sorted({str(t)[len("attack.") :].upper() for t in rule.tags if TECHNIQUE.match(str(t))})
        by_logsource[logsource].append(rule.id)
        for tech in techs:
            by_technique[tech].append(rule.id)
        rows.append(
            {
                "id": rule.id,
                "title": rule.title,
                "path": str(rule.path),
                "logsource": logsource,
                "fields": sorted(fields),
                "techniques": techs,
                "compiles": error is None,
                "error": error,
                "sources": searched,
                "left_out": {k: v for k, v in left_out.items() if k not in searched},
            }
        )
    return {
        "rules": rows,
        "logsources": {k: len(v) for k, v in sorted(by_logsource.items())},
        "techniques": {
            k: {"name": names.get(k, "unknown technique"), "rules": len(v)} for k, v in sorted(by_technique.items())
        },
        "sources": list(load_sources()),
        "failed": [r for r in rows if not r["compiles"]],
        "load_errors": [str(e) for e in ruleset.errors],
    }
