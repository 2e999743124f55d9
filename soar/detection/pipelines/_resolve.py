"""Building pipelines from names and paths (imports pySigma; :mod:`soar.detection.pipelines` stays light)."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path

import yaml
from sigma.exceptions import SigmaConfigurationError, SigmaError
from sigma.processing.pipeline import ProcessingItem, ProcessingPipeline

from soar import _yaml
from soar.detection._loading import yaml_error
from soar.detection._yamlpos import Mark, Positions, positions
from soar.detection.pipelines import ecs_linux_yaml_path, is_path
from soar.detection.pipelines._strict import StrictEcsLinuxFields
from soar.errors import InputError, SourceLocation

# The lists of a pipeline file whose items pySigma numbers as "processing rule N".
ITEM_LISTS = ("transformations", "postprocessing")


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
        return _from_file(Path(spec))
    installed = _installed()
    if spec in installed:
        return installed[spec]()
    raise InputError(f"--pipeline {spec}: unknown pipeline (known: {', '.join(available_pipelines())})")


def _from_file(path: Path) -> ProcessingPipeline:
    """A pipeline YAML file; an error names its file:line:col (pySigma names the item at best)."""
    try:
        text = _yaml.read_text(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read pipeline file: {getattr(exc, 'strerror', None) or exc}") from exc
    try:
        node = _yaml.compose(text)  # an alias is refused before pySigma expands it
    except yaml.YAMLError as exc:
        error = yaml_error(path, exc, "pipeline YAML")
        raise InputError(error.message, error.source) from exc
    try:
        if node is None or not isinstance(node, yaml.MappingNode):
            raise SigmaConfigurationError("a pipeline must be a mapping (name, transformations, ...)")
        return ProcessingPipeline.from_yaml(text)
    except Exception as exc:  # SigmaError, and plain errors pySigma raises on some malformed shapes
        message = str(exc.args[0] if isinstance(exc, SigmaError) and exc.args else exc)
        mark = _locate(positions(node), message) if node is not None else Mark(1, 1)
        raise InputError(f"invalid pipeline: {message}", SourceLocation(path, mark.line, mark.column)) from exc


def _locate(pos: Positions, message: str) -> Mark:
    """The item pySigma's message numbers ("processing rule 2"), or the token it quotes inside that item."""
    found = re.search(r"processing rule (\d+)", message)
    items = [(key, int(found.group(1)) - 1) for key in ITEM_LISTS] if found else []
    items = [item for item in items if item in pos.values]
    for token in re.findall(r"'([^']{1,200})'", message):
        for under in [*items, ()]:
            mark = pos.find(token, under)
            if mark is not None:
                return mark
    return pos.values[items[0]] if items else pos.locate_message(message)


def resolve_pipelines(specs: Sequence[str]) -> ProcessingPipeline:
    """One pipeline from names and/or YAML paths, applied in the order given."""
    if not specs:
        raise InputError("--pipeline: at least one pipeline is needed")
    pipeline = ProcessingPipeline()
    for spec in specs:
        pipeline = pipeline + _load_one(spec)
    return pipeline
