"""The playbook engine: YAML playbooks triggered by alerts, run step by step on Celery.

    model / loader      the playbook format, validated with file:line errors
    templating          Jinja2 sandbox with StrictUndefined; alert values are data, never templates
    triggers            which playbooks an alert starts
    planner             a step rendered for an alert: when, for_each, parameters, targets
    runner              the run state machine (one step attempt per advance, persisted)
    approvals           N-of-M approvals with expiry; ``decide`` is the one entry point
    events              run events published to the notifier
    engine              start runs, dry-run plans, recovery of runs a lost worker left

See docs/playbooks-api.md.
"""

from soar.playbooks.approvals import ApprovalOutcome, decide
from soar.playbooks.events import publish
from soar.playbooks.loader import load_playbooks, parse_playbook
from soar.playbooks.model import Playbook

__all__ = ["ApprovalOutcome", "Playbook", "decide", "load_playbooks", "parse_playbook", "publish"]
