"""What a record is scoped by: the inventory's labels of the hosts it concerns, never the record's own claims.

Alert data is attacker-controlled. An alert that says ``attributes: {env: staging}`` (or carries
``host.labels``) for a host the inventory labels ``env=prod`` must not let staging approvers act on
it, so access decisions never read attributes from the record. Instead the hosts a record names
(``host.name``, ``host.hostname``, ``host.ip``; an approval's target parameters) are resolved in
the inventory (name, alias or address, exactly) and each resolved host's labels are one *scope*.
A principal must be allowed in every scope of a record. A record that names no inventory host has
one empty scope: unscoped principals may act on it, scoped ones may not (fail closed).

A rule may add attributes of its own (``soar: {attributes: {team: identity}}`` in the rule file): soar's
detection writes them into the alert's ``inventory`` field, and every scope of the alert carries them
under the hosts' labels (a label of the same name wins). Alerts from the webhook or a file get none.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from soar.config import Settings
from soar.errors import ConfigError, SoarError
from soar.records import Approval, Run

HOST_FIELDS = ("name", "hostname", "ip")


@dataclass(frozen=True)
class Scope:
    """One inventory host a record concerns (``None`` for a record naming none) and its labels."""

    host: str | None
    labels: Mapping[str, str]

    def to_doc(self) -> dict[str, Any]:
        return {"host": self.host, "labels": dict(self.labels)}


UNSCOPED = (Scope(None, {}),)


def _host_values(host: Any) -> list[str]:
    if not isinstance(host, Mapping):
        return []
    out: list[str] = []
    for name in HOST_FIELDS:
        value = host.get(name)
        for v in value if isinstance(value, list) else [value]:
            if isinstance(v, str) and v.strip() and len(v) <= 255:
                out.append(v)
    return out


def _strings(value: Any, depth: int = 0) -> Iterable[str]:
    """Every short string in a parameter structure (approval targets), bounded in depth."""
    if isinstance(value, str):
        if 0 < len(value) <= 255:
            yield value
    elif depth < 4 and isinstance(value, Mapping):
        for v in value.values():
            yield from _strings(v, depth + 1)
    elif depth < 4 and isinstance(value, list | tuple):
        for v in value[:100]:
            yield from _strings(v, depth + 1)


class Scopes:
    """Resolves records to scopes against one inventory (``None``: no inventory, every record unscoped)."""

    def __init__(self, inventory: Any | None) -> None:
        self.inventory = inventory

    def hosts(self, values: Iterable[str]) -> tuple[Scope, ...]:
        """The inventory hosts among ``values``, each once, in the order first named."""
        if self.inventory is None:
            return ()
        found: dict[str, Scope] = {}
        for value in values:
            try:
                host = self.inventory.resolve(value)
            except SoarError:  # unknown or ambiguous: names no host (an ambiguous value is never acted on)
                continue
            found.setdefault(host.name, Scope(host.name, dict(host.labels)))
        return tuple(found.values())

    def of_alert(self, alert: Mapping[str, Any] | None) -> tuple[Scope, ...]:
        """Each inventory host the alert names, with its labels over the attributes of the rule that raised it."""
        if not isinstance(alert, Mapping):
            return UNSCOPED
        found = self.hosts(_host_values(alert.get("host"))) or UNSCOPED
        rule = rule_attributes(alert)
        if not rule:
            return found
        return tuple(Scope(s.host, {**rule, **s.labels}) for s in found)  # the inventory wins a shared name

    def of_run(self, run: Run | Mapping[str, Any] | None) -> tuple[Scope, ...]:
        """A run (typed, or a stored run document in a listing) is scoped by its alert."""
        if isinstance(run, Run):
            return self.of_alert(run.alert)
        return self.of_alert(run.get("alert") if isinstance(run, Mapping) else None)

    def of_incident(self, incident: Mapping[str, Any] | None) -> tuple[Scope, ...]:
        """Every scope of every alert in the incident (``scope_sources``: each alert's host and rule attributes,
        resolved in the inventory now). An alert naming no inventory host keeps its empty scope: a scoped
        principal sees the incident only if it could see each of its alerts."""
        sources = incident.get("scope_sources") if isinstance(incident, Mapping) else None
        if not isinstance(sources, list) or not sources:
            return UNSCOPED
        found: dict[tuple[str | None, tuple[tuple[str, str], ...]], Scope] = {}
        for source in sources:
            for s in self.of_alert(source if isinstance(source, Mapping) else None):
                found.setdefault((s.host, tuple(sorted(s.labels.items()))), s)
        return tuple(found.values())

    def of_approval(self, run: Run | None, approval: Approval) -> tuple[Scope, ...]:
        """The run's scopes plus every inventory host the waiting step would act on (its parameters)."""
        own = self.of_run(run)
        rule = rule_attributes(run.alert) if run is not None else {}
        # the hosts acted on carry the rule's attributes too, as the alert's own hosts do
        targets = tuple(Scope(s.host, {**rule, **s.labels}) for s in self.hosts(_strings(approval.params)))
        merged = {s.host: s for s in (*own, *targets)}
        if len(merged) > 1:
            merged.pop(None, None)  # a named host is a stricter scope than "none"
        return tuple(merged.values())

    @staticmethod
    def of_exception(exception: Mapping[str, Any]) -> tuple[Scope, ...]:
        """The scope stored when the exception was proposed (from the inventory, never from the alert)."""
        stored = exception.get("scope")
        if not isinstance(stored, list) or not stored:
            return UNSCOPED
        out = []
        for s in stored:
            if isinstance(s, Mapping) and isinstance(s.get("labels"), Mapping):
                out.append(Scope(s.get("host"), {str(k): str(v) for k, v in s["labels"].items()}))
        return tuple(out) or UNSCOPED

    def enrich(self, alert: dict[str, Any], rule_attributes: Mapping[str, str] | None = None) -> dict[str, Any]:
        """The alert with soar's own ``inventory`` field (hosts and labels, and the attributes of the rule that
        raised it), replacing anything sent as it. Only soar's own detection passes ``rule_attributes`` (from the
        rule file): an alert sent to the webhook or read from a file names its rule itself, so it gets none."""
        inventory: dict[str, Any] = {"hosts": [s.to_doc() for s in self.hosts(_host_values(alert.get("host")))]}
        if rule_attributes:
            inventory["rule"] = {"attributes": {str(k): str(v) for k, v in rule_attributes.items()}}
        return {**alert, "inventory": inventory}


