"""``soar init DIR``."""

from __future__ import annotations

from pathlib import Path

import typer

from soar.scaffold import scaffold


def register(root: typer.Typer) -> None:
    @root.command("init")
    def init(directory: Path = typer.Argument(..., help="Folder to create (must not exist or be empty).")) -> None:
        """Scaffold a team's detection-as-code repository: rules with fixtures, playbooks, inventory, policy, CI."""
        files = scaffold(directory)
        typer.echo(f"created {directory} with {len(files)} files")
        typer.echo(f"next: cd {directory} && soar rules check rules/ && soar rules test rules/")
