"""Containment that holds: every verified containment is watched while it is in force.

    ledger   containments recorded as their steps are verified, released as their reverts are
    watch    proven again on a schedule (a scheduler chore claims, a task looks); a drift is an event: the
             containment's record, the audit chain, the run's Slack thread, an alert, and by policy a repair

Nothing is imported here: the engine imports ``ledger`` where a step is recorded, the scheduler ``watch``.
"""
