"""``soar verdict ALERT tp|fp``: analyst feedback; ``soar exceptions``: review proposed rule exceptions."""

from __future__ import annotations

import getpass

import typer

from soar.cli._output import echo_json, table
from soar.config import get_settings

exceptions_app = typer.Typer(no_args_is_help=True, help="Review rule exceptions proposed from false positives.")


def _analyst(name: str | None) -> str:
    return name or f"cli:{getpass.getuser()}"


def register(root: typer.Typer) -> None:
    @root.command("verdict")
    def verdict(
        alert_id: str = typer.Argument(..., help="The alert id."),
        value: str = typer.Argument(..., help="tp | fp (true_positive | false_positive)."),
        note: str = typer.Option("", "--note", help="Why."),
        except_field: str = typer.Option(None, "--except-field", help="Propose an exception on this field (fp)."),
        except_values: list[str] = typer.Option(None, "--except-value", help="Value, CIDR or glob; repeatable."),
        shared: bool = typer.Option(False, "--shared", help="The exception applies to every rule."),
        analyst: str = typer.Option(None, "--analyst", help="Who (default: cli:<login>)."),
    ) -> int:
        """Mark an alert a true or false positive; a false positive may propose an exception for its rule."""
        from soar.review.feedback import parse_verdict, record_verdict
        from soar.store import open_store

        data: dict[str, object] = {"verdict": value, "note": note}
        if except_field or except_values:
            data["exception"] = {"field": except_field or "", "values": list(except_values or []), "shared": shared}
        parsed = parse_verdict(data)  # validated before the store is even opened
        settings = get_settings()
        store = open_store(settings)
        try:
            doc = record_verdict(store, settings, alert_id, parsed, analyst=_analyst(analyst), role="cli", via="cli")
        finally:
            store.close()
        typer.echo(f"alert {alert_id}: {doc['verdict']} (rule {doc['rule_id']})")
        if doc.get("exception_id"):
            typer.echo(f"proposed exception {doc['exception_id']}: approve with 'soar exceptions approve'")
        return 0

    root.add_typer(exceptions_app, name="exceptions")


@exceptions_app.command("list")
def list_exceptions(
    status: str = typer.Option(None, "--status", help="proposed | approved | rejected"),
    as_json: bool = typer.Option(False, "--json"),
) -> int:
    """Rule exceptions and their review status."""
    from soar.review.feedback import EXCEPTIONS
    from soar.store import open_store

    settings = get_settings()
    store = open_store(settings)
    try:
        docs = [r.doc for r in store.find(EXCEPTIONS, {"status": status} if status else None, order_by="proposed_at")]
    finally:
        store.close()
    if as_json:
        echo_json(docs)
        return 0
    rows = [(d["id"], d["status"], d.get("rule_id") or "*", d["field"], ",".join(d["values"])) for d in docs]
    typer.echo(table(["id", "status", "rule", "field", "values"], rows))
    return 0


def _decide(exception_id: str, approver: str | None, approve: bool) -> int:
    from soar.review.feedback import decide_exception
    from soar.store import open_store

    settings = get_settings()
    store = open_store(settings)
    try:
        doc = decide_exception(store, settings, exception_id, approver=_analyst(approver), approve=approve)
    finally:
        store.close()
    typer.echo(f"exception {exception_id}: {doc['status']}")
    return 0


@exceptions_app.command("approve")
def approve(exception_id: str, approver: str = typer.Option(None, "--approver")) -> int:
    """Approve: the scheduler applies it in the rule's query from its next cycle."""
    return _decide(exception_id, approver, True)


@exceptions_app.command("reject")
def reject(exception_id: str, approver: str = typer.Option(None, "--approver")) -> int:
    """Reject a proposed exception."""
    return _decide(exception_id, approver, False)
