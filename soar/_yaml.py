"""The one way soar reads YAML: safe, without aliases, and from files of a bounded size.

A YAML alias (``*name``, ``<<: *name``) repeats the node its anchor (``&name``) names; nine
lines of aliases of aliases (a "billion laughs") expand to a billion values in whatever walks
or constructs the document. soar's files (rules, their fixtures, playbooks, policy, inventory,
principals, routes) never need one, so an alias is refused at its line before anything is
composed or constructed: :class:`AliasRefused` is a :class:`yaml.YAMLError` with a mark, so
every caller reports it at ``file:line:col`` as it reports a syntax error.

A file over :data:`MAX_FILE_BYTES` is refused before it is read (:class:`TooLarge`, an
:class:`OSError`, so callers report it as they report an unreadable file).
"""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path
from typing import Any

import yaml

# libyaml when available (as pySigma itself uses): the pure-Python parser costs more than a conversion.
LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

MAX_FILE_BYTES = 1 << 20  # one rule, playbook, policy or inventory file: 1 MiB is hundreds of times any real one
MAX_FIXTURES_BYTES = 8 << 20  # a rule's fixtures (*.tests.yml) hold recorded events: more room


_ALIAS = re.compile(r"\*([^\s,\[\]{}]+)")


class AliasRefused(yaml.MarkedYAMLError):
    """A YAML alias: refused, never expanded."""

    def __init__(self, name: str, mark: Any) -> None:
        super().__init__(
            problem=f"YAML alias *{name} is not allowed (soar refuses aliases and anchors: write the value out)",
            problem_mark=mark,
        )


class TooLarge(OSError):
    """A file over the size limit, refused before it is read."""

    def __init__(self, path: Path, size: int, limit: int) -> None:
        message = f"{size:,} bytes, over the limit of {_size(limit)} for one file"
        self.path = path
        super().__init__(errno.EFBIG, message)
        self.message = message

    def __str__(self) -> str:
        return self.message


def _size(count: int) -> str:
    if count >= 1 << 20:
        return f"{count / (1 << 20):.1f} MiB".replace(".0 MiB", " MiB")
    if count >= 1 << 10:
        return f"{count / (1 << 10):.1f} KiB".replace(".0 KiB", " KiB")
    return f"{count} bytes"


def read_text(path: Path, limit: int = MAX_FILE_BYTES) -> str:
    """The UTF-8 text of ``path``; :class:`TooLarge` (before reading) when it is over ``limit`` bytes."""
    with path.open("rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if size > limit:
            raise TooLarge(path, size, limit)
        data = handle.read(limit + 1)  # a file growing while read is bounded too
    if len(data) > limit:
        raise TooLarge(path, len(data), limit)
    return data.decode("utf-8")


def refuse_aliases(text: str) -> None:
    """Raise :class:`AliasRefused` at the first alias of ``text`` (a parse, no composition)."""
    if "&" not in text:  # no anchor: an alias can only be undefined, which the composer reports (see compose)
        return
    loader = LOADER(text)
    try:
        while loader.check_event():
            event = loader.get_event()  # type: ignore[no-untyped-call]
            if isinstance(event, yaml.AliasEvent):
                raise AliasRefused(str(event.anchor), event.start_mark)
    finally:
        loader.dispose()


def _undefined_alias(exc: yaml.YAMLError, text: str) -> AliasRefused | None:
    """An alias without its anchor, named as any alias is (libyaml's message does not name it)."""
    problem = getattr(exc, "problem", None) or ""
    mark = getattr(exc, "problem_mark", None)
    if not problem.startswith("found undefined alias") or mark is None:
        return None
    lines = text.splitlines()
    line = lines[mark.line] if mark.line < len(lines) else ""
    found = _ALIAS.match(line, mark.column)
    return AliasRefused(found.group(1) if found else "", mark)


def compose(text: str) -> yaml.Node | None:
    """The node of a one-document YAML text; an alias is refused."""
    refuse_aliases(text)
    try:
        return yaml.compose(text, Loader=LOADER)
    except yaml.YAMLError as exc:
        raise _undefined_alias(exc, text) or exc from None


def compose_all(text: str) -> list[yaml.Node]:
    """The node of each document of ``text`` (empty documents left out); an alias is refused."""
    refuse_aliases(text)
    try:
        return [node for node in yaml.compose_all(text, Loader=LOADER) if node is not None]
    except yaml.YAMLError as exc:
        raise _undefined_alias(exc, text) or exc from None


def construct(node: yaml.Node | None) -> Any:
    """The Python value of a composed node (safe types only)."""
    return LOADER("").construct_document(node) if node is not None else None


def load(text: str) -> Any:
    """``yaml.safe_load`` without aliases."""
    return construct(compose(text))


def load_with_node(text: str) -> tuple[yaml.Node | None, Any]:
    """The composed node (for line numbers) and the value, from one parse."""
    node = compose(text)
    return node, construct(node)
