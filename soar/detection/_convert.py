"""Converting whole folders with the compile cache, skipping YAML and pySigma entirely on a warm run.

The cache is consulted per file before anything is parsed: the key is the file's bytes, the
pipelines and the target (and library versions, see :class:`CompileCache`). A file holding a
correlation also records the files of its base rules and their hashes, and misses when one
of them changed. A file's entry keeps its compiled rules as JSON text, so ``--json`` splices
the texts together instead of decoding and encoding thousands of rules.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from soar.detection._compiled import CompileCache, CompiledRule, error_from_cache, error_to_cache
from soar.detection._files import rule_files
from soar.detection.pipelines import pipeline_identity
from soar.errors import ContentError, SourceLocation


@dataclass
class ConvertResult:
    # Per file, in file order: the JSON text (sorted keys) of its rules' CompiledRule.to_dict().
    chunks: list[str] = field(default_factory=list)
    errors: list[ContentError] = field(default_factory=list)
    cache_hits: int = 0

    @property
    def records(self) -> list[dict[str, Any]]:
        """CompiledRule.to_dict() of each rule."""
        return [record for chunk in self.chunks for record in json.loads(chunk)]

    @property
    def compiled(self) -> list[CompiledRule]:
        return [CompiledRule.from_dict(r) for r in self.records]

    def to_json(self) -> str:
        """``json.dumps(self.records, sort_keys=True)``, joined from the texts without decoding them."""
        return "[" + ", ".join(chunk[1:-1] for chunk in self.chunks if chunk != "[]") + "]"


def _digest(path: Path, memo: dict[Path, str]) -> str:
    if path not in memo:
        try:
            with open(path, "rb") as handle:  # noqa: PTH123 - Path.read_bytes costs a third more, per file
                memo[path] = hashlib.sha256(handle.read()).hexdigest()
        except OSError:
            memo[path] = "missing"
    return memo[path]


def convert_paths(
    paths: Sequence[Path | str],
    target: str = "elasticsearch",
    pipelines: Sequence[str] = ("ecs_linux",),
    cache: CompileCache | None = None,
) -> ConvertResult:
    """Compile every rule under ``paths``; with a cache, unchanged files are not parsed at all."""
    identity = pipeline_identity(tuple(pipelines))
    files = rule_files(paths)
    memo: dict[Path, str] = {}
    result = ConvertResult()
    cached: dict[Path, str] = {}
    # Per file, in file order: its errors (a refused rule is cached with its refusal, as a compiled one is).
    file_errors: dict[Path, list[ContentError]] = {}
    if cache is not None:
        keys = {path: cache.key("file", _digest(path, memo), identity, target) for path in files}
        entries = cache.get_many(list(keys.values()))
        for path in files:
            entry = entries.get(keys[path])
            if entry is None:
                continue
            if all(_digest(Path(dep), memo) == digest for dep, digest in entry["deps"].items()):
                cached[path] = entry["compiled"]
                file_errors[path] = [error_from_cache(path, e) for e in entry.get("errors", [])]
    missing = [p for p in files if p not in cached]
    ids: dict[Path, list[list[Any]]] = {path: entries[keys[path]]["ids"] for path in cached} if cached else {}
    fresh: dict[Path, list[dict[str, Any]]] = {}
    texts: dict[Path, str] = {}
    if missing:
        from soar.detection._compile import Compiler  # pySigma is imported only when something must compile
        from soar.detection._loading import load_rules

        compiler = Compiler(target, pipelines)  # only now: building backends and pipelines costs a warm run most
        # Conditions are parsed by the conversion itself; a bad one is reported from there.
        ruleset = load_rules(files if len(missing) < len(files) else missing, parse_conditions=False)
        wanted = set(missing)
        # Not cached: a file with an error that depends on other files too (a duplicate id, a reference).
        uncacheable: set[Path] = set()
        for error in ruleset.errors:
            owner = Path(error.source.path) if error.source is not None else None
            if owner is None:
                result.errors.append(error)
            elif owner in wanted:
                file_errors.setdefault(owner, []).append(error)
                if id(error) in ruleset.cross_file:
                    uncacheable.add(owner)
        by_id = ruleset.by_id
        for rule in ruleset.rules:
            if rule.path not in wanted:
                continue
            try:
                fresh.setdefault(rule.path, []).append(compiler.compile(rule, ruleset, consume=True).to_dict())
            except ContentError as exc:
                file_errors.setdefault(rule.path, []).append(exc)
        texts = {path: json.dumps(fresh.get(path, []), sort_keys=True) for path in missing}
        for rule in ruleset.rules:
            if rule.path in wanted:
                where = rule.location("id")
                ids.setdefault(rule.path, []).append([rule.id, where.line, where.column])
        if cache is not None:
            by_path: dict[Path, list[str]] = {}
            for rule in ruleset.rules:
                by_path.setdefault(rule.path, []).extend(r.id for r in ruleset.reached(rule))
            for path in missing:
                if path in uncacheable:
                    continue
                deps = {
                    str(by_id[ref].path): _digest(by_id[ref].path, memo)
                    for ref in by_path.get(path, [])
                    if ref in by_id
                }
                errors = [error_to_cache(path, e) for e in file_errors.get(path, [])]
                entry = {"compiled": texts[path], "deps": deps, "ids": ids.get(path, []), "errors": errors}
                cache.put(cache.key("file", _digest(path, memo), identity, target), entry)
            cache.flush()
    result.errors.extend(error for path in files for error in file_errors.get(path, []))
    if cached:
        _drop_duplicate_ids(files, ids, cached, result)
    for path in files:
        if path in cached:
            result.cache_hits += 1
            result.chunks.append(cached[path])
        else:
            result.chunks.append(texts[path])
    return result


def _drop_duplicate_ids(
    files: Sequence[Path], ids: dict[Path, list[list[Any]]], cached: dict[Path, str], result: ConvertResult
) -> None:
    """A cached file's rule whose id an earlier file holds: an error, and left out (as :func:`load_rules` does).

    Each file was cached alone, so a duplicate across files is only seen here; duplicates
    involving a file compiled in this run were already reported by the loading.
    """
    first: dict[str, SourceLocation] = {}
    for path in files:
        for rule_id, line, column in ids.get(path, []):
            where = SourceLocation(path, line, column)
            if rule_id not in first:
                first[rule_id] = where
                continue
            if path in cached:
                result.errors.append(
                    ContentError(f"duplicate rule id {rule_id} (first defined at {first[rule_id]})", where)
                )
                kept = [r for r in json.loads(cached[path]) if r["rule_id"] != rule_id]
                cached[path] = json.dumps(kept, sort_keys=True)
