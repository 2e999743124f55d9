"""Record ids as people type them: an exact id, or any prefix of one that only one record has.

The command line shows short ids (``runs list`` the first 16 characters of an alert's 40); every
command that takes an id accepts what it showed. An ambiguous prefix is refused listing the
candidates; a prefix of fewer than ``MIN_PREFIX`` characters is refused outright (it would
match half the store). ``visible`` is the caller's scope: a record it refuses is not a candidate
at all — answered like an unknown id and never listed among an ambiguous prefix's candidates.
"""

from __future__ import annotations

from collections.abc import Callable

from soar.errors import InputError, NotFound
from soar.store import Prefix, Record, Store

MIN_PREFIX = 4
SHOWN = 10
LOOKED_AT = 500  # candidates read for one prefix (then filtered by scope)


def _everyone(_record: Record) -> bool:
    return True


def resolve(store: Store, kind: str, text: str, noun: str, visible: Callable[[Record], bool] = _everyone) -> Record:
    """The record of ``kind`` whose id is ``text`` or starts with it (NotFound / InputError naming ``noun``)."""
    text = text.strip()
    exact = store.get(kind, text) if text else None
    if exact is not None and visible(exact):
        return exact
    if len(text) < MIN_PREFIX:
        raise NotFound(f"unknown {noun} id {text!r} (give at least {MIN_PREFIX} characters of an id)")
    found = [r for r in store.find(kind, {"id": Prefix(text)}, limit=LOOKED_AT) if visible(r)]
    if not found:
        raise NotFound(f"unknown {noun} id {text!r}")
    if len(found) > 1:
        shown = ", ".join(r.id for r in found[:SHOWN]) + (", ..." if len(found) > SHOWN else "")
        raise InputError(f"{noun} id {text!r} is ambiguous: {shown} (give more characters)")
    return found[0]
