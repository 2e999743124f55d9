"""Load playbook files: YAML with line numbers, the schema, templates and action names checked.

Every problem is a ContentError at ``file:line``. ``load_playbooks`` collects them
all (for ``soar playbooks validate``); the runtime fails on the first.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from soar import _yaml
from soar.actions import ActionRegistry
from soar.errors import ContentError, SourceLocation
from soar.playbooks import templating
from soar.playbooks.model import Playbook, PlaybookSpec

YAML_SUFFIXES = (".yml", ".yaml")
SECRET_KEY = re.compile(r"(passw|secret|token|api[_-]?key|private[_-]?key|credential)", re.I)


def _index_lines(node: yaml.Node, path: tuple[str | int, ...], out: dict[tuple[str | int, ...], int]) -> None:
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = str(key_node.value)
            out[(*path, key)] = key_node.start_mark.line + 1
            _index_lines(value_node, (*path, key), out)
            out[(*path, key)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index_lines(item, (*path, i), out)


def _duplicate_key(node: yaml.Node) -> tuple[str, int] | None:
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in seen:
                return key, key_node.start_mark.line + 1
            seen.add(key)
            found = _duplicate_key(value_node)
            if found:
                return found
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            found = _duplicate_key(item)
            if found:
                return found
    return None


def _loc_path(loc: tuple[Any, ...]) -> tuple[str | int, ...]:
    return tuple("with" if part == "with_" else part for part in loc if isinstance(part, str | int))


def parse_playbook(path: Path, text: str | None = None) -> Playbook:
    """Parse and validate one playbook file (schema and template syntax)."""
    try:
        text = _yaml.read_text(path) if text is None else text  # over 1 MiB: refused before reading
    except (OSError, UnicodeDecodeError) as exc:
        raise ContentError(f"cannot read playbook: {exc}", SourceLocation(path)) from None
    try:
        root, data = _yaml.load_with_node(text)  # an alias is refused at its line, before it expands
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = SourceLocation(path, mark.line + 1, mark.column + 1) if mark is not None else SourceLocation(path)
        raise ContentError(f"not valid YAML: {getattr(exc, 'problem', None) or exc}", where) from None
    if root is None or not isinstance(data, dict):
        raise ContentError("a playbook must be a YAML mapping (name, trigger, steps, ...)", SourceLocation(path, 1))
    dup = _duplicate_key(root)
    if dup:
        raise ContentError(f"duplicate key {dup[0]!r}", SourceLocation(path, dup[1]))
    lines: dict[tuple[str | int, ...], int] = {}
    _index_lines(root, (), lines)
    try:
        spec = PlaybookSpec.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = _loc_path(err["loc"])
        line = Playbook(PlaybookSpec.model_construct(), path, text, lines).line_of(*loc)
        what = ".".join(str(part) for part in loc) or "playbook"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        raise ContentError(f"{what}: {msg}", SourceLocation(path, line)) from None
    playbook = Playbook(spec, path, text, lines)
    _check_semantics(playbook)
    return playbook


def _check_semantics(pb: Playbook) -> None:
    spec = pb.spec

    def fail(message: str, *loc: str | int) -> ContentError:
        return ContentError(message, SourceLocation(pb.path, pb.line_of(*loc)))

    if not (spec.trigger.rules or spec.trigger.tags or spec.trigger.where):
        raise fail(
            "trigger: give at least one of rules, tags or where (a playbook must not match every alert)", "trigger"
        )
    seen: set[str] = set()
    for section in ("steps", "rollback"):
        for i, step in enumerate(getattr(spec, section)):
            if step.id in seen:
                raise fail(f"step id {step.id!r} is used twice", section, i, "id")
            seen.add(step.id)
            if step.max_parallel is not None and step.for_each is None:
                raise fail(
                    f"step {step.id}: max_parallel only applies to a for_each step (it bounds its instances)",
                    section,
                    i,
                    "max_parallel",
                )
            checks: list[tuple[tuple[str, ...], Any]] = [(("with", name), v) for name, v in step.with_.items()]
            if step.for_each is not None:
                checks.append((("for_each",), step.for_each))
            for key, value in checks:
                for text in templating.template_strings(value):
                    try:
                        templating.check(text)
                    except templating.TemplateProblem as exc:
                        raise fail(f"step {step.id}: {'.'.join(key)}: {exc}", section, i, *key) from None
            if step.when is not None:
                try:
                    templating.check_expression(step.when)
                except templating.TemplateProblem as exc:
                    raise fail(f"step {step.id}: when: {exc}", section, i, "when") from None
    for name, text in spec.outputs.items():
        try:
            templating.check(text)
        except templating.TemplateProblem as exc:
            raise fail(f"outputs.{name}: {exc}", "outputs", name) from None


def check_actions(pb: Playbook, registry: ActionRegistry) -> None:
    """Every ``uses:`` names a known action and its literal parameters are known names."""
    for section in ("steps", "rollback"):
        for i, step in enumerate(getattr(pb.spec, section)):
            if step.uses not in registry:
                known = ", ".join(registry.names()) or "none"
                raise ContentError(
                    f"step {step.id}: unknown action {step.uses!r} (known: {known})",
                    SourceLocation(pb.path, pb.line_of(section, i, "uses")),
                )
            fields = registry.get(step.uses).params.model_fields
            for pname, value in step.with_.items():
                if (
                    SECRET_KEY.search(pname)
                    and isinstance(value, str)
                    and value
                    and not templating.template_strings(value)
                ):
                    raise ContentError(
                        f"step {step.id}: parameter {pname!r} holds a literal secret; secrets come from the "
                        "integration's configuration, never from playbooks",
                        SourceLocation(pb.path, pb.line_of(section, i, "with", pname)),
                    )
                if pname not in fields:
                    raise ContentError(
                        f"step {step.id}: action {step.uses} has no parameter {pname!r} "
                        f"(parameters: {', '.join(fields) or 'none'})",
                        SourceLocation(pb.path, pb.line_of(section, i, "with", pname)),
                    )
            missing = [n for n, f in fields.items() if f.is_required() and n not in step.with_]
            if missing:
                raise ContentError(
                    f"step {step.id}: action {step.uses} needs parameter {missing[0]!r}",
                    SourceLocation(pb.path, pb.line_of(section, i, "with") or pb.line_of(section, i)),
                )


def playbook_files(paths: Iterable[Path]) -> list[Path]:
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out.extend(sorted(f for f in p.rglob("*") if f.suffix in YAML_SUFFIXES and f.is_file()))
        else:
            out.append(p)
    return out


@dataclass
class PlaybookSet:
    playbooks: list[Playbook] = field(default_factory=list)
    errors: list[ContentError] = field(default_factory=list)

    def by_name(self, name: str) -> Playbook:
        for pb in self.playbooks:
            if pb.name == name or pb.path.stem == name:
                return pb
        raise KeyError(name)

    def raise_first(self) -> None:
        if self.errors:
            raise self.errors[0]


def load_playbooks(paths: Iterable[Path], registry: ActionRegistry | None = None) -> PlaybookSet:
    """Load every playbook, collecting every error; with a registry, action names are checked too."""
    result = PlaybookSet()
    names: dict[str, Path] = {}
    for path in playbook_files(paths):
        try:
            pb = parse_playbook(path)
            if registry is not None:
                check_actions(pb, registry)
            if pb.name in names:
                raise ContentError(
                    f"playbook name {pb.name!r} is also used by {names[pb.name]}",
                    SourceLocation(path, pb.line_of("name")),
                )
            names[pb.name] = path
            result.playbooks.append(pb)
        except ContentError as exc:
            result.errors.append(exc)
    return result
