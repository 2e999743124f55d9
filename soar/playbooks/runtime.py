"""Everything a run needs, built once per process from settings: store, actions, playbooks, policy, inventory.

What a run opens while it acts (SSH connections) is not the runtime's: it lives in the run's
:class:`RunResources`, kept between its steps in this process and closed when the run ends or pauses.
"""

from __future__ import annotations

import logging
import threading
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
RESOURCES_IDLE = 120.0  # seconds a run let go (not ended) keeps its resources in this process for its next step


@dataclass
class Runtime:
    settings: Settings
    store: Store
    registry: ActionRegistry
    playbooks: PlaybookSet
    policy: Policy
    inventory: Any = None  # soar.hosts.inventory.Inventory when an inventory file exists (planning's targets)
    clock: Clock = SYSTEM  # every now and every wait of the engine (a test's FakeClock never waits)
    _parsed: dict[tuple[str, str], Playbook] = field(default_factory=dict, repr=False)
    # per run id: its resources in this process, and when it was last let go here (None while held)
    _resources: dict[str, tuple[RunResources, float | None]] = field(default_factory=dict, repr=False)
    _resources_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

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

    def hold_resources(self, run_id: str) -> RunResources:
        """The run's resources in this process, kept between its steps here; those of runs let go here more than
        RESOURCES_IDLE seconds ago (they went on in another worker, or their worker lost them) are closed."""
        with self._resources_lock:
            now = self.clock.now()
            idle = [rid for rid, (_, at) in self._resources.items() if at is not None and now - at > RESOURCES_IDLE]
            stale = [self._resources.pop(rid)[0] for rid in idle if rid != run_id]
            resources = self._resources[run_id][0] if run_id in self._resources else RunResources(self.store)
            self._resources[run_id] = (resources, None)
        for old in stale:
            old.close()
        return resources

    def let_go(self, run_id: str, *, ended: bool) -> None:
        """The worker lets the run go: its resources are closed if it ended or paused, else kept for its next step."""
        with self._resources_lock:
            entry = self._resources.pop(run_id, None)
            if entry is not None and not ended:
                self._resources[run_id] = (entry[0], self.clock.now())
                return
        if entry is not None:
            entry[0].close()

    def close_resources(self) -> None:
        """Close what every run opened in this process (the runtime is forgotten)."""
        with self._resources_lock:
            held = [resources for resources, _ in self._resources.values()]
            self._resources.clear()
        for resources in held:
            resources.close()

    def run_playbook(self, run: Run) -> Playbook:
        """The playbook a run began with (its stored text), so an edit mid-run changes nothing."""
        meta = run.playbook
        key = (meta.path, meta.version_hash)
        pb = self._parsed.get(key)
        if pb is None:
            pb = parse_playbook(Path(meta.path), text=meta.text)
            self._parsed[key] = pb
        return pb


class RunResources(dict[str, Any]):
    """What the actions of a run share while one worker holds it (``ActionContext.resources``): the runtime's
    store (lent), and what an action opens on first use (the run's SSH connections and the inventory they were
    opened from). :meth:`close` closes the latter when the worker lets the run go, so none outlives the run."""

    def __init__(self, store: Store) -> None:
        super().__init__(store=store)

    def close(self) -> None:
        store = self.pop("store", None)
        for name, value in list(self.items()):
            close = getattr(value, "close", None)
            if value is not store and callable(close):
                try:
                    close()
                except Exception as exc:  # a connection already gone: nothing more to close
                    log.warning("closing the run's %s: %s", name, exc)
        self.clear()


def load_inventory_if_present(settings: Settings) -> Any:
    path = settings.inventory_path
    if not path.is_file():
        return None
    from soar.hosts.inventory import load_inventory

    return load_inventory(path)
