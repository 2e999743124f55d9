#!/usr/bin/env python3
"""Check the shipper-document corpus in this folder and print what it holds.

Every ``<source>/<name>.json`` must be valid JSON of the form
``{"provenance": {...}, "document": {...}}`` with complete provenance (see REQUIRED below).
Prints the number of documents per source; exits 1 if any file is malformed.

``--undeclared`` also lists, per source, the document fields that are neither ECS fields
(the ECS mappings in ``integrations/elasticsearch/ecs/component``) nor declared by the
source (``soar/data/shipper_fields/<source>.txt``). Stdlib only.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
SOURCES = (
    "system_auth",
    "system_syslog",
    "auditd_log",
    "auditd_manager",
    "auditbeat_auditd",
    "fim",
    "auditbeat_file_integrity",
    "endpoint",
    "sysmon_linux",
)
# key -> (allowed types, may be None)
REQUIRED: dict[str, tuple[tuple[type, ...], bool]] = {
    "repository": ((str,), False),
    "path": ((str,), False),
    "commit": ((str,), False),
    "integration": ((str,), False),
    "integration_version": ((str,), True),
    "data_stream": ((str,), True),
    "shipper": ((str,), False),
    "index_in_file": ((int,), False),
    "notes": ((str,), False),
}
COMMIT = re.compile(r"^[0-9a-f]{40}$")
# Optional: a document derived from a raw line by a transcription of the shipper's steps
# (sysmon_linux/derive.py) says from which line, by which steps at which commits.
DERIVATION_SOURCES = ("log", "processors", "pipeline", "envelope")


def check(path: Path) -> tuple[dict[str, Any] | None, list[str]]:
    problems: list[str] = []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return None, [f"not valid JSON: {exc}"]
    if not isinstance(data, dict) or set(data) != {"provenance", "document"}:
        return None, ["top level must be exactly {provenance, document}"]
    prov, doc = data["provenance"], data["document"]
    if not isinstance(prov, dict):
        return None, ["provenance is not an object"]
    for key, (types, nullable) in REQUIRED.items():
        if key not in prov:
            problems.append(f"provenance.{key} missing")
            continue
        value = prov[key]
        if value is None and nullable:
            continue
        if not isinstance(value, types) or isinstance(value, bool) or value == "":
            problems.append(f"provenance.{key} has a bad value: {value!r}")
    extra = set(prov) - set(REQUIRED) - {"derivation"}
    if "derivation" in prov:
        problems.extend(check_derivation(prov["derivation"]))
    if extra:
        problems.append(f"unknown provenance keys: {sorted(extra)}")
    if isinstance(prov.get("commit"), str) and not COMMIT.match(prov["commit"]):
        problems.append("provenance.commit is not 40 lower-case hex digits")
    if isinstance(prov.get("index_in_file"), int) and prov["index_in_file"] < 0:
        problems.append("provenance.index_in_file is negative")
    if not isinstance(doc, dict) or not doc:
        problems.append("document is not a non-empty object")
    return (data if not problems else None), problems


def check_derivation(derivation: Any) -> list[str]:
    """A derived document names its raw line (verbatim, by number) and the commits of every step."""
    if not isinstance(derivation, dict):
        return ["provenance.derivation is not an object"]
    problems = []
    if not isinstance(derivation.get("log_line"), int) or isinstance(derivation.get("log_line"), bool):
        problems.append("provenance.derivation.log_line is not a line number")
    if not isinstance(derivation.get("raw_line"), str) or not derivation["raw_line"]:
        problems.append("provenance.derivation.raw_line missing")
    for name in DERIVATION_SOURCES:
        source = derivation.get(name)
        if not isinstance(source, dict) or not all(isinstance(source.get(k), str) for k in ("repository", "path")):
            problems.append(f"provenance.derivation.{name} lacks repository/path")
        elif not COMMIT.match(str(source.get("commit", ""))):
            problems.append(f"provenance.derivation.{name}.commit is not 40 lower-case hex digits")
    derived_by = derivation.get("derived_by")
    if not isinstance(derived_by, str) or not (REPO / derived_by).is_file():
        problems.append(f"provenance.derivation.derived_by is not a file of this repository: {derived_by!r}")
    return problems


def leaf_fields(value: Any, prefix: str = "") -> set[str]:
    """Dotted names of a document's leaves; arrays of objects are walked with the same prefix."""
    out: set[str] = set()
    if isinstance(value, dict):
        if not value and prefix:
            out.add(prefix)
        for key, sub in value.items():
            out |= leaf_fields(sub, f"{prefix}.{key}" if prefix else key)
    elif isinstance(value, list) and any(isinstance(v, dict) for v in value):
        for item in value:
            out |= leaf_fields(item, prefix)
    elif prefix:
        out.add(prefix)
    return out


