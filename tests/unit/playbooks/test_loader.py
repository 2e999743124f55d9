"""Playbook files: the schema, templates and action names are checked at load, every error at file:line."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from soar.actions import load_registry
from soar.config import load_settings
from soar.errors import ContentError
from soar.playbooks.loader import check_actions, load_playbooks, parse_playbook

REPO = Path(__file__).resolve().parents[3]

GOOD = """\
name: good
trigger:
  rules: [r1]
steps:
  - id: say
    uses: core.log
    with:
      message: "hello {{ alert.host.name }}"
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pb.yml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def _error(tmp_path: Path, text: str, *, actions: bool = False) -> str:
    path = _write(tmp_path, text)
    with pytest.raises(ContentError) as info:
        pb = parse_playbook(path)
        if actions:
            check_actions(pb, load_registry(load_settings(content_root=REPO)))
    return str(info.value).replace(str(path), "pb.yml")


def test_good_playbook_loads_with_lines(tmp_path: Path) -> None:
    pb = parse_playbook(_write(tmp_path, GOOD))
    assert pb.name == "good" and pb.spec.steps[0].uses == "core.log"
    assert pb.line_of("steps", 0, "uses") == 6
    assert len(pb.version_hash) == 64


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "name: x\ntrigger: {rules: [r]}\nsteps:\n  - id: a\n    uses: core.log\n    bogus: 1\n",
            "pb.yml:6: steps.0.bogus: unknown key",
        ),
        ("name: x\ntrigger: {rules: [r]}\nsteps: []\n", "pb.yml:3: steps: "),
        (
            "name: x\ntrigger: {rules: [r]}\nsteps:\n  - id: a\n    uses: core.log\n    on_failure: explode\n",
            "pb.yml:6: steps.0.on_failure: Input should be 'continue', 'abort' or 'rollback'",
        ),
        (
            "name: x\ntrigger: {rules: [r]}\nsteps:\n  - id: a\n    uses: nodot\n",
            "pb.yml:5: steps.0.uses: String should match",
        ),
        ("name: x\nsteps:\n  - id: a\n    uses: core.log\n", "pb.yml:1: trigger: Field required"),
        ("name: x\ntrigger: {}\nsteps:\n  - id: a\n    uses: core.log\n", "pb.yml:2: trigger: give at least one of"),
        (
            "name: x\ntrigger: {rules: [r]}\nsteps:\n  - id: a\n    uses: core.log\n"
            "    with: {message: '{{ alert.x '}\n",
            "pb.yml:6: step a: with.message: template error",
        ),
        (
            "name: x\ntrigger: {rules: [r]}\nsteps:\n  - id: a\n    uses: core.log\n    when: 'alert.x ==='\n",
            "pb.yml:6: step a: when: expression error",
        ),
        (
            "name: x\ntrigger: {rules: [r]}\nsteps:\n  - {id: a, uses: core.log}\n  - {id: a, uses: core.log}\n",
            "pb.yml:5: step id 'a' is used twice",
        ),
        ("name: x\ntrigger: {rules: [r]}\nname: y\nsteps: []\n", "pb.yml:3: duplicate key 'name'"),
        (
            "name: x\ntrigger: {rules: [r]}\nsteps:\n  - id: a\n    uses: core.log\n    for_each: [1, 2]\n"
            "    max_parallel: 0\n",
            "pb.yml:7: steps.0.max_parallel: Input should be greater than or equal to 1",
        ),
        (
            "name: x\ntrigger: {rules: [r]}\nsteps:\n  - id: a\n    uses: core.log\n    max_parallel: 5\n",
            "pb.yml:6: step a: max_parallel only applies to a for_each step",
        ),
        ("name: x\ntrigger: [\n", "pb.yml:3:1: not valid YAML"),
        ("- just\n- a list\n", "pb.yml:1: a playbook must be a YAML mapping"),
    ],
)
def test_schema_errors_name_file_and_line(tmp_path: Path, text: str, expected: str) -> None:
    assert _error(tmp_path, text).startswith(expected)


@pytest.mark.parametrize(
    ("tag", "template"),
    [
        ("include", "{% include 'secrets.txt' %}"),
        ("import", "{% import 'macros.j2' as m %}{{ m.x() }}"),
        ("from", "{% from 'macros.j2' import x %}{{ x() }}"),
        ("extends", "{% extends 'base.j2' %}"),
    ],
)
def test_a_tag_loading_another_template_is_refused_at_its_parameter_line(
    tmp_path: Path, tag: str, template: str
) -> None:
    text = (
        "name: x\ntrigger: {rules: [r]}\nsteps:\n  - id: a\n    uses: core.log\n    with:\n"
        f'      level: info\n      message: "{template}"\n'
    )
    assert _error(tmp_path, text) == (
        f"pb.yml:8: step a: with.message: template tag '{tag}' is not allowed: templates only read their context"
    )


def test_unknown_action_and_parameter_at_their_line(tmp_path: Path) -> None:
    unknown = _error(tmp_path, GOOD.replace("core.log", "core.nope"), actions=True)
    assert unknown.startswith("pb.yml:6: step say: unknown action 'core.nope' (known: ")
    param = _error(tmp_path, GOOD.replace("message:", "mesage:"), actions=True)
    assert param.startswith("pb.yml:8: step say: action core.log has no parameter 'mesage'")
    missing = _error(
        tmp_path, GOOD.replace('      message: "hello {{ alert.host.name }}"\n', "      level: info\n"), actions=True
    )
    assert missing.startswith("pb.yml:7: step say: action core.log needs parameter 'message'")


def test_load_playbooks_collects_every_error(tmp_path: Path) -> None:
    (tmp_path / "a.yml").write_text(GOOD, encoding="utf-8")
    (tmp_path / "b.yml").write_text("name: b\n", encoding="utf-8")
    (tmp_path / "c.yml").write_text(GOOD, encoding="utf-8")  # same name as a.yml
    result = load_playbooks([tmp_path])
    assert [p.name for p in result.playbooks] == ["good"]
    assert len(result.errors) == 2
    assert "b.yml:1: trigger: Field required" in str(result.errors[0])
    assert "playbook name 'good' is also used by" in str(result.errors[1])


def test_shipped_playbooks_are_valid_against_the_real_registry() -> None:
    settings = load_settings(content_root=REPO)
    result = load_playbooks([REPO / "playbooks"], load_registry(settings))
    assert result.errors == []
    assert {p.name for p in result.playbooks} >= {
        "ssh-brute-force",
        "compromised-account",
        "reverse-shell",
        "persistence",
    }
