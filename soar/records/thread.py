"""The ``notify_threads`` document: one incident's Slack thread and the state its card is drawn from.

Pure. ``runs`` holds, per run id, what the card shows of it — playbook, status, each step's
status and summary — and the ``seq`` of the newest event that set each status (events arrive
in any order; ``soar/notify/incidents.py`` applies them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from soar.records._read import VERSION_FIELD, Reader, check_version, modelled, put, with_nulls

KIND = "notify_threads"
RUN_INDEX_KIND = "notify_runs"  # run id -> incident id, so actions inside a run find their thread
SCHEMA_VERSION = 1


@dataclass(slots=True)
class ThreadStep:
    uses: str | None = None
    status: str | None = None
    dry_run: bool | None = None
    summary: str | None = None
    seq: int | None = None

    @classmethod
    def read(cls, r: Reader) -> ThreadStep:
        return cls(
            uses=r.opt_string("uses"),
            status=r.opt_string("status"),
            dry_run=r.opt_flag("dry_run"),
            summary=r.opt_string("summary"),
            seq=r.opt_integer("seq"),
        )

    def to_doc(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in ("uses", "status", "dry_run", "summary", "seq"):
            put(out, name, getattr(self, name))
        return out


@dataclass(slots=True)
class ThreadRun:
    playbook: str | None = None
    status: str = "running"
    dry_run: bool | None = None
    seq: int | None = None
    steps: dict[str, ThreadStep] = field(default_factory=dict)

    @classmethod
    def read(cls, r: Reader) -> ThreadRun:
        steps = r.child("steps", r.obj("steps", None))
        return cls(
            playbook=r.opt_string("playbook"),
            status=r.string("status", "running"),
            dry_run=r.opt_flag("dry_run"),
            seq=r.opt_integer("seq"),
            steps={sid: ThreadStep.read(steps.child(sid, s)) for sid, s in steps.doc.items()},
        )

    def to_doc(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "playbook": self.playbook,
            "status": self.status,
            "steps": {sid: s.to_doc() for sid, s in self.steps.items()},
        }
        put(out, "dry_run", self.dry_run)
        put(out, "seq", self.seq)
        return out


@dataclass(slots=True)
class Thread:
    """An incident's thread: its channel, the key of its card message, and what the card shows."""

    id: str
    channel: str
    card: str
    summary: dict[str, Any] = field(default_factory=dict)
    status: str = "open"
    status_seq: int | None = None
    planned: str | None = None
    runs: dict[str, ThreadRun] = field(default_factory=dict)
    created_at: str | None = None
    revision: int = 0
    schema_version: int = SCHEMA_VERSION
    extra: dict[str, Any] = field(default_factory=dict)
    nulls: frozenset[str] = field(default=frozenset(), compare=False, repr=False)

    @classmethod
    def from_doc(cls, doc: Any, id: str | None = None) -> Thread:
        tid = str((doc.get("id") if isinstance(doc, dict) else None) or id or "?")
        version = check_version(KIND, tid, doc if isinstance(doc, dict) else {}, SCHEMA_VERSION)
        r = Reader(KIND, tid, doc)
        runs = r.child("runs", r.obj("runs", None))
        return cls(
            id=r.string("id", tid),
            channel=r.string("channel"),
            card=r.string("card"),
            summary=r.obj("summary", None),
            status=r.string("status", "open"),
            status_seq=r.opt_integer("status_seq"),
            planned=r.opt_string("planned"),
            runs={rid: ThreadRun.read(runs.child(rid, run)) for rid, run in runs.doc.items()},
            created_at=r.opt_string("created_at"),
            revision=r.opt_integer("revision") or 0,
            schema_version=version,
            extra=r.unknown(modelled(cls)),
            nulls=r.nulls(modelled(cls)),
        )

    def to_doc(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            VERSION_FIELD: SCHEMA_VERSION,
            "id": self.id,
            "channel": self.channel,
            "card": self.card,
            "summary": self.summary,
            "status": self.status,
            "planned": self.planned,
            "runs": {rid: run.to_doc() for rid, run in self.runs.items()},
            "created_at": self.created_at,
            "revision": self.revision,
        }
        put(out, "status_seq", self.status_seq)
        return {**self.extra, **with_nulls(out, self.nulls)}
