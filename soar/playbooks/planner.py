"""Expand a step for one alert: ``when``, ``for_each``, rendered and validated parameters, targets.

Pure over its inputs (the registry only validates; the inventory only resolves).
The same expansion drives the dry-run plan and the real run, so a plan shows
exactly what a run would do.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from soar.actions import ActionRegistry
from soar.errors import SoarError
from soar.playbooks import outcomes, templating
from soar.playbooks.model import Step
from soar.policy import Target
from soar.records import TargetRef
from soar.records._read import Reader

MAX_FOR_EACH = 100


@dataclass
class Instance:
    key: str  # "block" or "block[2]"
    params: dict[str, Any]
    targets: list[Target] = field(default_factory=list)
    item: Any = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "params": self.params,
            "targets": [target_dict(t) for t in self.targets],
            "item": self.item,
        }


@dataclass
class Expansion:
    skipped: bool = False
    reason: str = ""
    instances: list[Instance] = field(default_factory=list)
    error: str | None = None


def target_dict(t: Target) -> dict[str, Any]:
    return {
        "kind": t.kind,
        "value": t.value,
        "name": t.name,
        "address": t.address,
        "aliases": list(t.aliases),
        "labels": dict(t.labels),
        "protected_accounts": list(t.protected_accounts),
        "key": t.key,
    }


def target_ref(t: Target) -> TargetRef:
    """How a run records a target it acts on."""
    return TargetRef.read(Reader("runs", "?", target_dict(t), "targets"))


def target_of(ref: TargetRef) -> Target:
    """The policy's target of a recorded one."""
    return Target(
        kind=ref.kind,
        value=ref.value,
        name=ref.name,
        address=ref.address,
        aliases=tuple(ref.aliases),
        labels=dict(ref.labels),
        protected_accounts=tuple(ref.protected_accounts),
    )


def context(alert: Mapping[str, Any], inputs: Mapping[str, Any], steps: Mapping[str, Any]) -> dict[str, Any]:
    return {"alert": alert, "inputs": inputs, "steps": steps}


def targets_of(targets_spec: Mapping[str, str], params: Mapping[str, Any], inventory: Any) -> list[Target]:
    """What the parameters name, hosts resolved through the inventory (labels come only from there)."""
    out: list[Target] = []
    for pname, kind in targets_spec.items():
        raw = params.get(pname)
        values = raw if isinstance(raw, list) else [raw]
        for value in values:
            if value is None:
                continue
            text = str(value)
            if kind == "host" and inventory is not None:
                try:
                    host = inventory.resolve(text, pname)
                except SoarError:
                    out.append(Target("host", text))
                    continue
                out.append(
                    Target(
                        "host",
                        text,
                        name=host.name,
                        address=host.address,
                        aliases=tuple(host.aliases),
                        labels=dict(host.labels),
                        protected_accounts=tuple(host.protected_accounts),
                    )
                )
            else:
                out.append(Target(kind, text))
    return out


def expand(
    step: Step,
    ctx: Mapping[str, Any],
    registry: ActionRegistry,
    inventory: Any = None,
) -> Expansion:
    """Render one step for the context; a template or parameter problem is returned, not raised."""
    try:
        if step.when is not None and not templating.evaluate(step.when, ctx):
            return Expansion(skipped=True, reason=outcomes.skip_reason("condition", step.when))
        items: list[Any] = [None]
        if step.for_each is not None:
            rendered = templating.render_value(step.for_each, ctx)
            if isinstance(rendered, str | bytes) or not isinstance(rendered, list | tuple):
                rendered = [rendered]
            items = list(rendered)
            if len(items) > MAX_FOR_EACH:
                return Expansion(error=f"for_each: {len(items)} items exceeds the limit of {MAX_FOR_EACH}")
            if not items:
                return Expansion(skipped=True, reason=outcomes.skip_reason("no_items", str(step.for_each)))
        action = registry.get(step.uses)
        instances: list[Instance] = []
        for i, item in enumerate(items):
            item_ctx = {**ctx, "item": item} if step.for_each is not None else ctx
            params = templating.render_value(dict(step.with_), item_ctx)
            params = action.validate(params)
            key = f"{step.id}[{i}]" if step.for_each is not None else step.id
            instances.append(Instance(key, params, targets_of(action.spec.targets, params, inventory), item))
        return Expansion(instances=instances)
    except templating.TemplateProblem as exc:
        return Expansion(error=f"step {step.id}: {exc}")
    except SoarError as exc:
        return Expansion(error=f"step {step.id}: {exc}")


def literal_instance(key: str, params: dict[str, Any], registry: ActionRegistry, uses: str, inventory: Any) -> Instance:
    """An instance whose parameters are already rendered values (reverts): never rendered again."""
    action = registry.get(uses)
    fields = action.params.model_fields
    kept = action.validate({k: v for k, v in params.items() if k in fields})
    return Instance(key, kept, targets_of(action.spec.targets, kept, inventory))
