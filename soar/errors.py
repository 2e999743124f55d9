"""The exception tree. Every error the user can cause carries where it came from.

    SoarError                 anything soar reports as one clear line
    ├── ConfigError           a setting is missing or invalid (names the setting)
    ├── ContentError          a rule, playbook, inventory or policy file is invalid (file:line:col)
    ├── ServiceUnavailable    Elasticsearch, Redis, an SSH host or Slack cannot be reached
    ├── RecordError           a stored document is malformed or from a newer soar (names kind, id, field)
    └── InputError            bad input on the command line or API (an events file, an alert, an id)
        ├── NotFound          no such id, or one outside the principal's scope (API 404)
        └── Forbidden         the authenticated principal may not do this (API 403)

The CLI prints ``str(error)`` and exits with ``error.exit_code``; a traceback is
shown only with ``--debug``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class SourceLocation:
    """Where in a file something went wrong; line and column are 1-based."""

    path: Path | str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        out = str(self.path)
        if self.line is not None:
            out += f":{self.line}"
            if self.column is not None:
                out += f":{self.column}"
        return out


class SoarError(Exception):
    """Base of every error soar reports to a person."""

    exit_code = 1

    def __init__(self, message: str, source: SourceLocation | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.source = source

    def __str__(self) -> str:
        if self.source is not None:
            return f"{self.source}: {self.message}"
        return self.message


class ConfigError(SoarError):
    """A setting is missing or invalid."""

    exit_code = 2


class ContentError(SoarError):
    """A content file (rule, playbook, inventory, policy) is invalid."""


class ServiceUnavailable(SoarError):
    """A service soar depends on cannot be reached."""

    exit_code = 2


class RecordError(SoarError):
    """A stored document cannot be read: a field is missing or of the wrong type, or a newer soar wrote it.

    The message names the kind, the id and the field (``runs/run-1a2b: field steps.isolate.status: ...``).
    """

    def __init__(self, kind: str, id: str, field: str | None, problem: str) -> None:
        where = f"{kind}/{id}" + (f": field {field}" if field else "")
        super().__init__(f"{where}: {problem}")
        self.kind = kind
        self.id = id
        self.field = field


class InputError(SoarError):
    """Input given on the command line or to the API is invalid."""


class NotFound(InputError):
    """No such id, or one the principal may not see: the two answers are the same, so scope leaks nothing."""


class Forbidden(InputError):
    """The authenticated principal may not do this (its role, its scope, or separation of duties)."""

    exit_code = 3
