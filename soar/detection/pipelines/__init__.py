"""Processing pipelines by name or path: soar's ``ecs_linux`` and every installed pySigma pipeline.

``ecs_linux`` is plain pySigma YAML (``ecs_linux.yml``, also usable with ``sigma convert -p``)
followed by a strict check (:mod:`._strict`) that fails a Linux rule on any field the
pipeline neither maps nor accepts — pySigma would pass it through and the rule would never fire.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from functools import cache
from importlib import resources
from pathlib import Path

from sigma.exceptions import SigmaError
from sigma.processing.pipeline import ProcessingItem, ProcessingPipeline

from soar.detection.pipelines._strict import StrictEcsLinuxFields
from soar.errors import InputError

DEFAULT_PIPELINES: tuple[str, ...] = ("ecs_linux",)


def ecs_linux_yaml_path() -> Path:
    return Path(str(resources.files("soar.detection.pipelines") / "ecs_linux.yml"))


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


def _is_path(spec: str) -> bool:
    return spec.endswith((".yml", ".yaml")) or "/" in spec


def _load_one(spec: str) -> ProcessingPipeline:
    if spec in SOAR_PIPELINES:
        return SOAR_PIPELINES[spec]()
    if _is_path(spec):
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


def pipeline_identity(specs: Sequence[str]) -> str:
    """A stable identity of the pipelines for the compile cache: names, and file contents for paths."""
    parts: list[str] = []
    for spec in specs:
        if spec in SOAR_PIPELINES:
            parts.append(f"{spec}:{hashlib.sha256(ecs_linux_yaml_path().read_bytes()).hexdigest()[:16]}")
        elif _is_path(spec):
            try:
                digest = hashlib.sha256(Path(spec).read_bytes()).hexdigest()[:16]
            except OSError as exc:
                raise InputError(f"{spec}: cannot read pipeline file: {exc.strerror or exc}") from exc
            parts.append(f"{spec}:{digest}")
        else:
            parts.append(spec)
    return "+".join(parts)
