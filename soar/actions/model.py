"""What an action is: a tagged function, the context it runs in, and the result it returns."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from soar.config import Settings

Impact = Literal["read", "notify", "contain", "destructive"]
IMPACTS: tuple[Impact, ...] = ("read", "notify", "contain", "destructive")
TargetKind = Literal["host", "account", "ip", "process", "channel"]

ACTION_ATTR = "__soar_action__"

F = TypeVar("F", bound=Callable[..., "ActionResult"])


@dataclass(frozen=True)
class ActionSpec:
    """The declaration an integration makes about one action."""

    name: str
    impact: Impact
    description: str = ""
    idempotent: bool = False
    revert: str | None = None
    # parameter name -> what kind of target it names (used for locks, blast radius, protected targets)
    targets: Mapping[str, TargetKind] = field(default_factory=dict)
    # keys of its integration's settings the action needs (``integration.<name>.<key>``, env
    # SOAR_INTEGRATION__<NAME>__<KEY>): checked set before the call, handed over in ctx.secrets, never templated
    secrets: tuple[str, ...] = ()
    # a ``read`` action that proves the containment again, with the parameters of this one it declares: the
    # containment watch (soar.containment) runs it while the containment is in force, and re-applies on drift
    verify: str | None = None
    # the parameter holding its lifetime in seconds (0: until reverted): past it, gone is not a drift
    lasts: str | None = None

    @property
    def integration(self) -> str:
        return self.name.split(".", 1)[0]


def action(
    name: str,
    *,
    impact: Impact,
    description: str = "",
    idempotent: bool = False,
    revert: str | None = None,
    targets: Mapping[str, TargetKind] | None = None,
    secrets: tuple[str, ...] = (),
    verify: str | None = None,
    lasts: str | None = None,
) -> Callable[[F], F]:
    """Tag a function as the action ``name`` (``<integration>.<action>``). Only tags: no registration."""
    if impact not in IMPACTS:
        raise ValueError(f"action {name}: impact must be one of {', '.join(IMPACTS)}, got {impact!r}")
    if "." not in name:
        raise ValueError(f"action {name}: names are '<integration>.<action>'")

    def tag(func: F) -> F:
        doc_lines = (func.__doc__ or "").strip().splitlines()
        spec = ActionSpec(
            name=name,
            impact=impact,
            description=description or (doc_lines[0] if doc_lines else ""),
            idempotent=idempotent,
            revert=revert,
            targets=dict(targets or {}),
            secrets=secrets,
            verify=verify,
            lasts=lasts,
        )
        setattr(func, ACTION_ATTR, spec)
        return func

    return tag


@dataclass(frozen=True)
class PlannedCommand:
    """One exact command an action will run (or ran) on one host, for dry-run plans and run records."""

    host: str
    argv: tuple[str, ...]
    stdin_script: str | None = None  # the responder script piped to `sh -s`, by name
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"host": self.host, "argv": list(self.argv), "stdin_script": self.stdin_script, "note": self.note}


class Secrets(Mapping[str, str]):
    """The settings an action declared, and only those; shown masked (a repr in a log says nothing)."""

    def __init__(self, values: Mapping[str, str] | None = None) -> None:
        self._values = dict(values or {})

    def __getitem__(self, key: str) -> str:
        try:
            return self._values[key]
        except KeyError:
            raise KeyError(f"{key!r}: not a secret this action declared") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Secrets({', '.join(f'{k}=********' for k in self._values)})"


@dataclass
class ActionContext:
    """What the runner hands an action besides its parameters."""

    settings: Settings
    dry_run: bool = False
    run_id: str | None = None
    step_id: str | None = None
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("soar.actions"))
    # Connections and clients an action may reuse within one run (e.g. one SSH connection per host).
    resources: dict[str, Any] = field(default_factory=dict)
    # the keys of its integration's settings the action declared (ActionSpec.secrets), set by the registry
    secrets: Secrets = field(default_factory=Secrets)


@dataclass
class ActionResult:
    """The value an action returns; failures are values too, not exceptions across the engine."""

    ok: bool
    output: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    # Closing the loop: None = not applicable, True/False = the effect was (not) observed.
    verified: bool | None = None
    verification: dict[str, Any] = field(default_factory=dict)
    commands: list[PlannedCommand] = field(default_factory=list)
    stdout: str = ""
    stderr: str = ""
    exit_status: int | None = None
    changed: bool | None = None
    evidence: list[dict[str, Any]] = field(default_factory=list)  # {"name", "sha256", "path", "size"}

    @classmethod
    def failure(cls, error: str, **kwargs: Any) -> ActionResult:
        return cls(ok=False, error=error, **kwargs)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "output": self.output,
            "error": self.error,
            "verified": self.verified,
            "verification": self.verification,
            "commands": [c.to_dict() for c in self.commands],
            "stdout": self.stdout,
            "stderr": self.stderr,
            "exit_status": self.exit_status,
            "changed": self.changed,
            "evidence": self.evidence,
        }
