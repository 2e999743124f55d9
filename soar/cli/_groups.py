"""The registry of command groups: a module per group, each exposing ``app`` (a Typer) or ``register``."""

from __future__ import annotations

import importlib
from collections.abc import Sequence

import typer

# (module, group name or None for top-level commands, help)
GROUPS: list[tuple[str, str | None, str]] = [
    ("soar.cli.config_cmd", "config", "Show the effective configuration."),
    ("soar.cli.services_cmd", "services", "Check the services soar depends on."),
    ("soar.cli.worker_cmd", None, "Run the Celery worker."),
    ("soar.cli.detect_cmd", None, "Run the detection scheduler."),
    ("soar.cli.detect_cmd", "detect", "Continuous detection: per-rule status, backfill."),
    ("soar.cli.rules_cmd", "rules", "Check, convert, test and measure the coverage of Sigma rules."),
    ("soar.cli.api_cmd", None, "Serve the HTTP API."),
    ("soar.cli.notify_cmd", "notify", "The Slack outbox: waiting and failed messages, deliver now, routes."),
    ("soar.cli.init_cmd", None, "Scaffold a detection-as-code repository."),
    ("soar.cli.demo_cmd", None, "Run the whole loop on the embedded default."),
    ("soar.cli.playbooks_cmd", "playbooks", "Validate, plan (dry run) and run response playbooks."),
    ("soar.cli.runs_cmd", "runs", "Playbook runs and their post-incident reports."),
    ("soar.cli.audit_cmd", "audit", "Verify the audit chain and export evidence."),
    ("soar.cli.metrics_cmd", None, "Response metrics and the threat-mitigation chart."),
    ("soar.cli.verdict_cmd", None, "Analyst verdicts and rule exceptions."),
    ("soar.cli.alerts_cmd", "alerts", "The alert queue: list, show, acknowledge, assign, close, reopen."),
    ("soar.cli.incidents_cmd", "incidents", "Alerts grouped by host or user: list, show, triage, note, report."),
    ("soar.cli.hosts_cmd", "hosts", "The host inventory: list, resolve a value, check SSH to every host."),
]

ROOT_COMMANDS = ("version",)  # defined in soar.cli._app itself

# The commands each top-level module registers, so one command imports only its own module.
TOP_LEVEL: dict[str, tuple[str, ...]] = {
    "soar.cli.worker_cmd": ("worker",),
    "soar.cli.detect_cmd": ("scheduler",),
    "soar.cli.api_cmd": ("api",),
    "soar.cli.init_cmd": ("init",),
    "soar.cli.demo_cmd": ("demo",),
    "soar.cli.metrics_cmd": ("metrics",),
    "soar.cli.verdict_cmd": ("verdict", "exceptions"),
}


def _wanted(argv: Sequence[str] | None) -> set[str] | None:
    """The modules a command line needs, or None for all of them (help, or an unknown command)."""
    if argv is None:
        return None
    words = [a for a in argv if not a.startswith("-")]
    if not words:
        return None
    name = words[0]
    if name in ROOT_COMMANDS:
        return set()
    modules = {m for m, group, _ in GROUPS if group == name}
    modules |= {m for m, names in TOP_LEVEL.items() if name in names}
    return modules or None


_done: set[tuple[str, str | None]] = set()


def register(root: typer.Typer, argv: Sequence[str] | None = None) -> None:
    """Add the command groups; with ``argv``, only the one the command line names (start-up time).

    Safe to call again (a process may run several commands): each group is added once.
    """
    wanted = _wanted(argv)
    for module_name, group, help_text in GROUPS:
        if (wanted is not None and module_name not in wanted) or (module_name, group) in _done:
            continue
        _done.add((module_name, group))
        module = importlib.import_module(module_name)
        if group is None:
            module.register(root)
        else:
            root.add_typer(module.app, name=group, help=help_text)
