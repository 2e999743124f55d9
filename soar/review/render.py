"""HTML for people: Jinja2 in a sandbox with autoescape, because alert data is attacker-controlled."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from jinja2 import ChainableUndefined, FileSystemLoader
from jinja2.sandbox import SandboxedEnvironment

TEMPLATES = Path(__file__).resolve().parent / "templates"
# the header every served report page carries: no script, no fetch, nothing from elsewhere; inline style only
REPORT_CSP = {"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:"}

_env: SandboxedEnvironment | None = None


def environment() -> SandboxedEnvironment:
    global _env
    if _env is None:
        _env = sandboxed(TEMPLATES)
    return _env


def sandboxed(folder: Path) -> SandboxedEnvironment:
    """A sandboxed, autoescaping environment over a template folder (the reports', the console's)."""
    env = SandboxedEnvironment(
        loader=FileSystemLoader(str(folder)),
        autoescape=True,
        undefined=ChainableUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["duration"] = format_duration
    return env


def render(template: str, **context: Any) -> str:
    return environment().get_template(template).render(**context)


def format_duration(seconds: float | None) -> str:
    """``1h 02m 03s`` style; an em dash for unknown."""
    if seconds is None:
        return "—"
    sign = "-" if seconds < 0 else ""
    total = round(abs(seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{sign}{days}d {hours:02d}h {minutes:02d}m"
    if hours:
        return f"{sign}{hours}h {minutes:02d}m {secs:02d}s"
    if minutes:
        return f"{sign}{minutes}m {secs:02d}s"
    return f"{sign}{secs}s"


def write_atomic(path: Path, text: str) -> None:
    """Write the whole file or nothing: a temporary file in the same folder, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=str(path.parent))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
