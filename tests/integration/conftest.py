"""Every test under tests/integration needs a real service: it is marked ``integration``.

So ``pytest -m "not integration"`` is the fast suite (what ``make unit`` runs), and a test that needs
a service cannot hide among the pure ones by forgetting a marker.
"""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.integration)
