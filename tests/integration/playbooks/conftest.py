"""The engine's content kit (tests/playbook_kit) for the tests that run it on the real services."""

from __future__ import annotations

from tests.playbook_kit import content, pb_settings

__all__ = ["content", "pb_settings"]  # fixtures
