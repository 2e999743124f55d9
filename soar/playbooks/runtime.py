"""Everything a run needs, built once per process from settings: store, actions, playbooks, policy, inventory."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from soar.actions import ActionRegistry, load_registry
from soar.clock import SYSTEM, Clock
from soar.config import Settings
from soar.errors import InputError
from soar.playbooks.loader import PlaybookSet, load_playbooks, parse_playbook
from soar.playbooks.model import Playbook
from soar.policy import Policy, load_policy
from soar.records import Run
from soar.store import Store, open_store

log = logging.getLogger("soar.playbooks")


@dataclass
class Runtime:
    settings: Settings
    store: Store
    registry: ActionRegistry
    playbooks: PlaybookSet
    policy: Policy
    inventory: Any = None  # soar.hosts.inventory.Inventory when an inventory file exists
    resources: dict[str, Any] = field(default_factory=dict)
    clock: Clock = SYSTEM  # every now and every wait of the engine (a test's FakeClock never waits)
    _parsed: dict[tuple[str, str], Playbook] = field(default_factory=dict, repr=False)

    @classmethod
    def build(
        cls,
        settings: Settings,
        *,
        store: Store | None = None,
        extra_integrations: Iterable[Path] = (),
        playbook_paths: Iterable[Path] | None = None,
        log_errors: bool = True,
    ) -> Runtime:
        registry = load_registry(settings, extra_folders=extra_integrations)
        paths = list(playbook_paths) if playbook_paths is not None else [settings.content_root / "playbooks"]
        playbooks = load_playbooks(paths, registry)
        for err in playbooks.errors if log_errors else ():  # a broken playbook never runs; say so in the log
            log.error("playbook not loaded: %s", err)
        return cls(
            settings=settings,
            store=store if store is not None else open_store(settings),
            registry=registry,
            playbooks=playbooks,
            policy=load_policy(settings.policy_path),
            inventory=load_inventory_if_present(settings),
        )

    def playbook(self, name_or_path: str) -> Playbook:
        """A playbook by name, file stem or path; a path is parsed and its actions checked."""
        path = Path(name_or_path)
        if path.suffix in (".yml", ".yaml") and path.is_file():
            from soar.playbooks.loader import check_actions

            pb = parse_playbook(path)
            check_actions(pb, self.registry)
            return pb
        try:
            return self.playbooks.by_name(name_or_path)
        except KeyError:
            for err in self.playbooks.errors:  # a broken playbook of that name: say what is wrong with it
                if err.source is not None and Path(err.source.path).stem == name_or_path:
                    raise err from None
            known = ", ".join(sorted(p.name for p in self.playbooks.playbooks)) or "none"
            raise InputError(f"unknown playbook {name_or_path!r} (known: {known})") from None

    def run_playbook(self, run: Run) -> Playbook:
        """The playbook a run began with (its stored text), so an edit mid-run changes nothing."""
        meta = run.playbook
        key = (meta.path, meta.version_hash)
        pb = self._parsed.get(key)
        if pb is None:
            pb = parse_playbook(Path(meta.path), text=meta.text)
            self._parsed[key] = pb
        return pb


def load_inventory_if_present(settings: Settings) -> Any:
    path = settings.inventory_path
    if not path.is_file():
        return None
    from soar.hosts.inventory import load_inventory

    return load_inventory(path)
