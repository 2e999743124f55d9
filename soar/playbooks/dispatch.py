"""Where a run's next step executes: a task on the response queue, or in-process in eager mode."""

from __future__ import annotations

from soar.config import Settings
from soar.dispatch import CeleryDispatcher, Local, Task, dispatcher_for, handles
from soar.playbooks.runner import Next, advance

__all__ = ["Next", "advance", "drive", "kick", "runtime_for", "schedule"]
from soar.playbooks.runtime import Runtime
from soar.store import Store

ADVANCE_TASK = Task.ADVANCE
MAX_INLINE_SLEEP = 30.0

# Each entry holds the very settings and store it was built for (checked with ``is``), so its key is never an id
# Python gave again to another object.
_RUNTIMES: dict[tuple[int, int], tuple[Settings, Store | None, Runtime]] = {}


def runtime_for(settings: Settings, store: Store | None = None) -> Runtime:
    """One Runtime per (settings, store) in a process: the registry and playbooks are loaded once."""
    key = (id(settings), id(store))
    entry = _RUNTIMES.get(key)
    if entry is not None and entry[0] is settings and entry[1] is store:
        return entry[2]
    rt = Runtime.build(settings, store=store)
    _RUNTIMES[key] = (settings, store, rt)
    return rt


def forget_runtimes() -> None:
    """Drop every runtime of the process, closing what their runs still had open."""
    for _, _, rt in _RUNTIMES.values():
        rt.close_resources()
    _RUNTIMES.clear()


def drive(rt: Runtime, run_id: str, *, max_steps: int = 10_000) -> Next:
    """Advance a run in this process until it pauses, finishes or another worker holds it."""
    nxt = Next("continue")
    for _ in range(max_steps):
        nxt = advance(rt, run_id)
        if nxt.kind in ("done", "paused", "busy"):
            return nxt
        if nxt.delay:
            rt.clock.sleep(min(nxt.delay, MAX_INLINE_SLEEP))
    return nxt


def schedule(settings: Settings, run_id: str, delay: float = 0.0) -> None:
    """The run's next step as a worker's task (after ``delay`` seconds), whatever the mode (``--queue``)."""
    CeleryDispatcher().send(
        ADVANCE_TASK, [run_id], queue=settings.response_queue, countdown=delay if delay > 0 else None
    )


def kick(settings: Settings, run_id: str, *, store: Store | None = None, runtime: Runtime | None = None) -> None:
    """Make a run progress: in-process when eager (until it pauses or ends), else a task on the response queue."""
    dispatcher_for(settings, store).send(
        ADVANCE_TASK,
        [run_id],
        queue=settings.response_queue,
        here=lambda: drive(runtime or runtime_for(settings, store), run_id),
    )


@handles(ADVANCE_TASK)
def _drive_here(local: Local, run_id: str) -> None:
    """Eager mode: a run resumed by name (an approval decided) goes on in the sender's process, with its store."""
    drive(runtime_for(local.settings, local.store), run_id)
