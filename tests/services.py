"""Access to the real services for tests.

Under ``CI=true`` a missing service fails the test; elsewhere it skips with the
command that starts it, so a developer without the services can still run the
pure tests.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import NoReturn, TypeVar

import pytest

T = TypeVar("T")

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def unavailable(what: str, reason: str) -> NoReturn:
    message = f"{what} is not available ({reason}); start it with: scripts/services.sh up"
    if IN_CI:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def require(what: str, probe: Callable[[], T]) -> T:
    """Run ``probe``; if it raises, the service is missing: fail under CI, skip elsewhere."""
    try:
        return probe()
    except Exception as exc:
        unavailable(what, f"{type(exc).__name__}: {exc}")
