"""Continuous detection: every enabled rule on its interval, gap-free, exactly once.

The package follows a cycle's data: :mod:`.rules` and :mod:`.loading` (what runs, with
its schedule), :mod:`.planning` (pure: what is due, which window, what is a gap),
:mod:`.query` (pure: the searches), :mod:`.search` (``_msearch`` and paging),
:mod:`.alerting` (fingerprints, suppression, create-once, hand-off), :mod:`.correlate`,
:mod:`.state` (checkpoints and gaps), :mod:`.cycle` (one cycle), :mod:`.loop` (the
scheduler), :mod:`.service` (what the CLI and tasks call). See docs/scheduler-api.md.
"""

from soar.scheduler.cycle import CycleReport, Detector, RuleRun
from soar.scheduler.loading import load_scheduled_rules
from soar.scheduler.loop import Scheduler
from soar.scheduler.planning import Window
from soar.scheduler.rules import ScheduledRule
from soar.scheduler.service import backfill, run_rule_ids, status

__all__ = [
    "CycleReport",
    "Detector",
    "RuleRun",
    "ScheduledRule",
    "Scheduler",
    "Window",
    "backfill",
    "load_scheduled_rules",
    "run_rule_ids",
    "status",
]
