"""``soar config``."""

from __future__ import annotations

import typer

from soar.cli._output import echo_json, table
from soar.config import config_file_path, get_settings

app = typer.Typer(no_args_is_help=True)


@app.command("show")
def show(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Print the effective configuration, secrets masked."""
    settings = get_settings()
    values = settings.masked()
    if as_json:
        echo_json(values)
        return
    source = config_file_path()
    typer.echo(f"# config file: {source if source else '(none)'}; environment prefix SOAR_")
    typer.echo(table(["setting", "value"], [(k, "" if v is None else v) for k, v in values.items()]))
