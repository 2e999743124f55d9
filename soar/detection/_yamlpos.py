"""Line and column of things in a YAML document, which pySigma does not keep.

We compose the document once with PyYAML and index every mapping key and scalar by its
path, so an error can point at ``file:line:col`` of the key or value it is about.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import yaml

Path_ = tuple[str | int, ...]


@dataclass(frozen=True)
class Mark:
    line: int  # 1-based
    column: int  # 1-based


@dataclass
class Positions:
    """Positions of one YAML document: its start and every key and scalar by path."""

    start: Mark
    keys: dict[Path_, Mark] = field(default_factory=dict)
    values: dict[Path_, Mark] = field(default_factory=dict)
    texts: list[tuple[str, Mark, Path_]] = field(default_factory=list)

    def of(self, *path: str | int) -> Mark:
        """The key's position for ``path`` (or the value's, or the document start)."""
        return self.keys.get(path) or self.values.get(path) or self.start

    def find(self, token: str, under: Path_ = ()) -> Mark | None:
        """The first key or scalar under ``under``, in document order, whose text contains ``token``."""
        for text, mark, path in self.texts:
            if path[: len(under)] == under and token in text:
                return mark
        return None

    def locate_message(self, message: str, hint_key: str | None = None) -> Mark:
        """Best position for an error message: a quoted token it names, else the hinted key."""
        for token in re.findall(r"'([^']{1,200})'|\"([^\"]{1,200})\"", message):
            text = token[0] or token[1]
            for under in (("detection",), ("correlation",), ()):
                mark = self.find(text, under)
                if mark is not None:
                    return mark
        if hint_key is not None and (hint_key,) in self.keys:
            return self.keys[(hint_key,)]
        return self.start


def _mark(node: yaml.Node) -> Mark:
    return Mark(node.start_mark.line + 1, node.start_mark.column + 1)


def _walk(node: yaml.Node, path: Path_, pos: Positions) -> None:
    if path:
        pos.values.setdefault(path, _mark(node))
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = str(key_node.value)
            pos.keys.setdefault((*path, key), _mark(key_node))
            pos.texts.append((key, _mark(key_node), (*path, key)))
            _walk(value_node, (*path, key), pos)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, (*path, i), pos)
    elif isinstance(node, yaml.ScalarNode):
        pos.texts.append((str(node.value), _mark(node), path))


def positions(node: yaml.Node) -> Positions:
    pos = Positions(start=_mark(node))
    _walk(node, (), pos)
    return pos


def duplicate_keys(node: yaml.Node) -> list[tuple[str, Mark]]:
    """Keys repeated in one mapping (PyYAML silently keeps the last one)."""
    found: list[tuple[str, Mark]] = []
    todo = [node]
    while todo:
        cur = todo.pop()
        if isinstance(cur, yaml.MappingNode):
            seen: set[str] = set()
            for key_node, value_node in cur.value:
                key = str(key_node.value)
                if key in seen:
                    found.append((key, _mark(key_node)))
                seen.add(key)
                todo.append(value_node)
        elif isinstance(cur, yaml.SequenceNode):
            todo.extend(cur.value)
    return found
