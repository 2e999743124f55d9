"""Processing pipelines by name or path: soar's ``ecs_linux`` and every installed pySigma pipeline.

``ecs_linux`` is plain pySigma YAML (``ecs_linux.yml``, also usable with ``sigma convert -p``)
followed by a strict check (:mod:`._strict`) that fails a Linux rule on any field the
pipeline neither maps nor accepts — pySigma would pass it through and the rule would never fire.

This module does not import pySigma (the compile cache needs only :func:`pipeline_identity`);
building pipelines lives in :mod:`._resolve`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from soar.errors import InputError

if TYPE_CHECKING:
    from sigma.processing.pipeline import ProcessingPipeline

DEFAULT_PIPELINES: tuple[str, ...] = ("ecs_linux",)
SOAR_PIPELINE_NAMES: tuple[str, ...] = ("ecs_linux",)


def ecs_linux_yaml_path() -> Path:
    return Path(str(resources.files("soar.detection.pipelines") / "ecs_linux.yml"))


def is_path(spec: str) -> bool:
    return spec.endswith((".yml", ".yaml")) or "/" in spec


def resolve_pipelines(specs: Sequence[str]) -> ProcessingPipeline:
    """One pipeline from names and/or YAML paths, applied in the order given."""
    from soar.detection.pipelines._resolve import resolve_pipelines as resolve

    return resolve(specs)


def available_pipelines() -> list[str]:
    from soar.detection.pipelines._resolve import available_pipelines as available

    return available()


def pipeline_identity(specs: Sequence[str]) -> str:
    """A stable identity of the pipelines for the compile cache: names, and file contents for paths."""
    parts: list[str] = []
    for spec in specs:
        if spec in SOAR_PIPELINE_NAMES:
            parts.append(f"{spec}:{hashlib.sha256(ecs_linux_yaml_path().read_bytes()).hexdigest()[:16]}")
        elif is_path(spec):
            try:
                digest = hashlib.sha256(Path(spec).read_bytes()).hexdigest()[:16]
            except OSError as exc:
                raise InputError(f"{spec}: cannot read pipeline file: {exc.strerror or exc}") from exc
            parts.append(f"{spec}:{digest}")
        else:
            parts.append(spec)
    return "+".join(parts)
