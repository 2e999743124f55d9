"""Slack actions playbooks call: post to the incident's thread or a channel, through the outbox.

Messages are stored before they are sent (``soar.notify``), so a Slack outage
delays a notification but never loses it, and a step retried by the engine posts
once: the idempotency key is the run, the step and the text.
"""

from __future__ import annotations

from soar.actions import ActionContext, ActionResult, action


@action("slack.notify", impact="notify", idempotent=True, targets={"channel": "channel"})
def notify(ctx: ActionContext, text: str, channel: str | None = None) -> ActionResult:
    """Post a message in the incident's Slack thread (or to ``channel``); the log when Slack is not configured."""
    from soar.notify import notify_text
    from soar.notify.outbox import key_for
    from soar.store import open_store

    if not text.strip():
        return ActionResult.failure("slack.notify: text is empty")
    if ctx.dry_run:
        return ActionResult(ok=True, output={"would_post": text[:3000], "channel": channel or "incident thread"})
    lent = ctx.resources.get("store")  # a run's: the runtime's store, lent for the run
    store = lent if lent is not None else open_store(ctx.settings)  # called alone: its own, closed after
    try:
        key = key_for("action", ctx.run_id, ctx.step_id, channel, text)
        message = notify_text(ctx.settings, store, text, channel=channel, run_id=ctx.run_id, key=key)
        from soar.notify.outbox import get

        stored = get(store, message.key) or message
    finally:
        if lent is None:
            store.close()
    sent = stored.status == "sent"
    return ActionResult(
        ok=True,
        output={
            "outbox_key": stored.key,
            "channel": stored.channel,
            "status": stored.status,
            "ts": stored.ts,
            "in_thread": stored.target is not None,
        },
        # Delivery is the outbox's job: queued (e.g. during an outage) is still a success, verified when posted.
        verified=sent if ctx.settings.celery_eager else None,
        verification={"delivered": sent, "last_error": stored.last_error},
    )
