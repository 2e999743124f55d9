"""``soar hosts``: the inventory, how a value resolves, and whether every host answers over SSH."""

from __future__ import annotations

import typer

from soar.cli._output import echo_json, table
from soar.config import get_settings
from soar.hosts.errors import SSHError
from soar.hosts.inventory import Host, load_inventory
from soar.hosts.runner import HostRunner, in_parallel

app = typer.Typer(no_args_is_help=True)


def _row(host: Host) -> list[str]:
    labels = host.labels
    return [
        host.name,
        host.address,
        host.bastion or "-",
        labels.get("env", ""),
        labels.get("role", ""),
        labels.get("criticality", ""),
        labels.get("owner", ""),
    ]


@app.command("list")
def list_hosts(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> int:
    """Check the inventory file (errors name file:line) and list its hosts."""
    inventory = load_inventory(get_settings().inventory_path)
    if as_json:
        echo_json([{**h.summary(), "bastion": h.bastion, "aliases": list(h.aliases)} for h in inventory])
        return 0
    headers = ["host", "address", "bastion", "env", "role", "criticality", "owner"]
    typer.echo(table(headers, [_row(h) for h in inventory]))
    return 0


@app.command("resolve")
def resolve(value: str = typer.Argument(..., help="A host name, alias or address, as an alert carries it.")) -> int:
    """Show the one host a value resolves to; unknown and ambiguous values are refused (exit 1)."""
    host = load_inventory(get_settings().inventory_path).resolve(value, "value")
    typer.echo(table(["host", "address", "bastion", "env", "role", "criticality", "owner"], [_row(host)]))
    return 0


@app.command("check")
def check(
    hosts: list[str] = typer.Argument(None, help="Hosts to check (default: all)."),
    workers: int = typer.Option(16, min=1, max=256, help="Hosts checked at once."),
) -> int:
    """Log in to each host (pinned key, through its bastion) and run ``sudo -n true``; exit 2 if one fails."""
    settings = get_settings()
    inventory = load_inventory(settings.inventory_path)
    targets = [inventory.resolve(h) for h in hosts] if hosts else list(inventory)
    runner = HostRunner(settings, inventory)

    def probe(host: Host) -> tuple[str, str]:
        argv = ["sudo", "-n", "true"] if host.sudo else ["true"]
        try:
            result = runner.pool.session(host).run(argv, timeout=settings.ssh_connect_timeout)
        except SSHError as exc:
            return host.name, exc.reason
        if not result.ok:
            return host.name, f"{' '.join(argv)} failed (exit {result.exit_status}): {result.stderr.strip()[:200]}"
        return host.name, "ok"

    try:
        results = in_parallel(probe, targets, max_workers=workers)
    finally:
        runner.close()
    typer.echo(table(["host", "status"], results))
    return 2 if any(status != "ok" for _, status in results) else 0
