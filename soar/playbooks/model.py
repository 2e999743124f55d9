"""The playbook model: what a playbook file says, validated by pydantic and located by line.

A playbook is a trigger, inputs, ordered steps calling actions by name, rollback
steps and outputs. Strings in ``with:``, ``for_each:``, ``when:`` and ``outputs``
are the author's Jinja2 templates; alert values are data and never templates.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from soar.alerts import LEVEL_ORDER, Level

OnFailure = Literal["continue", "abort", "rollback"]
STEP_ID = r"^[a-z][a-z0-9_]{0,62}$"
ACTION_NAME = r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Retry(_Strict):
    count: int = Field(0, ge=0, le=10, description="extra attempts after the first")
    backoff: float = Field(1.0, ge=0, le=3600, description="seconds before the first retry, doubled each time")


class Approval(_Strict):
    approvals: int = Field(1, ge=1, le=10, description="N distinct approvers (N-of-M)")
    roles: tuple[str, ...] = ("approver", "admin")
    timeout: float = Field(3600, gt=0, description="seconds before the request expires")


class Step(_Strict):
    id: str = Field(pattern=STEP_ID)
    uses: str = Field(pattern=ACTION_NAME)
    name: str | None = None
    with_: dict[str, Any] = Field(default_factory=dict, alias="with")
    when: str | None = None
    for_each: str | list[Any] | None = None
    max_parallel: int | None = Field(
        None, ge=1, le=100, description="for_each instances run at once (default: the playbook_max_parallel setting)"
    )
    retry: Retry = Field(default_factory=lambda: Retry.model_validate({}))
    timeout: float = Field(60.0, gt=0, le=24 * 3600)
    on_failure: OnFailure = "abort"
    requires_approval: bool | Approval = False

    @property
    def approval(self) -> Approval | None:
        if self.requires_approval is True:
            return Approval.model_validate({})
        return self.requires_approval or None


class Trigger(_Strict):
    rules: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    min_level: Level | None = None
    where: dict[str, Any] = Field(default_factory=dict)

    @field_validator("tags")
    @classmethod
    def _lower(cls, tags: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(t.lower() for t in tags)


class PlaybookSpec(_Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,80}$")
    description: str = ""
    trigger: Trigger
    inputs: dict[str, Any] = Field(default_factory=dict)
    steps: tuple[Step, ...] = Field(min_length=1)
    rollback: tuple[Step, ...] = ()
    outputs: dict[str, str] = Field(default_factory=dict)


@dataclass(frozen=True)
class Playbook:
    """A loaded playbook: the validated spec plus where it came from, for errors and run records."""

    spec: PlaybookSpec
    path: Path
    text: str
    lines: dict[tuple[str | int, ...], int] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def version_hash(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()

    def line_of(self, *path: str | int) -> int | None:
        """The line of the deepest known node on ``path`` (the step, its key, ...)."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(tuple(path[:end]))
            if line is not None:
                return line
        return None

    def step(self, step_id: str) -> Step:
        for s in (*self.spec.steps, *self.spec.rollback):
            if s.id == step_id:
                return s
        raise KeyError(step_id)

    def step_index(self, step_id: str) -> int:
        return [s.id for s in self.spec.steps].index(step_id)


def level_at_least(level: str, minimum: str) -> bool:
    return LEVEL_ORDER.get(level, -1) >= LEVEL_ORDER[minimum]
