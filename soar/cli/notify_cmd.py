"""``soar notify``: the Slack outbox — what waits, what failed, deliver now, check routing."""

from __future__ import annotations

import time
from functools import partial
from typing import Any

import typer

from soar.cli._output import echo_json, table
from soar.config import get_settings
from soar.errors import InputError

app = typer.Typer(no_args_is_help=True)


@app.command("outbox")
def outbox(
    status: list[str] = typer.Option([], "--status", "-s", help="pending, sending, sent, failed, summarized, ..."),
    limit: int = typer.Option(50, "--limit", min=1, max=5000),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List outbox messages, newest first (default: those not yet sent)."""
    from soar.notify.outbox import listing
    from soar.store import open_store

    store = open_store(get_settings())
    messages = listing(store, status or ["pending", "sending", "failed"], limit=limit)
    if as_json:
        echo_json([{k: v for k, v in m.to_doc().items() if k != "blocks"} for m in messages])
        return
    rows = [(m.created_at, m.channel, m.kind, m.status, m.attempts, m.last_error or "", m.key) for m in messages]
    typer.echo(table(["created", "channel", "kind", "status", "tries", "last error", "key"], rows))


def _unblocked(channel: str, doc: dict[str, Any]) -> dict[str, Any]:
    from soar.records import ChannelState

    state = ChannelState.from_doc(doc, channel)
    state.blocked_until, state.error = 0.0, None
    return state.to_doc()


@app.command("deliver")
def deliver(
    channel: list[str] = typer.Option([], "--channel", "-c", help="Only these channels (default: every one waiting)."),
    now: bool = typer.Option(False, "--now", help="Retry at once, ignoring backoff and failed status."),
    wait: float = typer.Option(
        0.0, "--wait", min=0, max=3600, help="Keep retrying (honouring back-off) up to this many seconds."
    ),
) -> int:
    """Send waiting messages now (e.g. after creating a missing channel or inviting the bot, or after a restart)."""
    from soar.notify import deliver as deliver_channel
    from soar.notify.outbox import CHANNELS_KIND, KIND, channels_with_open_messages, listing
    from soar.store import open_store

    settings = get_settings()
    store = open_store(settings)
    if now:
        for message in listing(store, ["pending", "failed"], limit=20000):
            if channel and message.channel not in channel:
                continue
            message.status, message.next_attempt_at = "pending", 0.0
            store.put(KIND, message.key, message.to_doc())
        for record in store.find(CHANNELS_KIND):  # unblocked, keeping a lease a deliverer may hold
            store.mutate(CHANNELS_KIND, record.id, partial(_unblocked, record.id))
    deadline = time.monotonic() + wait
    totals: dict[str, tuple[Any, ...]] = {}  # channel -> row: counts summed over passes, the last pass's state
    while True:
        reports = [deliver_channel(settings, store, name) for name in channel or channels_with_open_messages(store)]
        for r in reports:
            sent, summarised, failed = totals.get(r.channel, (r.channel, 0, 0, 0))[1:4]
            retry = "" if r.retry_in is None else f"{r.retry_in:.0f}s"
            errors = "; ".join(r.errors[:2])
            totals[r.channel] = (r.channel, sent + r.sent, summarised + r.summarized, failed + r.failed, retry, errors)
        waits = [r.retry_in for r in reports if r.retry_in is not None]
        if not waits or time.monotonic() + min(waits) > deadline:
            break
        time.sleep(min(waits))
    typer.echo(table(["channel", "sent", "summarised", "failed", "retry in", "errors"], list(totals.values())))
    return 1 if any(row[5] for row in totals.values()) else 0


@app.command("routes")
def routes(
    severity: str = typer.Option("", "--severity", help="Show where an alert of this level would go."),
    rule: str = typer.Option("", "--rule", help="Rule id or title for the check."),
) -> None:
    """Check notify.yml and show the routes (an invalid file is one line naming file:line)."""
    from soar.alerts import LEVEL_ORDER
    from soar.notify.routing import load_routes

    settings = get_settings()
    loaded = load_routes(settings)
    rows = [
        (r.channel, r.min_severity or "", ",".join(r.severity), ",".join(r.rule), ",".join(r.team))
        for r in loaded.routes
    ]
    rows.append((loaded.default, "(default)", "", "", ""))
    typer.echo(table(["channel", "min severity", "severity", "rule", "team"], rows))
    if severity or rule:
        if severity and severity not in LEVEL_ORDER:
            raise InputError(f"--severity: must be one of {', '.join(LEVEL_ORDER)}, got {severity!r}")
        summary = {"level": severity or "medium", "rule_id": rule, "title": rule, "tags": []}
        typer.echo(f"→ {loaded.channel_for(summary)}")
