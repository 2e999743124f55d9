"""The ecs_linux pipeline: Sigma Linux fields to ECS, log-source conditions, loud failures on unmapped fields."""

from __future__ import annotations

from pathlib import Path

import pytest

from soar.detection import available_pipelines, compile_rule, load_rules
from soar.errors import ContentError, InputError
from tests.unit.detection.helpers import rule_yaml, write


def _compile(tmp_path: Path, text: str, **kwargs: object) -> str:
    path = write(tmp_path / "r.yml", text)
    ruleset = load_rules([path])
    ruleset.raise_first()
    kwargs.setdefault("target", "lucene")  # the mapping, read as a query_string
    compiled = compile_rule(ruleset.rules[0], **kwargs)  # type: ignore[arg-type]
    assert compiled.query is not None
    return compiled.query


@pytest.mark.parametrize(
    ("logsource", "detection", "expected"),
    [
        (
            {"product": "linux", "category": "process_creation"},
            {"sel": {"Image|endswith": "/nc", "ParentImage": "/usr/sbin/nginx"}, "condition": "sel"},
            "(event.category:process AND event.type:start) AND "
            "(process.executable:*\\/nc AND process.parent.executable:\\/usr\\/sbin\\/nginx)",
        ),
        (
            {"product": "linux", "category": "file_event"},
            {"sel": {"TargetFilename": "/etc/ld.so.preload"}, "condition": "sel"},
            "event.category:file AND file.path:\\/etc\\/ld.so.preload",
        ),
        (
            {"product": "linux", "category": "network_connection"},
            {"sel": {"DestinationPort": 4444, "Image|endswith": "/bash"}, "condition": "sel"},
            "event.category:network AND (destination.port:4444 AND process.executable:*\\/bash)",
        ),
        (
            {"product": "linux", "service": "sshd"},
            {"sel": {"event.outcome": "failure", "SourceIp": "10.0.0.1"}, "condition": "sel"},
            "(event.dataset:system.auth AND process.name:sshd) AND (event.outcome:failure AND source.ip:10.0.0.1)",
        ),
        (
            {"product": "linux", "service": "auth"},
            {"sel": {"User": "root", "event.outcome": "failure"}, "condition": "sel"},
            "event.dataset:system.auth AND (user.name:root AND event.outcome:failure)",
        ),
        (
            {"product": "linux", "service": "sudo"},
            {"sel": {"system.auth.sudo.error|contains": "not in the sudoers"}, "condition": "sel"},
            "(event.dataset:system.auth AND process.name:sudo) AND system.auth.sudo.error:*not\\ in\\ the\\ sudoers*",
        ),
        (
            {"product": "linux", "service": "syslog"},
            {"sel": {"message|contains": "segfault"}, "condition": "sel"},
            "event.dataset:system.syslog AND message:*segfault*",
        ),
        (
            {"product": "linux", "service": "cron"},
            {"sel": {"message|contains": "REPLACE"}, "condition": "sel"},
            "(event.dataset:system.syslog AND (process.name:(cron OR CRON OR crond))) AND message:*REPLACE*",
        ),
        (
            {"product": "linux", "service": "auditd"},
            {"sel": {"type": "SYSCALL", "SYSCALL": "init_module", "key": "modules"}, "condition": "sel"},
            "event.module:auditd AND "
            "(auditd.message_type:SYSCALL AND auditd.data.syscall:init_module AND tags:modules)",
        ),
    ],
)
def test_fields_are_mapped_and_log_source_conditions_added(
    tmp_path: Path, logsource: dict[str, str], detection: dict[str, object], expected: str
) -> None:
    assert _compile(tmp_path, rule_yaml(detection, logsource=logsource)) == expected


def test_unmapped_field_fails_the_rule_naming_the_field_and_its_line(tmp_path: Path) -> None:
    text = rule_yaml({"sel": {"Image": "/bin/sh", "TargetImage": "x"}, "condition": "sel"})
    line = next(i for i, s in enumerate(text.splitlines(), 1) if "TargetImage" in s)
    with pytest.raises(ContentError) as info:
        _compile(tmp_path, text)
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'r.yml'}:{line}:5: field 'TargetImage' is not mapped by ecs_linux")
    assert "category: process_creation" in message
    assert "did you mean" not in message  # nothing close: no guess


