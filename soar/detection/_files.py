"""Which files are rules and which are fixtures — without importing pySigma (a warm convert needs only this)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from soar.errors import InputError

RULE_SUFFIXES = (".yml", ".yaml")
FIXTURE_SUFFIXES = (".tests.yml", ".tests.yaml")
SOAR_RULE_SUFFIXES = (".soar.yml", ".soar.yaml")  # soar's own rule types (new_terms, spike, silence), not Sigma


def is_fixture_file(path: Path) -> bool:
    return path.name.endswith(FIXTURE_SUFFIXES)


def orphan_fixtures(paths: Iterable[Path | str]) -> list[Path]:
    """Fixture files under ``paths`` with no rule file beside them: fixtures that would never run."""
    out: list[Path] = []
    for raw in paths:
        path = Path(raw)
        candidates = [path] if path.is_file() else sorted(path.rglob("*")) if path.is_dir() else []
        for candidate in candidates:
            if is_fixture_file(candidate):
                stem = candidate.name[: -len(next(s for s in FIXTURE_SUFFIXES if candidate.name.endswith(s)))]
                if not any(candidate.with_name(stem + suffix).is_file() for suffix in RULE_SUFFIXES):
                    out.append(candidate)
    return out


def rule_files(paths: Iterable[Path | str], soar: bool = False) -> list[Path]:
    """Sigma rule files under ``paths`` (files as given, folders recursively), fixtures and soar's own rule files
    excluded; with ``soar``, only soar's own rule files (``*.soar.yml``)."""
    out: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            # os.walk with plain strings: rglob's Path objects and stat calls cost more than a warm convert.
            found = [
                f"{folder}{os.sep}{name}"
                for folder, _dirs, names in os.walk(path)
                for name in names
                if name.endswith(RULE_SUFFIXES)
                and not name.endswith(FIXTURE_SUFFIXES)
                and name.endswith(SOAR_RULE_SUFFIXES) == soar
            ]
            out.extend(Path(name) for name in sorted(found, key=lambda f: f.split(os.sep)))  # noqa: PTH206 - speed
        elif path.is_file():
            if path.name.endswith(SOAR_RULE_SUFFIXES) == soar:
                out.append(path)
        else:
            raise InputError(f"{path}: no such file or folder")
    return out


def fixtures_path_for(path: Path) -> Path | None:
    stem = path.name.rsplit(".", 1)[0]
    for suffix in FIXTURE_SUFFIXES:
        candidate = path.with_name(stem + suffix)
        if candidate.is_file():
            return candidate
    return None
