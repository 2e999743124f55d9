"""``soar config``."""

from __future__ import annotations

import typer

from soar.cli._output import echo_json, table
from soar.config import MASK, config_file_path, get_settings

app = typer.Typer(no_args_is_help=True)


@app.command("show")
def show(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Print the effective configuration, secrets masked, and what its Slack transport can do."""
    from soar.notify.transport import WEBHOOK_LIMITS, transport_name

    settings = get_settings()
    values = settings.masked()
    from soar.audit.keys import checkpoint_path, key_path

    if settings.audit_hmac_key is None:  # the generated key: where it is, never what it is
        generated = key_path(settings)
        values["audit_hmac_key"] = f"{MASK} (generated: {generated})" if generated.exists() else None
    values["audit_checkpoint_file"] = str(checkpoint_path(settings))
    transport = transport_name(settings)
    if transport == "webhook":  # what soar api, the scheduler and workers log once when they start
        typer.echo(f"warning: {WEBHOOK_LIMITS}", err=True)
    if as_json:
        echo_json(values)
        return
    source = config_file_path()
    typer.echo(f"# config file: {source if source else '(none)'}; environment prefix SOAR_")
    typer.echo(table(["setting", "value"], [(k, "" if v is None else v) for k, v in values.items()]))
    typer.echo(f"# Slack: {_SLACK_TRANSPORTS[transport]}")


_SLACK_TRANSPORTS = {
    "slack": "Web API with slack_bot_token (threads, card updates, approvals)",
    "webhook": "incoming webhook (slack_webhook_url): no threads, no edits, no ephemerals",
    "console": "not configured: notifications go to the log/console",
}