def rule_attributes(alert: Mapping[str, Any]) -> dict[str, str]:
    """The rule's attributes soar wrote into the alert's ``inventory`` field at detection (see ``enrich``)."""
    inventory = alert.get("inventory")
    rule = inventory.get("rule") if isinstance(inventory, Mapping) else None
    attrs = rule.get("attributes") if isinstance(rule, Mapping) else None
    if not isinstance(attrs, Mapping):
        return {}
    return {str(k): str(v) for k, v in attrs.items() if isinstance(v, str)}


_lock = threading.Lock()
_cache: dict[str, tuple[str, Scopes]] = {}


def scopes_for(settings: Settings) -> Scopes:
    """Scopes over the configured inventory, re-read when its content changes; no file means no hosts.

    Keyed by the content's digest, not the file's mtime: a file replaced within the same second (or with
    its mtime restored) must not keep serving the old labels.
    """
    path: Path = settings.inventory_path
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return Scopes(None)
    except OSError as exc:
        raise ConfigError(f"inventory_file (SOAR_INVENTORY_FILE): cannot read {path}: {exc.strerror}") from exc
    digest = hashlib.sha256(data).hexdigest()
    with _lock:
        cached = _cache.get(str(path))
        if cached and cached[0] == digest:
            return cached[1]
    from soar.hosts.inventory import load_inventory

    try:
        scopes = Scopes(load_inventory(path))
    except SoarError as exc:  # access decisions fail closed on a broken inventory: the server is misconfigured
        raise ConfigError(f"the inventory cannot be read, so no scoped decision can be made: {exc}") from exc
    with _lock:
        _cache[str(path)] = (digest, scopes)
    return scopes


def scope_names(scopes: Sequence[Scope]) -> str:
    """For messages: the hosts a decision was about."""
    named = [s.host for s in scopes if s.host]
    return ", ".join(named) if named else "no inventory host"
