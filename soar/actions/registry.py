"""Find actions in the integrations folders and call them by name with validated parameters."""

from __future__ import annotations

import importlib.util
import inspect
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType
from typing import Any, cast

from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError, create_model

from soar.actions.model import ACTION_ATTR, ActionContext, ActionResult, ActionSpec, Secrets
from soar.config import Settings
from soar.errors import ContentError, InputError, SoarError
from soar.urls import mask_url, url_passwords

BUILTIN_INTEGRATIONS = Path(__file__).resolve().parent.parent.parent / "integrations"
MODULE_PREFIX = "soar_integrations"


class UnknownAction(SoarError):
    """A playbook names an action no integration provides."""


@dataclass(frozen=True)
class RegisteredAction:
    spec: ActionSpec
    func: Callable[..., ActionResult]
    params: type[BaseModel]
    module: str
    builtin: bool = True  # shipped with soar (integrations/ beside the package), not a content root's own

    def validate(self, params: dict[str, Any]) -> dict[str, Any]:
        """Check parameters against the signature; raise InputError naming the parameter."""
        try:
            model = self.params.model_validate(params)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"]) or "parameters"
            raise InputError(f"{self.spec.name}: parameter {where}: {err['msg']}") from exc
        return model.model_dump()

    def call(self, ctx: ActionContext, params: dict[str, Any]) -> ActionResult:
        """Validate, then call with a context holding only what the action declared (see :func:`scoped_context`)."""
        values = self.validate(params)
        try:
            scoped = scoped_context(self, ctx)
        except InputError as exc:
            return ActionResult.failure(exc.message, output={"refused": exc.message})
        return self.func(scoped, **values)


def missing_secrets(spec: ActionSpec, settings: Settings) -> list[str]:
    """The declared keys its integration's settings lack, each as the variable that sets it."""
    own = settings.integration.get(spec.integration, {})
    return [
        f"SOAR_INTEGRATION__{spec.integration.upper()}__{key.upper()}"
        for key in spec.secrets
        if key not in own or not own[key].get_secret_value()
    ]


def scoped_context(action: RegisteredAction, ctx: ActionContext) -> ActionContext:
    """The context an action runs with: ``secrets`` = its declared keys (InputError naming a missing one).

    A content root's own integration also gets settings without any secret of soar's (store, Slack, audit, API
    tokens, other integrations): what it needs, it declares. soar's own integrations keep the full settings.
    """
    missing = missing_secrets(action.spec, ctx.settings)
    if missing:
        raise InputError(f"{action.spec.name}: needs {', '.join(missing)} (not set)")
    own = ctx.settings.integration.get(action.spec.integration, {})
    secrets = Secrets({key: own[key].get_secret_value() for key in action.spec.secrets})
    settings = ctx.settings if action.builtin else without_secrets(ctx.settings)
    return replace(ctx, settings=settings, secrets=secrets)


def without_secrets(settings: Settings) -> Settings:
    """``settings`` with every secret of soar's cleared, URL passwords included."""
    cleared: dict[str, Any] = {"integration": {}}
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            cleared[name] = None
        elif isinstance(value, str) and url_passwords(value):
            cleared[name] = mask_url(value)
    return settings.model_copy(update=cleared)


def _params_model(name: str, func: Callable[..., Any]) -> type[BaseModel]:
    sig = inspect.signature(func, eval_str=True)
    fields: dict[str, Any] = {}
    for i, (pname, param) in enumerate(sig.parameters.items()):
        if i == 0:
            continue  # the ActionContext
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise ContentError(f"action {name}: *args/**kwargs are not allowed; declare every parameter")
        annotation = param.annotation if param.annotation is not inspect.Parameter.empty else Any
        default = param.default if param.default is not inspect.Parameter.empty else ...
        fields[pname] = (annotation, default)
    model_name = "Params_" + name.replace(".", "_")
    return create_model(model_name, __config__=ConfigDict(extra="forbid", strict=False), **fields)


def _load_module(path: Path) -> ModuleType:
    stem = path.parent.name if path.name == "__init__.py" else path.stem
    mod_name = f"{MODULE_PREFIX}.{stem}"
    if mod_name in sys.modules and getattr(sys.modules[mod_name], "__file__", None) == str(path):
        return sys.modules[mod_name]
    locations = [str(path.parent)] if path.name == "__init__.py" else None
    spec = importlib.util.spec_from_file_location(mod_name, path, submodule_search_locations=locations)
    if spec is None or spec.loader is None:
        raise ContentError(f"{path}: cannot be imported as an integration")
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    try:
        spec.loader.exec_module(module)
    except SoarError:
        raise
    except Exception as exc:
        del sys.modules[mod_name]
        raise ContentError(f"{path}: integration failed to import: {type(exc).__name__}: {exc}") from exc
    return module


def integration_files(folders: Iterable[Path]) -> Iterator[Path]:
    seen: set[str] = set()
    for folder in folders:
        if not folder.is_dir():
            continue
        for entry in sorted(folder.iterdir()):
            if entry.name.startswith(("_", ".")):
                continue
            target = entry / "__init__.py" if entry.is_dir() else entry
            if target.suffix != ".py" or not target.is_file():
                continue
            stem = entry.name if entry.is_dir() else entry.stem
            if stem in seen:  # the content root's integration overrides the built-in one
                continue
            seen.add(stem)
            yield target


class ActionRegistry:
    """Name → action. Built by scanning modules; nothing registers itself at import."""

    def __init__(self) -> None:
        self._actions: dict[str, RegisteredAction] = {}

    def add_module(self, module: ModuleType) -> None:
        for _, func in inspect.getmembers(module, callable):
            spec = getattr(func, ACTION_ATTR, None)
            if not isinstance(spec, ActionSpec):
                continue
            existing = self._actions.get(spec.name)
            if existing is not None and existing.func is not func:
                raise ContentError(f"action {spec.name} is defined twice: in {existing.module} and {module.__name__}")
            typed = cast(Callable[..., ActionResult], func)
            builtin = Path(str(getattr(module, "__file__", ""))).resolve().is_relative_to(BUILTIN_INTEGRATIONS)
            self._actions[spec.name] = RegisteredAction(
                spec, typed, _params_model(spec.name, func), module.__name__, builtin
            )

    def get(self, name: str) -> RegisteredAction:
        try:
            return self._actions[name]
        except KeyError:
            known = ", ".join(sorted(self._actions)) or "none"
            raise UnknownAction(f"unknown action {name!r} (known: {known})") from None

    def __contains__(self, name: object) -> bool:
        return name in self._actions

    def names(self) -> list[str]:
        return sorted(self._actions)

    def specs(self) -> list[ActionSpec]:
        return [self._actions[n].spec for n in self.names()]


def load_registry(settings: Settings, extra_folders: Iterable[Path] = ()) -> ActionRegistry:
    """Scan the content root's ``integrations/`` (then the built-in one) for actions."""
    folders = [*extra_folders, settings.content_root / "integrations", BUILTIN_INTEGRATIONS]
    registry = ActionRegistry()
    for path in integration_files(folders):
        registry.add_module(_load_module(path))
    return registry