def ecs_fields() -> tuple[set[str], set[str]]:
    """(field names, prefixes of object/flattened fields) from the ECS component templates."""
    names: set[str] = set()
    open_prefixes: set[str] = set()

    def walk(props: dict[str, Any], prefix: str) -> None:
        for name, spec in props.items():
            full = f"{prefix}.{name}" if prefix else name
            names.add(full)
            if "properties" in spec:
                walk(spec["properties"], full)
            elif spec.get("type") in ("object", "flattened", "nested", "geo_point"):
                open_prefixes.add(full)

    for path in sorted((REPO / "integrations" / "elasticsearch" / "ecs" / "component").glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        walk(data["template"]["mappings"]["properties"], "")
    return names, open_prefixes


def declared_fields(source: str) -> list[str]:
    path = REPO / "soar" / "data" / "shipper_fields" / f"{source}.txt"
    if not path.exists():
        return []
    return [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip() and not ln.startswith("#")]


def is_declared(field: str, names: set[str], patterns: list[str], prefixes: set[str]) -> bool:
    if field in names:
        return True
    if any(fnmatch.fnmatchcase(field, p) for p in patterns):
        return True
    parts = field.split(".")
    return any(".".join(parts[:i]) in prefixes for i in range(1, len(parts)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--undeclared", action="store_true", help="list fields neither ECS nor declared by the source")
    args = parser.parse_args()

    counts: Counter[str] = Counter()
    bad = 0
    docs: dict[str, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
    for path in sorted(HERE.glob("*/*.json")):
        source = path.parent.name
        if source not in SOURCES:
            print(f"{path.relative_to(HERE)}: unknown source folder {source!r}")
            bad += 1
            continue
        data, problems = check(path)
        if problems:
            bad += 1
            for problem in problems:
                print(f"{path.relative_to(HERE)}: {problem}")
            continue
        assert data is not None
        counts[source] += 1
        docs[source].append((path.stem, data["document"]))

    width = max(len(s) for s in SOURCES)
    for source in SOURCES:
        print(f"{source:<{width}}  {counts[source]:>3}")
    print(f"{'total':<{width}}  {sum(counts.values()):>3}")

    if args.undeclared:
        ecs_names, ecs_open = ecs_fields()
        for source in SOURCES:
            declared = declared_fields(source)
            names = ecs_names | {d for d in declared if not any(c in d for c in "*?[")}
            patterns = [d for d in declared if any(c in d for c in "*?[")]
            # a declared name that documents use as a parent (flattened/object, e.g. auditd.paths) admits its children
            prefixes = ecs_open | set(declared)
            missing: dict[str, list[str]] = defaultdict(list)
            for stem, doc in docs[source]:
                for field in sorted(leaf_fields(doc)):
                    if not is_declared(field, names, patterns, prefixes):
                        missing[field].append(stem)
            print(f"\n[{source}] fields neither ECS nor declared: {len(missing)}")
            for field, stems in sorted(missing.items()):
                print(f"  {field}  ({len(stems)}: {', '.join(stems[:3])}{', ...' if len(stems) > 3 else ''})")

    if bad:
        print(f"{bad} malformed file(s)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
