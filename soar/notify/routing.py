"""Which channel an incident goes to: routes by severity, rule and team, read from ``notify.yml``.

    default: "#soc-alerts"
    routes:
      - channel: "#soc-critical"
        min_severity: critical          # this level or above
      - channel: "#team-payments"
        team: [payments]                # alert.team / alert.labels.team / rule tag team.<name>
      - channel: "#soc-bruteforce"
        rule: ["ssh-brute-*", "T1110*"]  # rule id, title or ATT&CK tag, globs allowed

The first matching route wins, so one incident has one card and one thread.
A missing file routes everything to ``slack_default_channel``.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from soar import _yaml
from soar.alerts import LEVEL_ORDER
from soar.config import Settings
from soar.errors import ContentError, SourceLocation


class _RouteModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: str = Field(min_length=1, max_length=80)
    min_severity: str | None = None
    severity: list[str] = Field(default_factory=list)
    rule: list[str] = Field(default_factory=list)
    team: list[str] = Field(default_factory=list)

    @field_validator("severity", "rule", "team", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("min_severity")
    @classmethod
    def _level(cls, value: str | None) -> str | None:
        if value is not None and value not in LEVEL_ORDER:
            raise ValueError(f"must be one of {', '.join(LEVEL_ORDER)}")
        return value


class _RoutesModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    default: str | None = None
    routes: list[_RouteModel] = Field(default_factory=list)


@dataclass(frozen=True)
class Route:
    channel: str
    min_severity: str | None = None
    severity: tuple[str, ...] = ()
    rule: tuple[str, ...] = ()
    team: tuple[str, ...] = ()

    def matches(self, summary: Mapping[str, Any]) -> bool:
        level = str(summary.get("level", "medium"))
        if self.min_severity and LEVEL_ORDER.get(level, -1) < LEVEL_ORDER[self.min_severity]:
            return False
        if self.severity and level not in self.severity:
            return False
        if self.rule:
            names = [str(summary.get("rule_id", "")), str(summary.get("title", ""))]
            names += [t.removeprefix("attack.").upper() for t in summary.get("tags") or []]
            if not any(fnmatch.fnmatchcase(n.lower(), p.lower()) for n in names for p in self.rule):
                return False
        if self.team:
            teams = {str(summary["team"])} if summary.get("team") else set()
            teams |= {t.removeprefix("team.") for t in summary.get("tags") or [] if t.startswith("team.")}
            if not teams & set(self.team):
                return False
        return True


@dataclass(frozen=True)
class Routes:
    default: str
    routes: tuple[Route, ...] = field(default_factory=tuple)

    def channel_for(self, summary: Mapping[str, Any]) -> str:
        for route in self.routes:
            if route.matches(summary):
                return route.channel
        return self.default


def _line_of(node: yaml.Node | None, loc: Sequence[int | str]) -> int | None:
    """The 1-based line of the value at ``loc`` in a composed YAML document."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if k.value == part), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            break
        if node is None:
            break
        line = node.start_mark.line + 1
    return line


def parse_routes(text: str, path: Path | str, default_channel: str) -> Routes:
    """Routes from YAML text; a ContentError naming file:line for anything invalid."""
    try:
        node, data = _yaml.load_with_node(text)  # an alias is refused at its line, before it expands
        data = data or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise ContentError(f"not valid YAML: {getattr(exc, 'problem', exc)}", SourceLocation(path, line)) from exc
    if not isinstance(data, dict):
        raise ContentError("must be a mapping with 'default' and 'routes'", SourceLocation(path, 1))
    try:
        model = _RoutesModel.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        line = _line_of(node, list(err["loc"]))
        raise ContentError(f"{where}: {err['msg']}", SourceLocation(path, line)) from exc
    routes = tuple(
        Route(r.channel, r.min_severity, tuple(r.severity), tuple(r.rule), tuple(r.team)) for r in model.routes
    )
    return Routes(default=model.default or default_channel, routes=routes)


def load_routes(settings: Settings) -> Routes:
    path = settings.content_path(settings.notify_routes_file)
    if not path.is_file():
        return Routes(default=settings.slack_default_channel)
    try:
        text = _yaml.read_text(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise ContentError(f"cannot read: {exc}", SourceLocation(path)) from exc
    return parse_routes(text, path, settings.slack_default_channel)
