"""The registry of command groups: a module per group, each exposing ``app`` (a Typer) or ``register``."""

from __future__ import annotations

import importlib

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
    ("soar.cli.playbooks_cmd", "playbooks", "Validate, plan (dry run) and run response playbooks."),
    ("soar.cli.runs_cmd", "runs", "Playbook runs and their post-incident reports."),
    ("soar.cli.audit_cmd", "audit", "Verify the audit chain and export evidence."),
    ("soar.cli.metrics_cmd", None, "Response metrics and the threat-mitigation chart."),
    ("soar.cli.verdict_cmd", None, "Analyst verdicts and rule exceptions."),
    ("soar.cli.hosts_cmd", "hosts", "The host inventory: list, resolve a value, check SSH to every host."),
]


def register(root: typer.Typer) -> None:
    for module_name, group, help_text in GROUPS:
        module = importlib.import_module(module_name)
        if group is None:
            module.register(root)
        else:
            root.add_typer(module.app, name=group, help=help_text)
