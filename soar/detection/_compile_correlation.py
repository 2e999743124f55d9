"""Compiling a Sigma correlation rule: its base rules, window, group-by, aliases and condition.

The result is a :class:`CorrelationSpec` that :func:`soar.detection._correlate.evaluate_correlation`
applies on either engine. Two Sigma v2 features need more than pySigma gives:

- **aliases** (``correlation.aliases``: a group-by name standing for a differently named field
  in each base rule). pySigma maps alias fields with the correlation's pipeline items, which
  ignores each base rule's log source; here each alias field is mapped as a detection field of
  its own base rule would be, so an unmapped field fails loudly at the alias's line.
- **chained correlations** (a base rule that is itself a correlation): its matches are the
  events (see :func:`soar.detection._correlate.chained_events`), so every group-by field (and the
  condition's field) must be one of its group-by fields; a loop of references is an error.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sigma.collection import SigmaCollection
from sigma.correlations import SigmaCorrelationRule
from sigma.exceptions import SigmaError, SigmaRuleLocation
from sigma.rule import SigmaDetectionItem, SigmaRule

from soar.detection._compiled import CompiledRule, CorrelationSpec
from soar.detection._loading import Rule, RuleSet, sigma_error

if TYPE_CHECKING:
    from soar.detection._compile import Compiler

TYPES = ("event_count", "value_count", "value_sum", "value_avg", "temporal", "temporal_ordered")


def compile_correlation(
    compiler: Compiler, rule: Rule, ruleset: RuleSet | None, chain: tuple[str, ...]
) -> CorrelationSpec:
    """The spec of the correlation ``rule``; ``chain`` holds the correlations that led here (loops)."""
    fresh = SigmaCorrelationRule.from_dict(rule.data, source=SigmaRuleLocation(rule.path))
    if ruleset is None:
        raise rule.error("a correlation rule compiles only with the rule set holding its base rules", "correlation")
    by_id = ruleset.by_id
    bases: list[CompiledRule] = []
    base_rules: list[Rule] = []
    for i, ref in enumerate(rule.references):
        base_rule = by_id.get(ref)
        if base_rule is None:
            raise rule.error(f"correlation refers to unknown rule '{ref}'", "correlation", "rules", i)
        if base_rule.id in (*chain, rule.id):
            raise rule.error(f"correlation chain loops back to '{ref}'", "correlation", "rules", i)
        bases.append(compiler.compile(base_rule, ruleset, chain=(*chain, rule.id)))
        base_rules.append(base_rule)
    try:
        fresh.resolve_rule_references(SigmaCollection([r.sigma for r in ruleset.rules], resolve_references=False))
        compiler.backend.processing_pipeline.apply(fresh)  # maps group-by fields like the base rules' fields
    except SigmaError as exc:
        raise sigma_error(exc, rule.path, rule.positions) from exc
    condition = fresh.condition
    op = getattr(condition, "op", None)
    field_ref = getattr(condition, "fieldref", None)
    if isinstance(field_ref, list):
        field_ref = field_ref[0] if field_ref else None
    if field_ref is not None:
        field_ref = compiler.map_field(field_ref)
    kind = str(fresh.type.name).lower()
    if kind in ("value_count", "value_sum", "value_avg") and not field_ref:
        raise rule.error(f"a {kind} correlation needs condition.field", "correlation", "condition")
    if kind not in TYPES:
        raise rule.error(f"correlation type {kind} is not supported", "correlation", "type")
    group_by = tuple(fresh.group_by or ())
    spec = CorrelationSpec(
        rule_id=rule.id,
        type=kind,
        rules=tuple(bases),
        group_by=group_by,
        timespan=int(fresh.timespan.seconds),
        op=op.name.lower() if op is not None and rule.data.get("correlation", {}).get("condition") else None,
        count=float(getattr(condition, "count", 0) or 0),
        field=field_ref,
        rule_fields=_alias_fields(compiler, rule, base_rules, group_by, field_ref, by_id),
    )
    _check_fields(compiler, rule, base_rules, spec, rule.data.get("correlation", {}).get("aliases"))
    _check_chained(rule, spec)
    return spec


def _alias_fields(
    compiler: Compiler,
    rule: Rule,
    base_rules: list[Rule],
    group_by: tuple[str, ...],
    field_ref: str | None,
    by_id: dict[str, Rule],
) -> dict[str, tuple[str, ...]]:
    """Per base rule id, the fields behind ``group_by`` when some group-by names are aliases (else empty)."""
    aliases: Any = rule.data.get("correlation", {}).get("aliases") or {}
    if not isinstance(aliases, dict) or not aliases:
        return {}
    where = ("correlation", "aliases")
    if field_ref in aliases:
        raise rule.error(f"alias '{field_ref}' in condition.field: aliases name group-by fields only", *where)
    ids = {r.id for r in base_rules}
    per_alias: dict[str, dict[str, str]] = {}
    for alias, mapping in aliases.items():
        if not isinstance(mapping, dict):
            raise rule.error(f"alias '{alias}' must map rule names or ids to field names", *where, alias)
        per_alias[alias] = {}
        for ref, name in mapping.items():
            target = by_id.get(str(ref))
            if target is None or target.id not in ids:
                raise rule.error(
                    f"alias '{alias}' names '{ref}', which is not a rule of this correlation", *where, alias, ref
                )
            if not isinstance(name, str) or not name:
                raise rule.error(f"alias '{alias}': the field for '{ref}' must be a field name", *where, alias, ref)
            label = f"alias '{alias}' for rule '{ref}'"
            per_alias[alias][target.id] = _base_field(compiler, rule, target, name, (*where, alias, ref), label)
    used = [name for name in group_by if name in per_alias]
    if not used:
        return {}
    out: dict[str, tuple[str, ...]] = {}
    for base in base_rules:
        for alias in used:
            if base.id not in per_alias[alias]:
                raise rule.error(f"alias '{alias}' names no field for rule '{base.name or base.id}'", *where, alias)
        out[base.id] = tuple(per_alias[name][base.id] if name in per_alias else name for name in group_by)
    return out


def _base_field(compiler: Compiler, rule: Rule, base: Rule, name: str, where: tuple[str | int, ...], label: str) -> str:
    """``name`` as the pipelines map it in the events of ``base`` (a chained correlation: as it groups)."""
    if base.kind == "correlation":
        return compiler.map_field(name)
    probe = SigmaRule.from_dict(
        {
            "title": "alias",
            "logsource": base.data.get("logsource") or {},
            "detection": {"f": {name: "x"}, "condition": "f"},
        }
    )
    try:
        compiler.backend.processing_pipeline.apply(probe)
    except SigmaError as exc:
        raise rule.error(f"{label}: {exc.args[0] if exc.args else exc}", *where) from exc
    items = probe.detection.detections["f"].detection_items
    item = items[0] if len(items) == 1 else None
    if not isinstance(item, SigmaDetectionItem) or item.field is None:
        raise rule.error(f"{label}: field '{name}' maps to several fields", *where)
    return str(item.field)


def _check_fields(compiler: Compiler, rule: Rule, base_rules: list[Rule], spec: CorrelationSpec, aliases: Any) -> None:
    """Every group-by field (not an alias) and the condition's field must be known in each base rule's
    events, mapped as the correlation maps it: the pipeline maps them whatever the log source, and an
    unknown field would put every event in no group — a correlation that never fires, silently."""
    data: Any = rule.data.get("correlation") or {}
    raw_group = data.get("group-by") or []
    raw_field = (data.get("condition") or {}).get("field") if isinstance(data.get("condition"), dict) else None
    names: list[tuple[str, str, tuple[str | int, ...]]] = [
        (str(raw), mapped, ("correlation", "group-by", i))
        for i, (raw, mapped) in enumerate(zip(raw_group, spec.group_by, strict=False))
        if not (isinstance(aliases, dict) and raw in aliases)
    ]
    if isinstance(raw_field, str) and spec.field is not None:
        names.append((raw_field, spec.field, ("correlation", "condition", "field")))
    for base in base_rules:
        if base.kind == "correlation":
            continue  # a chained correlation's matches carry its group-by fields (_check_chained)
        for raw, mapped, where in names:
            label = f"correlation field for rule '{base.name or base.id}'"
            found = _base_field(compiler, rule, base, raw, where, label)
            if found != mapped:
                raise rule.error(
                    f"{label}: its events hold '{raw}' as '{found}', not '{mapped}' (name it per rule with aliases)",
                    *where,
                )


def _check_chained(rule: Rule, spec: CorrelationSpec) -> None:
    """A chained correlation's matches carry only its group-by values: every field read must be one."""
    for base in spec.rules:
        inner = base.correlation
        if inner is None:
            continue
        carried = set(inner.group_by)
        for name in (*spec.fields_of(base.rule_id), *([spec.field] if spec.field else [])):
            if name not in carried:
                shown = ", ".join(inner.group_by) or "none"
                raise rule.error(
                    f"field '{name}' is not a group-by field of the chained correlation '{base.name or base.rule_id}' "
                    f"(its matches carry: {shown})",
                    *(("correlation", "group-by") if name in spec.group_by else ("correlation", "condition")),
                )
