"""Built-in actions that need no external system: log a message, set values for later steps."""

from __future__ import annotations

from typing import Any

from soar.actions import ActionContext, ActionResult, action


@action("core.log", impact="read", idempotent=True, description="Write a message to soar's log and the run record.")
def log(ctx: ActionContext, message: str, level: str = "info") -> ActionResult:
    """Write a message to the log; the message is data (already rendered), never a template."""
    if level not in ("debug", "info", "warning", "error"):
        return ActionResult.failure(f"level must be debug, info, warning or error, got {level!r}")
    if not ctx.dry_run:
        getattr(ctx.logger, level)("run %s step %s: %s", ctx.run_id, ctx.step_id, message)
    return ActionResult(ok=True, output={"message": message, "level": level}, changed=False)


@action("core.set", impact="read", idempotent=True, description="Expose values to later steps as the result.")
def set_values(ctx: ActionContext, values: dict[str, Any]) -> ActionResult:
    """Make computed values available as ``steps.<id>.result.output``."""
    return ActionResult(ok=True, output=dict(values), changed=False)
