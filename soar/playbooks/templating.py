"""Sandboxed templates over ``alert``, ``inputs`` and ``steps.<id>.result``.

Only the playbook author's strings are ever compiled. A value that comes from an
alert is inserted as data: the result of a render is never rendered again, so
``{{ ''.__class__ }}`` in a user name stays those characters. Missing fields are
errors (StrictUndefined), never empty strings that would widen an action. Tags that reach
other templates (``include``, ``import``, ``from``, ``extends``) are refused when a template is
compiled: there is nothing else to load, and a step using one fails with that reason.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateError, Undefined, nodes
from jinja2.sandbox import SandboxedEnvironment

# A value that is exactly one expression keeps its type (a list for for_each, an int for a duration).
WHOLE_EXPRESSION = re.compile(r"^\s*\{\{(?P<expr>(?:(?!\}\}|\{\{).)*)\}\}\s*$", re.DOTALL)


class TemplateProblem(Exception):
    """A template failed to compile or render; the caller adds the file:line or the step."""


def _environment() -> SandboxedEnvironment:
    env = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)
    env.globals.clear()  # no range(), lipsum, cycler, namespace: templates only read their context
    return env


ENV = _environment()


@lru_cache(maxsize=4096)
def _compiled_expression(expr: str) -> Any:
    return ENV.compile_expression(expr, undefined_to_none=False)


# tags that load another template: the environment has no loader, so they could only fail at render time
_REFUSED_TAGS: dict[type[nodes.Node], str] = {
    nodes.Include: "include",
    nodes.Import: "import",
    nodes.FromImport: "from",
    nodes.Extends: "extends",
}


@lru_cache(maxsize=4096)
def _compiled_template(text: str) -> Any:
    tree = ENV.parse(text)
    for node_type, tag in _REFUSED_TAGS.items():
        found = next(tree.find_all(node_type), None)
        if found is not None:
            where = f" (line {found.lineno} of the template)" if "\n" in text.strip() else ""
            raise TemplateProblem(f"template tag {tag!r} is not allowed{where}: templates only read their context")
    return ENV.from_string(tree)


def check(text: str) -> None:
    """Compile an author's template (syntax only); raise TemplateProblem."""
    try:
        match = WHOLE_EXPRESSION.match(text)
        if match:
            _compiled_expression(match.group("expr"))
        else:
            _compiled_template(text)
    except TemplateError as exc:
        raise TemplateProblem(f"template error: {exc}") from None


def check_expression(expr: str) -> None:
    try:
        _compiled_expression(_strip_braces(expr))
    except TemplateError as exc:
        raise TemplateProblem(f"expression error: {exc}") from None


def _strip_braces(expr: str) -> str:
    match = WHOLE_EXPRESSION.match(expr)
    return match.group("expr") if match else expr


def render_value(value: Any, context: Mapping[str, Any]) -> Any:
    """Render an author's value: strings are templates, lists and dicts are rendered item by item."""
    if isinstance(value, str):
        if "{{" not in value and "{%" not in value:
            return value
        try:
            match = WHOLE_EXPRESSION.match(value)
            if match:
                return _defined(_compiled_expression(match.group("expr"))(**context))
            return _compiled_template(value).render(**context)
        except TemplateError as exc:
            raise TemplateProblem(f"template {value!r}: {type(exc).__name__}: {exc}") from None
    if isinstance(value, list | tuple):
        return [render_value(v, context) for v in value]
    if isinstance(value, Mapping):
        return {str(k): render_value(v, context) for k, v in value.items()}
    return value


def evaluate(expr: str, context: Mapping[str, Any]) -> Any:
    """Evaluate a ``when:`` expression (with or without braces)."""
    try:
        return _defined(_compiled_expression(_strip_braces(expr))(**context))
    except TemplateError as exc:
        raise TemplateProblem(f"expression {expr!r}: {type(exc).__name__}: {exc}") from None


def _defined(value: Any) -> Any:
    """An expression that evaluates to an undefined value is an error too (StrictUndefined)."""
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()
    return value


def template_strings(value: Any) -> list[str]:
    """Every string in a nested value that is a template, for load-time checks."""
    if isinstance(value, str):
        return [value] if ("{{" in value or "{%" in value) else []
    if isinstance(value, list | tuple):
        return [s for v in value for s in template_strings(v)]
    if isinstance(value, Mapping):
        return [s for v in value.values() for s in template_strings(v)]
    return []
