"""The ``soar`` command. Each command group lives in its own module and registers itself here.

Errors the user can cause are printed as one line (``SoarError``) with a non-zero
exit; a traceback appears only with ``--debug``.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

import typer
import typer.main

from soar.cli import _groups
from soar.cli._app import app
from soar.cli._params import plain_params
from soar.errors import ServiceUnavailable, SoarError
from soar.urls import mask_url

__all__ = ["app", "main"]


INTERNAL_ERROR_EXIT = 70


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    _groups.register(app, args)
    try:
        command = typer.main.get_command(app)  # what app(...) runs, with plain parameters made light
        plain_params(command)
        result = command.main(args=args, prog_name="soar", standalone_mode=False)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.TyperException as exc:  # usage errors: Typer prints them the way click does
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        else:
            typer.echo(f"error: {exc}", err=True)
        sys.exit(int(getattr(exc, "exit_code", 2)))
    except typer.Abort:
        typer.echo("Aborted.", err=True)
        sys.exit(1)
    except SoarError as exc:
        if debug:
            raise
        typer.echo(f"error: {mask_url(str(exc))}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:
        if debug:
            raise
        unreachable = _unreachable(exc)
        if unreachable is not None:
            typer.echo(f"error: {mask_url(unreachable)}", err=True)
            sys.exit(ServiceUnavailable.exit_code)
        logging.getLogger("soar").debug("internal error", exc_info=True)
        message = mask_url(f"{type(exc).__name__}: {exc}")
        typer.echo(f"internal error: {message} (run with --debug for the traceback)", err=True)
        sys.exit(INTERNAL_ERROR_EXIT)
    sys.exit(result if isinstance(result, int) else 0)


def _unreachable(exc: Exception) -> str | None:
    """One line when Elasticsearch went away under a command (the store, a search), else None."""
    if "elastic_transport" not in sys.modules:  # never imported: it cannot be what failed
        return None
    from elastic_transport import ConnectionError as ESConnectionError
    from elastic_transport import ConnectionTimeout as ESConnectionTimeout

    from soar.connections import _reason

    if isinstance(exc, ESConnectionError | ESConnectionTimeout):
        return f"Elasticsearch is not reachable: {_reason(exc)}"
    return None
