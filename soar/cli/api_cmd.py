"""``soar api``: serve the HTTP API with uvicorn."""

from __future__ import annotations

import typer

from soar.config import get_settings


def register(root: typer.Typer) -> None:
    @root.command("api")
    def api(
        host: str = typer.Option(None, "--host", help="Bind address (default: setting api_host)."),
        port: int = typer.Option(None, "--port", help="Port (default: setting api_port)."),
    ) -> None:
        """Serve the HTTP API (alerts, runs, approvals, Slack interactivity, audit)."""
        import uvicorn

        from soar.api.app import create_app
        from soar.dispatch import dispatcher_for

        settings = get_settings()
        if dispatcher_for(settings).in_process:  # embedded: no worker retries Slack deliveries, this process does
            from soar.notify.service import resume_in_background

            resume_in_background(settings)
        uvicorn.run(create_app(settings), host=host or settings.api_host, port=port or settings.api_port)
