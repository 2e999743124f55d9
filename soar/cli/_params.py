"""Plain parameter values without pydantic, for a light start-up.

Typer (0.29) coerces every parameter but a flag through a pydantic ``TypeAdapter``; importing
pydantic for that costs ~150 ms, a third of a warm ``soar rules convert``. For the annotations
whose coercion needs no pydantic — ``str``, ``Path`` and lists of them, with no custom parser —
:func:`plain_params` gives each parameter the same coercion done directly: a ``str`` is kept
as it is, a ``str`` for a ``Path`` becomes ``Path(value)`` (what pydantic does) and then goes
through typer's own path checks. Any other value or annotation, or a typer without these
internals, is left to typer.

These are typer's internals (``typer._coercion``, ``_TyperParameter``), kept on purpose: typer 0.29 has
no public way around pydantic — ``parser=`` and ``click_type=`` parameters go through a ``TypeAdapter``
too, and ``typer._adapters`` imports pydantic as it loads. Measured (best of 15, 2 cores, Dec 2026):
``soar version`` 77 ms with this, 155 ms without; a warm ``soar rules convert`` 100 ms vs 172 ms
(tests/benchmarks/bench_convert.py prints both side by side). Without these internals it steps aside.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, get_args, get_origin

try:
    from typer._coercion import RuntimeParam, build_runtime_param
    from typer._param_types import coerce_cli_path
    from typer.core import _TyperParameter
except ImportError:  # pragma: no cover - another typer: it coerces everything itself
    RuntimeParam = None  # type: ignore[assignment, misc]

LEAVES: tuple[type, ...] = (str, Path, bool)  # a bool gets here only as None (e.g. --help not given)
HELP_NAMES = ["--help"]  # click's default, unless a command's context_settings say otherwise


def _plain(annotation: Any, info: Any) -> bool:
    """Whether a parameter's coercion is plain: no parser, no custom path type, str/Path or a list of one."""
    if info.parser is not None or info.path_type is not None:
        return False
    if get_origin(annotation) is list:
        args = get_args(annotation)
        return len(args) == 1 and args[0] in LEAVES
    return annotation in LEAVES


if RuntimeParam is not None:

    @dataclass(frozen=True)
    class _PlainParam(RuntimeParam):
        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            annotation: Any = self.annotation
            if get_origin(annotation) is list:
                items = value if isinstance(value, list | tuple) else [value]
                leaf = get_args(annotation)[0]
                if leaf is not bool and all(isinstance(item, str) for item in items):
                    return [self._leaf(leaf, item, param, ctx) for item in items]
            elif isinstance(value, str) and annotation is not bool:
                return self._leaf(annotation, value, param, ctx)
            return build_runtime_param(param.type_descriptor)._coerce_value(value, param=param, ctx=ctx)

        def _leaf(self, leaf: type, value: str, param: Any, ctx: Any) -> Any:
            if leaf is str:
                return value
            return coerce_cli_path(Path(value), self.parameter_info, path_type=Path, param=param, ctx=ctx)


def plain_params(command: Any, help_names: list[str] = HELP_NAMES) -> None:
    """Give every plain parameter of ``command`` and its subcommands (and their --help) the direct coercion."""
    if RuntimeParam is None:  # pragma: no cover
        return
    settings = getattr(command, "context_settings", None) or {}
    help_names = list(settings.get("help_option_names", help_names))  # inherited as click's contexts do
    get_help = getattr(command, "get_help_option", None)
    help_option = get_help(SimpleNamespace(help_option_names=help_names)) if get_help else None
    for param in [*getattr(command, "params", ()), *([help_option] if help_option is not None else [])]:
        if isinstance(param, _TyperParameter) and getattr(param, "_runtime_param", "absent") is None:
            descriptor = param.type_descriptor
            if _plain(descriptor.annotation, descriptor.parameter_info):
                param._runtime_param = _PlainParam(
                    parameter_info=descriptor.parameter_info, annotation=descriptor.annotation
                )
    for sub in getattr(command, "commands", {}).values():
        plain_params(sub, help_names)
