"""The state store: alerts, checkpoints, gaps, runs, approvals, audit entries, outbox.

One interface (:class:`~soar.store.base.Store`) with two implementations:
SQLite (the embedded default) and Elasticsearch indices (production). Documents
are JSON objects grouped by ``kind``; writes are optimistic (versioned) so
several workers can share a store without losing updates.
"""

from soar.store.base import Change, Conflict, Create, Prefix, Range, Record, Store, open_store

__all__ = ["Change", "Conflict", "Create", "Prefix", "Range", "Record", "Store", "open_store"]