@pytest.mark.parametrize(
    ("written", "meant"),
    [("Commandline", "CommandLine"), ("Parent_Image", "ParentImage"), ("process.comand_line", "process.command_line")],
)
def test_a_misspelt_field_gets_the_closest_known_one_suggested(tmp_path: Path, written: str, meant: str) -> None:
    with pytest.raises(ContentError) as info:
        _compile(tmp_path, rule_yaml({"sel": {written: "x"}, "condition": "sel"}))
    assert f"field '{written}' is not mapped by ecs_linux for category: process_creation (did you mean '{meant}'?)" in (
        str(info.value)
    )


def test_unsupported_linux_log_source_fails(tmp_path: Path) -> None:
    text = rule_yaml({"sel": {"Image": "x"}, "condition": "sel"}, logsource={"product": "linux", "category": "dns"})
    with pytest.raises(ContentError, match="log source 'product: linux, category: dns' is not supported by ecs_linux"):
        _compile(tmp_path, text)


def test_rule_no_pipeline_applies_to_fails(tmp_path: Path) -> None:
    text = rule_yaml({"sel": {"Image": "x"}, "condition": "sel"}, logsource={"product": "macos", "category": "dns"})
    with pytest.raises(ContentError, match="no pipeline of ecs_linux applies to log source 'product: macos"):
        _compile(tmp_path, text)


def test_unknown_pipeline_is_an_input_error_naming_it(tmp_path: Path) -> None:
    text = rule_yaml({"sel": {"Image": "x"}, "condition": "sel"})
    with pytest.raises(InputError, match="--pipeline ecs_linuks: unknown pipeline"):
        _compile(tmp_path, text, pipelines=("ecs_linuks",))


def test_upstream_pipelines_are_selectable_by_name(tmp_path: Path) -> None:
    assert {"ecs_linux", "ecs_windows", "sysmon", "windows-logsources"} <= set(available_pipelines())
    text = rule_yaml(
        {"sel": {"Image|endswith": "\\cmd.exe"}, "condition": "sel"},
        logsource={"product": "windows", "category": "process_creation"},
    )
    assert _compile(tmp_path, text, pipelines=("ecs_windows",)) == "process.executable.caseless:*\\\\cmd.exe"


def test_custom_pipeline_file_by_path(tmp_path: Path) -> None:
    pipeline = write(
        tmp_path / "p" / "mine.yml",
        """\
        name: mine
        transformations:
          - id: map
            type: field_name_mapping
            mapping:
              Image: proc.path
        """,
    )
    text = rule_yaml({"sel": {"Image": "/bin/sh"}, "condition": "sel"}, logsource={"product": "mine"})
    assert _compile(tmp_path, text, pipelines=(str(pipeline),)) == "proc.path:\\/bin\\/sh"


def test_bad_pipeline_file_is_an_input_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yml"
    text = rule_yaml({"sel": {"Image": "x"}, "condition": "sel"})
    with pytest.raises(InputError, match=f"{missing}: cannot read pipeline file"):
        _compile(tmp_path, text, pipelines=(str(missing),))


SSH_FAILED = rule_yaml(
    {"sel": {"event.outcome": "failure"}, "condition": "sel"},
    logsource={"product": "linux", "service": "sshd"},
    extra={"name": "ssh_failed"},
)
SPRAY = """\
title: Spray
id: 44444444-1c2f-4a8e-9a53-2f1f4f0b6a02
status: test
correlation:
  type: value_count
  rules: [RULES]
  group-by: [GROUP]
  timespan: 10m
  condition: {gte: 3, field: FIELD}
level: high
"""


def test_correlation_group_by_and_field_are_mapped(tmp_path: Path) -> None:
    corr = SPRAY.replace("RULES", "ssh_failed").replace("GROUP", "SourceIp").replace("FIELD", "User")
    path = write(tmp_path / "c.yml", SSH_FAILED + "---\n" + corr)
    ruleset = load_rules([path])
    ruleset.raise_first()
    compiled = compile_rule(ruleset.rules[1], target="embedded", ruleset=ruleset)
    spec = compiled.correlation
    assert spec is not None
    assert (spec.type, spec.group_by, spec.field, spec.timespan, spec.op, spec.count) == (
        "value_count",
        ("source.ip",),
        "user.name",
        600,
        "gte",
        3.0,
    )
    assert spec.rules[0].sql is not None and "event.outcome" in spec.rules[0].sql


