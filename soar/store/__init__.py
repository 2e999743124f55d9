"""The state store: alerts, checkpoints, gaps, runs, approvals, audit entries, outbox.

One interface (:class:`~soar.store.base.Store`) with two implementations:
SQLite (the embedded default) and Elasticsearch indices (production). Documents
are JSON objects grouped by ``kind``; writes are optimistic (versioned) so
several workers can share a store without losing updates.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from soar.store.base import Change, Conflict, Create, Prefix, Range, Record, Store

if TYPE_CHECKING:
    from soar.config import Settings

__all__ = ["Change", "Conflict", "Create", "Prefix", "Range", "Record", "Store", "open_store"]


def open_store(settings: Settings) -> Store:
    """The configured store: SQLite under ``state_dir`` or Elasticsearch indices.

    Here, above the implementations, so that they depend on the interface (``base``) and not the other way round.
    """
    store: Store
    if settings.store == "elasticsearch":
        from soar.store.elastic import ElasticsearchStore

        store = ElasticsearchStore.from_settings(settings)
    else:
        from soar.store.sqlite import SQLiteStore

        store = SQLiteStore(settings.state_dir / "state.sqlite3")
    return store
