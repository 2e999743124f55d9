"""The strict half of ``ecs_linux``: a Linux rule may only use fields the pipeline knows.

A field is known for a log source when ``ecs_linux.yml`` maps a Sigma name to it, when it is
one of the log-source condition fields, or when it is an ECS field accepted as-is for that
log source (the tables below, which follow docs/ecs-linux-pipeline.md). Anything else fails
the rule with a message naming the field, instead of a query that silently never matches.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml
from sigma.correlations import SigmaCorrelationRule
from sigma.exceptions import SigmaTransformationError
from sigma.processing.pipeline import ProcessingPipeline
from sigma.processing.transformations.base import PreprocessingTransformation
from sigma.rule import SigmaDetection, SigmaDetectionItem, SigmaRule

_SYSTEM = [
    "user.name",
    "user.id",
    "user.effective.name",
    "source.ip",
    "source.port",
    "event.outcome",
    "event.action",
    "event.category",
    "event.type",
    "process.name",
    "message",
    "host.name",
    "host.hostname",
    "system.auth.ssh.event",
    "system.auth.ssh.method",
    "system.auth.sudo.command",
    "system.auth.sudo.user",
    "system.auth.sudo.error",
    "system.auth.sudo.tty",
    "system.auth.sudo.pwd",
    "group.name",
]

# Log source (as "category:x" or "service:x") -> ECS fields accepted as they are.
ACCEPTED: dict[str, tuple[str, ...]] = {
    "category:process_creation": tuple(
        [
            "process.name",
            "process.args",
            "process.parent.name",
            "process.parent.args",
            "user.id",
            "user.effective.name",
            "user.effective.id",
            "group.name",
            "host.name",
            "event.action",
            "process.hash.sha256",
        ]
    ),
    "category:file_event": tuple(
        [
            "file.name",
            "file.extension",
            "file.directory",
            "file.mode",
            "file.uid",
            "file.owner",
            "event.action",
            "event.type",
            "process.name",
            "host.name",
        ]
    ),
    "category:network_connection": tuple(
        [
            "process.name",
            "process.parent.executable",
            "process.parent.name",
            "network.direction",
            "network.transport",
            "event.action",
            "host.name",
        ]
    ),
    "service:auth": tuple(_SYSTEM),
    "service:sshd": tuple(_SYSTEM),
    "service:sudo": tuple(_SYSTEM),
    "service:syslog": tuple(_SYSTEM),
    "service:cron": tuple(_SYSTEM),
    # product: linux with no category or service: every Linux log line (system auth and syslog documents)
    "product:linux": (*_SYSTEM, "event.dataset"),
    "service:auditd": tuple(
        [
            "event.action",
            "event.outcome",
            "event.category",
            "event.type",
            "process.args",
            "process.command_line",
            "process.title",
            "user.name",
            "user.audit.name",
            "file.path",
            "file.mode",
            "auditd.summary.actor.primary",
            "auditd.summary.object.primary",
            "auditd.summary.how",
            # CONFIG_CHANGE record fields: auditd_manager/Auditbeat keep them under auditd.data, the
            # Filebeat-style integration under auditd.log (each absent from the other's documents)
            "auditd.data.op",
            "auditd.data.audit_enabled",
            "auditd.log.op",
            "auditd.log.audit_enabled",
            "user.effective.id",
            "host.name",
            "tags",
        ]
    ),
}


def _logsource_key(rule: SigmaRule) -> str | None:
    ls = rule.logsource
    if ls.category is not None and f"category:{ls.category}" in ACCEPTED and ls.service is None:
        return f"category:{ls.category}"
    if ls.service is not None and f"service:{ls.service}" in ACCEPTED and ls.category is None:
        return f"service:{ls.service}"
    if ls.product == "linux" and ls.category is None and ls.service is None:
        return "product:linux"
    return None


def known_fields_from_yaml(data: dict[str, Any], sigma_names: bool = False) -> dict[str, set[str]]:
    """Log source key -> fields the YAML pipeline produces for it (mapping targets, condition fields);
    with ``sigma_names``, the Sigma names it maps instead (for suggestions)."""
    out: dict[str, set[str]] = {} if sigma_names else {key: set(fields) for key, fields in ACCEPTED.items()}
    for item in data.get("transformations", []):
        fields: set[str] = set()
        if item.get("type") == "field_name_mapping":
            if sigma_names:
                fields.update(item.get("mapping", {}))
            else:
                for target in item.get("mapping", {}).values():
                    fields.update([target] if isinstance(target, str) else target)
        elif item.get("type") == "add_condition" and not sigma_names:
            fields.update(item.get("conditions", {}))
        for cond in item.get("rule_conditions", []):
            for kind in ("category", "service"):
                if kind in cond:
                    out.setdefault(f"{kind}:{cond[kind]}", set()).update(fields)
    return out


def suggestion(name: str, candidates: set[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest known field, case and separators aside; else nothing."""
    import difflib

    def norm(field_name: str) -> str:
        return field_name.lower().replace("_", "").replace(".", "")

    by_norm = {norm(c): c for c in sorted(candidates)}
    close = difflib.get_close_matches(norm(name), list(by_norm), n=1, cutoff=0.85)
    return f" (did you mean '{by_norm[close[0]]}'?)" if close else ""


def _fields(detection: SigmaDetection) -> list[str]:
    found: list[str] = []
    for item in detection.detection_items:
        if isinstance(item, SigmaDetection):
            found.extend(_fields(item))
        elif isinstance(item, SigmaDetectionItem) and item.field is not None:
            found.append(item.field)
    return found


@dataclass
class StrictEcsLinuxFields(PreprocessingTransformation):
    """Fail a ``product: linux`` rule on an unsupported log source or a field the pipeline does not know."""

    known: dict[str, set[str]] = field(default_factory=dict)
    sigma_names: dict[str, set[str]] = field(default_factory=dict)

    @classmethod
    def from_pipeline(cls, base: ProcessingPipeline) -> StrictEcsLinuxFields:
        from soar.detection.pipelines import ecs_linux_yaml_path

        data = yaml.safe_load(ecs_linux_yaml_path().read_text(encoding="utf-8"))
        return cls(known=known_fields_from_yaml(data), sigma_names=known_fields_from_yaml(data, sigma_names=True))

    def apply(self, rule: SigmaRule | SigmaCorrelationRule) -> None:
        super().apply(rule)
        if not isinstance(rule, SigmaRule) or rule.logsource.product != "linux":
            return
        key = _logsource_key(rule)
        if key is None:
            ls = rule.logsource
            shown = ", ".join(f"{k}: {v}" for k in ("product", "category", "service") if (v := getattr(ls, k)))
            raise SigmaTransformationError(
                f"log source '{shown}' is not supported by ecs_linux "
                f"(supported: {', '.join(sorted(k.split(':', 1)[1] for k in ACCEPTED))})",
                source=rule.source,
            )
        known = self.known.get(key, set())
        for detection in rule.detection.detections.values():
            for name in _fields(detection):
                if name not in known:
                    hint = suggestion(name, known | self.sigma_names.get(key, set()))
                    raise SigmaTransformationError(
                        f"field '{name}' is not mapped by ecs_linux for {key.replace(':', ': ')}{hint} "
                        "(soar's docs/ecs-linux-pipeline.md lists the mapped and accepted fields)",
                        source=rule.source,
                    )