@pytest.mark.parametrize(
    ("group", "field", "key", "unknown"),
    [("SourceIp, Hostname", "User", "group-by", "Hostname"), ("SourceIp", "TargetImage", "condition", "TargetImage")],
    ids=["group-by", "condition field"],
)
def test_a_correlation_field_unknown_to_a_base_rule_fails_at_its_line(
    tmp_path: Path, group: str, field: str, key: str, unknown: str
) -> None:
    corr = SPRAY.replace("RULES", "ssh_failed").replace("GROUP", group).replace("FIELD", field)
    text = SSH_FAILED + "---\n" + corr
    ruleset = load_rules([write(tmp_path / "c.yml", text)])
    ruleset.raise_first()
    lines = text.splitlines()
    start = lines.index("correlation:")
    line = next(i for i, s in enumerate(lines[start:], start + 1) if s.startswith(f"  {key}:"))
    with pytest.raises(ContentError) as caught:
        compile_rule(ruleset.rules[1], target="elasticsearch", ruleset=ruleset)
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / 'c.yml'}:{line}:")
    assert f"correlation field for rule 'ssh_failed': field '{unknown}' is not mapped by ecs_linux" in message


def test_a_correlation_field_mapped_differently_per_base_rule_asks_for_aliases(tmp_path: Path) -> None:
    pipeline = write(
        tmp_path / "p.yml",
        """\
        name: two products
        transformations:
          - type: field_name_mapping
            mapping: {Peer: a.peer}
            rule_conditions: [{type: logsource, product: a}]
          - type: field_name_mapping
            mapping: {Peer: b.peer}
            rule_conditions: [{type: logsource, product: b}]
        """,
    )
    bases = [
        rule_yaml({"sel": {"x": 1}, "condition": "sel"}, logsource={"product": p}, extra={"name": f"r_{p}"})
        for p in ("a", "b")
    ]
    corr = SPRAY.replace("value_count", "temporal").replace("RULES", "r_a, r_b").replace("GROUP", "Peer")
    corr = corr.replace("  condition: {gte: 3, field: FIELD}\n", "")
    ruleset = load_rules([write(tmp_path / "c.yml", "---\n".join([*bases, corr]))])
    ruleset.raise_first()
    with pytest.raises(
        ContentError, match=r"correlation field for rule 'r_b': its events hold 'Peer' as 'b\.peer', not"
    ):
        compile_rule(ruleset.rules[2], target="elasticsearch", pipelines=(str(pipeline),), ruleset=ruleset)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name: x\ntransformations: [\n", "3:1: invalid pipeline YAML: "),
        (
            "name: x\ntransformations:\n  - type: field_name_mapping\n    mapping: {a: b}\n  - type: nosuch\n",
            "5:11: invalid pipeline: Error in processing rule 2: Unknown transformation type 'nosuch'",
        ),
        ("name: x\ntransformations:\n  - mapping: {Image: x}\n", "3:5: invalid pipeline: Error in processing rule 1: "),
        ("name: x\nfinalizers:\n  - type: nosuch\n", "3:11: invalid pipeline: Finalizer 'nosuch' is unknown"),
        ("- a\n", "1:1: invalid pipeline: a pipeline must be a mapping"),
    ],
    ids=["yaml", "unknown transformation", "no type", "unknown finalizer", "not a mapping"],
)
def test_bad_pipeline_file_names_its_line(tmp_path: Path, text: str, expected: str) -> None:
    pipeline = write(tmp_path / "p.yml", text)
    rule = rule_yaml({"sel": {"Image": "x"}, "condition": "sel"})
    with pytest.raises(InputError) as caught:
        _compile(tmp_path, rule, pipelines=("ecs_linux", str(pipeline)))
    assert str(caught.value).startswith(f"{pipeline}:{expected}")
