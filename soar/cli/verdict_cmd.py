"""``soar verdict ALERT tp|fp``: analyst feedback; ``soar exceptions``: review proposed rule exceptions.

Every command acts as the principal the command line authenticates as (``soar.cli._identity``), scoped
like the API: an alert or exception outside its scope is "unknown", as in the API's 404.
"""

from __future__ import annotations

import typer

from soar.cli._output import echo_json, table
from soar.config import get_settings

exceptions_app = typer.Typer(no_args_is_help=True, help="Review rule exceptions proposed from false positives.")


def register(root: typer.Typer) -> None:
    @root.command("verdict")
    def verdict(
        alert_id: str = typer.Argument(..., help="The alert id."),
        value: str = typer.Argument(..., help="tp | fp (true_positive | false_positive)."),
        note: str = typer.Option("", "--note", help="Why."),
        except_field: str = typer.Option(None, "--except-field", help="Propose an exception on this field (fp)."),
        except_values: list[str] = typer.Option(None, "--except-value", help="Value, CIDR or glob; repeatable."),
        shared: bool = typer.Option(False, "--shared", help="The exception applies to every rule."),
    ) -> int:
        """Mark an alert a true or false positive; a false positive may propose an exception for its rule."""
        from soar.access import authorize_in
        from soar.cli._identity import cli_principal_with
        from soar.ids import resolve
        from soar.review.feedback import ALERTS, parse_verdict, record_verdict
        from soar.scope import scopes_for
        from soar.store import open_store

        data: dict[str, object] = {"verdict": value, "note": note}
        if except_field or except_values:
            data["exception"] = {"field": except_field or "", "values": list(except_values or []), "shared": shared}
        parsed = parse_verdict(data)  # validated before the store is even opened
        settings = get_settings()
        principal = cli_principal_with(settings, "verdicts:write")
        store = open_store(settings)
        try:
            scopes = scopes_for(settings)
            alert_id = resolve(  # an id or a unique prefix (what `runs list` shows) among the alerts in scope
                store, ALERTS, alert_id, "alert",
                lambda r: authorize_in(principal, "verdicts:write", scopes.of_alert(r.doc)).allowed,
            ).id  # fmt: skip
            doc = record_verdict(
                store, settings, alert_id, parsed, analyst=principal.name, role=principal.role, via="cli"
            )
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
    """Rule exceptions in your scope and their review status."""
    from soar.cli._identity import cli_principal_with
    from soar.review.feedback import visible_exceptions
    from soar.store import open_store

    settings = get_settings()
    principal = cli_principal_with(settings, "alerts:read")
    store = open_store(settings)
    try:
        docs = visible_exceptions(store, principal, status)
    finally:
        store.close()
    if as_json:
        echo_json(docs)
        return 0
    rows = [(d["id"], d["status"], d.get("rule_id") or "*", d["field"], ",".join(d["values"])) for d in docs]
    typer.echo(table(["id", "status", "rule", "field", "values"], rows))
    return 0


def _decide(exception_id: str, approve: bool) -> int:
    from soar.access import authorize_in
    from soar.cli._identity import cli_principal_with
    from soar.ids import resolve
    from soar.review.feedback import EXCEPTIONS, decide_exception
    from soar.scope import Scopes
    from soar.store import open_store

    settings = get_settings()
    principal = cli_principal_with(settings, "exceptions:approve")
    store = open_store(settings)
    try:
        exception_id = resolve(  # an id or a unique prefix among the exceptions in the principal's scope
            store, EXCEPTIONS, exception_id, "exception",
            lambda r: authorize_in(principal, "alerts:read", Scopes.of_exception(r.doc)).allowed,
        ).id  # fmt: skip
        doc = decide_exception(store, settings, exception_id, principal=principal, approve=approve)
    finally:
        store.close()
    typer.echo(f"exception {exception_id}: {doc['status']}")
    return 0


@exceptions_app.command("approve")
def approve(exception_id: str) -> int:
    """Approve as yourself: the scheduler applies it in the rule's query from its next cycle."""
    return _decide(exception_id, True)


@exceptions_app.command("reject")
def reject(exception_id: str) -> int:
    """Reject a proposed exception as yourself."""
    return _decide(exception_id, False)
