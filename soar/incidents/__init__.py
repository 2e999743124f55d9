"""Incidents: alerts on one host or user close in time, grouped deterministically and exactly once.

    grouping   pure: an alert's key and time, the sessions of a key (what belongs together, in any order)
    attach     the store's side: ledger, membership, merges, the incident's summary
    changes    what people do to an incident (status, owner, notes), audited with the principal
    report     the incident's timeline and its one report (each run's report a section of it)

See docs/incidents.md.
"""

from soar.incidents.attach import KEYS, MEMBERS, Attached, attach, attach_id, attach_quietly, incident_of_alert, live_id
from soar.records.incident import KIND

__all__ = [
    "KEYS",
    "KIND",
    "MEMBERS",
    "Attached",
    "attach",
    "attach_id",
    "attach_quietly",
    "incident_of_alert",
    "live_id",
]
