"""Building pipelines from names and paths (imports pySigma; :mod:`soar.detection.pipelines` stays light)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path

from sigma.exceptions import SigmaError
from sigma.processing.pipeline import ProcessingItem, ProcessingPipeline

from soar.detection.pipelines import ecs_linux_yaml_path, is_path
from soar.detection.pipelines._strict import StrictEcsLinuxFields
from soar.errors import InputError


@cache
def _ecs_linux_text() -> str:
    return ecs_linux_yaml_path().read_text(encoding="utf-8")


def ecs_linux_base() -> ProcessingPipeline:
    """The YAML part of ecs_linux (mapping and log-source conditions), as sigma-cli would load it."""
    return ProcessingPipeline.from_yaml(_ecs_linux_text())


def ecs_linux() -> ProcessingPipeline:
    base = ecs_linux_base()
    strict = ProcessingItem(
        StrictEcsLinuxFields.from_pipeline(base),
        identifier="ecs_linux_strict_fields",
    )
    combined = base + ProcessingPipeline(items=[strict])
    combined.name = base.name
    return combined


SOAR_PIPELINES: dict[str, Callable[[], ProcessingPipeline]] = {"ecs_linux": ecs_linux}


@cache
def _installed() -> dict[str, Callable[[], ProcessingPipeline]]:
    from sigma.plugins import InstalledSigmaPlugins

    return dict(InstalledSigmaPlugins.autodiscover(include_backends=False, include_validators=False).pipelines)


def available_pipelines() -> list[str]:
    return sorted({*SOAR_PIPELINES, *_installed()})


def _load_one(spec: str) -> ProcessingPipeline:
    if spec in SOAR_PIPELINES:
        return SOAR_PIPELINES[spec]()
    if is_path(spec):
        path = Path(spec)
        try:
            return ProcessingPipeline.from_yaml(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise InputError(f"{spec}: cannot read pipeline file: {exc.strerror or exc}") from exc
        except SigmaError as exc:
            raise InputError(f"{spec}: invalid pipeline: {exc}") from exc
        except Exception as exc:  # pySigma raises plain errors on some malformed YAML shapes
            raise InputError(f"{spec}: invalid pipeline: {exc}") from exc
    installed = _installed()
    if spec in installed:
        return installed[spec]()
    raise InputError(f"--pipeline {spec}: unknown pipeline (known: {', '.join(available_pipelines())})")


def resolve_pipelines(specs: Sequence[str]) -> ProcessingPipeline:
    """One pipeline from names and/or YAML paths, applied in the order given."""
    if not specs:
        raise InputError("--pipeline: at least one pipeline is needed")
    pipeline = ProcessingPipeline()
    for spec in specs:
        pipeline = pipeline + _load_one(spec)
    return pipeline
