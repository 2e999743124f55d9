"""Actions: plain functions in ``integrations/`` that playbooks call by name.

An integration module tags its functions with :func:`action`; importing it
changes no global state. :class:`ActionRegistry` scans the integrations folders
of the content root and builds a parameter model for each action from its
signature. The engine finds actions by name only.
"""

from soar.actions.model import ActionContext, ActionResult, ActionSpec, Impact, PlannedCommand, Secrets, action
from soar.actions.registry import ActionRegistry, UnknownAction, load_registry

__all__ = [
    "ActionContext",
    "ActionRegistry",
    "ActionResult",
    "ActionSpec",
    "Impact",
    "PlannedCommand",
    "Secrets",
    "UnknownAction",
    "action",
    "load_registry",
]
