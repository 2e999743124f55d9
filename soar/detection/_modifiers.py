"""Sigma's value modifiers as the specification names them, where pySigma spells one differently.

The specification lists ``utf16le`` with ``wide`` as its alias; pySigma (1.5) knows only ``wide``, so a
community rule written ``|utf16le|base64offset|contains`` was refused as an unknown modifier. Registered
here as pySigma's own ``wide`` class: the same transformation, the same queries on every backend.
"""

from __future__ import annotations

from sigma.modifiers import SigmaWideModifier, modifier_mapping

SPEC_ALIASES = {"utf16le": SigmaWideModifier}


def register() -> None:
    """Make pySigma accept the specification's names it lacks (never replacing one it has)."""
    for name, modifier in SPEC_ALIASES.items():
        modifier_mapping.setdefault(name, modifier)


register()
