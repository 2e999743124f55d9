"""``soar rules``: check, convert, test and measure the coverage of Sigma rules."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from soar.cli._output import echo_json, table
from soar.cli._settings import content_path, path_setting
from soar.errors import ContentError, InputError, SoarError, SourceLocation

if TYPE_CHECKING:
    from soar.config import Settings

app = typer.Typer(no_args_is_help=True)

PATHS = typer.Argument(None, help="Rule files or folders (default: rules/ under the content root).")
PIPELINE = typer.Option(None, "--pipeline", "-p", help="Pipeline name or YAML path, repeatable (default: ecs_linux).")


def _settings() -> Settings:
    """All settings (imports pydantic): a warm convert needs only the paths of soar.cli._settings."""
    from soar.config import get_settings

    return get_settings()


def _paths(paths: list[Path] | None) -> list[Path]:
    if paths:
        return paths
    return [content_path(Path("rules"))]


def _pipelines(pipelines: list[str] | None) -> tuple[str, ...]:
    from soar.detection import DEFAULT_PIPELINES

    return tuple(pipelines) if pipelines else DEFAULT_PIPELINES


def _orphans(paths: list[Path] | None) -> list[ContentError]:
    """Fixture files whose rule is gone (renamed, deleted): they would never run, so they are problems."""
    from soar.detection._files import orphan_fixtures

    return [
        ContentError("fixtures without a rule: no rule file of that name beside them", SourceLocation(path, 1))
        for path in orphan_fixtures(_paths(paths))
    ]


def _report(errors: list[SoarError], err: bool = False) -> None:
    for error in errors:
        typer.echo(str(error), err=err)


@app.callback()
def _rules() -> None:
    """Sigma rules: validate, compile, prove on fixtures, measure coverage."""
    from soar.detection._attack import use_attack_data_dir

    use_attack_data_dir(path_setting("state_dir") / "attack")  # a bundle loaded with update-attack, if any


def _refusals(compile_errors: Sequence[SoarError], target: str) -> list[Any]:
    from soar.detection._validate import Problem

    return [Problem(e, "error", f"compile:{target}") for e in compile_errors]


def _summary(problems: list[Any]) -> list[str]:
    """Problems grouped by validator and message shape (quoted names and numbers folded), biggest first."""
    import re
    from collections import Counter

    shapes: Counter[tuple[str, str, str]] = Counter()
    for p in problems:
        shape = re.sub(r"'[^']*'|\([^)]*\)|\b\d+\b", "…", p.message)
        shapes[(p.severity, p.validator, shape)] += 1
    return [f"{n:5d}  {sev:7}  {validator}: {shape}" for (sev, validator, shape), n in shapes.most_common()]


@app.command("check")
def check(
    paths: list[Path] | None = PATHS,
    pipeline: list[str] | None = PIPELINE,
    as_json: bool = typer.Option(False, "--json", help="Print the problems as JSON objects."),
    exclude: list[str] = typer.Option(
        [], "--exclude", "-x", help="Leave a validator out (repeatable; also the rules_check_exclude setting)."
    ),
    strict: bool = typer.Option(False, "--strict", help="Exit 1 on warnings too (SigmaHQ conventions)."),
    summary: bool = typer.Option(False, "--summary", help="Also print the problems grouped by validator and reason."),
) -> int:
    """Load, validate and compile rules offline (Elasticsearch and embedded); every problem as file:line:col.

    Errors (a rule that cannot mean what it says, or that an engine refuses) exit 1; warnings (SigmaHQ's
    conventions, ATT&CK ids unknown to the bundled data) print as ``warning:`` and exit 0 unless --strict.
    """
    from soar.detection import compile_rules, load_rules
    from soar.detection._validate import Problem, check_excluded, check_rules

    skip = check_excluded([*_settings().rules_check_exclude, *exclude])
    ruleset = load_rules(_paths(paths))
    problems: list[Problem] = [Problem(e, "error", "load") for e in ruleset.errors]
    problems += check_rules(ruleset, skip)
    seen: set[tuple[str, str]] = set()
    for target in ("elasticsearch", "embedded"):
        _, compile_errors = compile_rules(ruleset, target, _pipelines(pipeline))
        for p in _refusals(compile_errors, target):
            key = (str(p.error.source), p.message)
            if key not in seen:  # refused by both engines for the same reason: once
                seen.add(key)
                problems.append(p)
    problems += [Problem(e, "error", "orphan_fixtures") for e in _orphans(paths)]
    from soar.detection._soar_rules import check_soar_rules  # soar's own rule types (*.soar.yml)

    own = check_soar_rules(_paths(paths), ruleset, _pipelines(pipeline))
    problems += [Problem(e, "error", "soar_rule") for e in own.errors]
    problems.sort(key=lambda p: (p.file, p.line or 0))
    errors = sum(p.severity == "error" for p in problems)
    warnings = len(problems) - errors
    failed = errors > 0 or (strict and warnings > 0)
    if as_json:
        echo_json(
            {
                "rules": len(ruleset.rules) + len(own.rules),
                "errors": errors,
                "warnings": warnings,
                "problems": [p.to_dict() for p in problems],
                **({"summary": _summary(problems)} if summary else {}),
            }
        )
    else:
        for p in problems:
            typer.echo(str(p))
        if summary and problems:
            typer.echo("\nsummary (count, severity, validator: reason):")
            for line in _summary(problems):
                typer.echo(line)
        typer.echo(
            f"{len(ruleset.rules) + len(own.rules)} rules checked, {len(problems)} problems "
            f"({errors} errors, {warnings} warnings)",
            err=True,
        )
    return 1 if failed else 0


@app.command("update-attack")
def update_attack(
    file: Path = typer.Argument(..., help="MITRE's enterprise-attack.json (from attack-stix-data), downloaded."),
) -> int:
    """Use a newer MITRE ATT&CK offline: reduce FILE to what validation reads and keep it in the state folder."""
    from soar.detection._attack import install_bundle, use_shipped_attack_data

    directory = path_setting("state_dir") / "attack"
    before = use_shipped_attack_data()
    try:
        version, count = install_bundle(file, directory)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    typer.echo(f"ATT&CK v{version} ({count} objects) now used for rule checks and exports (was v{before}): {directory}")
    return 0


@app.command("convert")
def convert(
    paths: list[Path] | None = PATHS,
    target: str = typer.Option(
        "elasticsearch", "--target", "-t", help="elasticsearch (query DSL), embedded (SQL) or lucene (a query_string)."
    ),
    pipeline: list[str] | None = PIPELINE,
    fmt: str | None = typer.Option(
        None, "--format", "-f", help="Export instead: kibana-ndjson, elastalert, esql or eql (elasticsearch only)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the compiled rules as JSON."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Do not read or write the compile cache."),
    skip_unsupported: bool = typer.Option(
        False, "--skip-unsupported", help="With --format: list rules the format cannot express, exit 0 for them."
    ),
) -> int:
    """Compile rules to Elasticsearch query DSL or embedded SQL (or export them for other tools)."""
    from soar.detection import CompileCache, convert_paths

    pipelines = _pipelines(pipeline)
    if fmt is not None:
        from soar.detection import EXPORTS, export_rules, load_rules
        from soar.detection._exports import NotExportable

        if fmt not in EXPORTS:
            raise InputError(f"--format {fmt}: unknown format (known: {', '.join(EXPORTS)})")
        ruleset = load_rules(_paths(paths))
        text, errors = export_rules(ruleset.rules, fmt, pipelines, _settings().events_index)
        typer.echo(text, nl=False)
        skipped = [e for e in errors if skip_unsupported and isinstance(e, NotExportable)]
        failed: list[SoarError] = [*ruleset.errors, *(e for e in errors if e not in skipped)]
        _report(failed, err=True)  # stdout is the export file
        for unsupported in skipped:
            typer.echo(f"skipped: {unsupported}", err=True)
        return 1 if failed else 0
    cache = None if no_cache else CompileCache(path_setting("state_dir") / "compile-cache")
    result = convert_paths(_paths(paths), target, pipelines, cache)
    if as_json:
        # One compact JSON array: with thousands of rules, indenting would cost more than the cache saves.
        typer.echo(result.to_json())
    else:
        for c in result.compiled:
            typer.echo(f"# {c.rule_id} {c.title} ({c.path})")
            if c.correlation is not None:
                spec = c.correlation
                typer.echo(
                    f"correlation {spec.type} over {', '.join(r.rule_id for r in spec.rules)} "
                    f"group-by {', '.join(spec.group_by) or '-'} within {spec.timespan}s "
                    f"{spec.op or 'all'} {spec.count:g}{' of ' + spec.field if spec.field else ''}"
                )
            elif target == "elasticsearch":
                typer.echo(json.dumps(c.dsl, sort_keys=True))
            elif target == "lucene":
                typer.echo(c.query)
            else:
                typer.echo(c.sql)
    for error in result.errors:
        typer.echo(str(error), err=True)
    return 1 if result.errors else 0


@app.command("test")
def test(
    paths: list[Path] | None = PATHS,
    events: Path | None = typer.Option(None, "--events", help="A JSON array or JSONL file of events to match."),
    engine: str = typer.Option("embedded", "--engine", "-e", help="embedded or elasticsearch."),
    pipeline: list[str] | None = PIPELINE,
    as_json: bool = typer.Option(False, "--json", help="Print the results as JSON."),
) -> int:
    """Run every rule against its fixtures (or an events file); exit 1 on any failing rule."""
    from soar.detection import load_rules, match_events, run_fixture_tests
    from soar.detection._events_file import load_events_file

    if engine not in ("embedded", "elasticsearch"):
        raise InputError(f"--engine {engine}: unknown engine (known: embedded, elasticsearch)")
    settings = _settings()
    pipelines = _pipelines(pipeline)
    loaded = load_events_file(events) if events is not None else None
    ruleset = load_rules(_paths(paths))
    es = None
    if engine == "elasticsearch":
        from soar.connections import check_elasticsearch, elasticsearch_client

        check_elasticsearch(settings)
        es = elasticsearch_client(settings, request_timeout=max(settings.elasticsearch_timeout, 60.0))
    try:
        if loaded is not None:
            report, errors = match_events(
                ruleset, loaded.events, engine, pipelines, es, f"{settings.index_prefix}-test", loaded.locations
            )
            if as_json:
                echo_json({"rules": report, "errors": [str(e) for e in [*ruleset.errors, *errors]]})
            else:
                for row in report:
                    shown = ", ".join(map(str, row["matched_events"])) or "-"
                    typer.echo(f"{row['id']}  {row['title']}: {shown}")
                    if not row["matched_events"] and row["absent_fields"]:
                        typer.echo(f"    no event has {', '.join(row['absent_fields'])}")
                _report([*ruleset.errors, *errors])
            return 1 if ruleset.errors or errors else 0
        results = run_fixture_tests(ruleset, engine, pipelines, es, f"{settings.index_prefix}-fixtures")
        ruleset.errors.extend(_orphans(paths))
        if engine == "embedded":  # soar's own rule types: timelines through the scheduler's cycle
            from soar.scheduler.baseline_fixtures import run_soar_fixtures

            own, own_errors = run_soar_fixtures(_paths(paths))
            results += own
            ruleset.errors.extend(own_errors)
    finally:
        if es is not None:
            es.close()
    failed = [r for r in results if not r.passed]
    if as_json:
        echo_json({"results": [r.to_dict() for r in results], "errors": [str(e) for e in ruleset.errors]})
    else:
        for r in results:
            note = f" (building block, tested through {r.tested_through})" if r.tested_through else ""
            typer.echo(f"{'PASS' if r.passed else 'FAIL'}  {r.rule_id}  {r.title}{note}")
            for failure in r.failures:
                typer.echo(f"    {failure}")
        _report(list(ruleset.errors))
        typer.echo(
            f"{len(results) - len(failed)} passed, {len(failed)} failed ({engine}); {len(ruleset.errors)} load errors",
            err=True,
        )
    return 1 if failed or ruleset.errors else 0


@app.command("coverage")
def coverage_cmd(
    paths: list[Path] | None = PATHS,
    pipeline: list[str] | None = PIPELINE,
    as_json: bool = typer.Option(False, "--json", help="Print the coverage as JSON."),
    sources: bool = typer.Option(False, "--sources", help="Print the rule x real source matrix instead."),
) -> int:
    """Rules per log source, the ECS fields they read, ATT&CK techniques, and what cannot compile and why."""
    from soar.detection import coverage, load_rules

    ruleset = load_rules(_paths(paths))
    data = coverage(ruleset, _pipelines(pipeline))
    if sources and not as_json:
        _sources_matrix(data)
        return 0
    precision = _precision([str(r["id"]) for r in data["rules"]])
    for r in data["rules"]:
        r["precision"] = precision.get(str(r["id"]))
    if as_json:
        echo_json(data)
        return 0
    typer.echo(
        table(
            ["rule", "log source", "techniques", "fields", "compiles", "precision (tp/fp)"],
            [
                [
                    r["title"][:50],
                    r["logsource"],
                    " ".join(r["techniques"]),
                    len(r["fields"]),
                    "yes" if r["compiles"] else "NO",
                    _precision_cell(r["precision"]),
                ]
                for r in data["rules"]
            ],
        )
    )
    typer.echo("")
    typer.echo(table(["log source", "rules"], list(data["logsources"].items())))
    typer.echo("")
    typer.echo(
        table(["technique", "name", "rules"], [[k, v["name"], v["rules"]] for k, v in data["techniques"].items()])
    )
    fields = sorted({f for r in data["rules"] for f in r["fields"]})
    typer.echo("")
    typer.echo(f"mapped fields ({len(fields)}): {', '.join(fields)}")
    for row in data["failed"]:
        typer.echo(f"cannot compile: {row['error']}")
    for error in data["load_errors"]:
        typer.echo(f"cannot load: {error}")
    return 0


def _sources_matrix(data: dict[str, Any]) -> None:
    """yes: the rule searches the source; no: the source carries the log source but lacks a field (why below)."""
    names: list[str] = data["sources"]
    rows = []
    notes = []
    for r in data["rules"]:
        cells = []
        for name in names:
            if name in r["sources"]:
                cells.append("yes")
            elif name in r["left_out"]:
                cells.append("no")
                notes.append(f"{r['title'][:50]}: {name}: {r['left_out'][name]}")
            else:
                cells.append("-")
        rows.append([r["title"][:50], r["logsource"], *cells])
    typer.echo(table(["rule", "log source", *names], rows))
    typer.echo("")
    typer.echo(
        "yes: searched  no: the source carries the log source but lacks a field the rule uses  -: not its log source"
    )
    for note in notes:
        typer.echo(f"left out: {note}")


def _precision(rule_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Per-rule precision from analysts' verdicts in the state store; empty (with a note) if it is unreachable."""
    from soar.review.feedback import precision_from_store
    from soar.store import open_store

    try:
        store = open_store(_settings())
    except Exception as exc:  # coverage is an offline report: the store is a bonus, never a failure
        typer.echo(f"note: precision unavailable, state store not reachable ({type(exc).__name__})", err=True)
        return {}
    try:
        return precision_from_store(store, rule_ids)
    except Exception as exc:
        typer.echo(f"note: precision unavailable ({type(exc).__name__})", err=True)
        return {}
    finally:
        store.close()


def _precision_cell(row: dict[str, Any] | None) -> str:
    if not row or row.get("precision") is None:
        return "-"
    return f"{row['precision']:.2f} ({row['tp']}/{row['fp']})"


@app.command("install-template")
def install_template(
    pattern: list[str] = typer.Option(..., "--pattern", help="Index patterns of soar's own event indices."),
    name: str | None = typer.Option(None, "--name", help="Template name (default: soar-events)."),
    data_stream: bool = typer.Option(False, "--data-stream", help="Make new indices of the patterns data streams."),
) -> int:
    """Map soar's own event indices (demo, tests) with the official ECS mappings. Never a user's logs-* data."""
    from soar.connections import check_elasticsearch, elasticsearch_client
    from soar.detection.elastic import TEMPLATE_NAME, install_index_template

    settings = _settings()
    patterns = list(pattern)
    check_elasticsearch(settings)
    es = elasticsearch_client(settings)
    try:
        install_index_template(es, patterns, name=name or TEMPLATE_NAME, data_stream=data_stream)
    finally:
        es.close()
    typer.echo(f"index template {name or TEMPLATE_NAME} installed for {', '.join(patterns)}")
    return 0
