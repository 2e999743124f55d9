"""soar's own rule types (*.soar.yml): loaded beside the Sigma rules, every problem at its file:line:col."""

from __future__ import annotations

from pathlib import Path

import pytest

from soar.detection import load_rules
from soar.detection._files import rule_files
from soar.detection._soar_rules import NewTerms, Silence, Spike, check_soar_rules, load_soar_rules

BASE = """\
title: SSH login accepted
id: 6b0b4e0c-1a0f-4c39-a8cf-0f5b1b2fb001
name: soar_test_ssh_accepted
status: test
logsource: {product: linux, service: sshd}
detection:
  selection: {system.auth.ssh.event: Accepted}
  condition: selection
level: low
"""

GOOD = """\
soar_rule: new_terms
title: First login from a source
id: 6b0b4e0c-1a0f-4c39-a8cf-0f5b1b2fb002
status: test
level: medium
tags: [attack.initial-access]
base: soar_test_ssh_accepted
new_terms:
  fields: [user.name, source.ip]
  history: 14d
"""


def _load(tmp_path: Path, text: str, name: str = "r.soar.yml") -> tuple[list, list[str]]:
    (tmp_path / "base.yml").write_text(BASE, encoding="utf-8")
    (tmp_path / name).write_text(text, encoding="utf-8")
    ruleset = load_rules([tmp_path])
    loaded = check_soar_rules([tmp_path], ruleset, ("ecs_linux",))
    return loaded.rules, [str(e) for e in [*ruleset.errors, *loaded.errors]]


def test_a_soar_rule_is_not_a_sigma_rule_and_loads_with_its_base(tmp_path: Path) -> None:
    rules, errors = _load(tmp_path, GOOD)
    assert not errors
    assert [p.name for p in rule_files([tmp_path])] == ["base.yml"]  # Sigma's loaders never see it
    assert [p.name for p in rule_files([tmp_path], soar=True)] == ["r.soar.yml"]
    (rule,) = rules
    assert rule.type == "new_terms" and rule.params == NewTerms(("user.name", "source.ip"), 14 * 86400.0)
    assert rule.base.id == "6b0b4e0c-1a0f-4c39-a8cf-0f5b1b2fb001" and rule.level == "medium"


def test_the_content_hash_follows_the_base(tmp_path: Path) -> None:
    rules, _ = _load(tmp_path, GOOD)
    (tmp_path / "base.yml").write_text(BASE.replace("level: low", "level: high"), encoding="utf-8")
    again = load_soar_rules(rule_files([tmp_path], soar=True), load_rules([tmp_path])).rules
    assert again[0].content_hash != rules[0].content_hash


def test_an_inline_detection_and_every_type(tmp_path: Path) -> None:
    inline = GOOD.replace("base: soar_test_ssh_accepted\n", BASE.split("status: test\n")[1].replace("level: low\n", ""))
    spike = inline.replace("soar_rule: new_terms", "soar_rule: spike").replace(
        "new_terms:\n  fields: [user.name, source.ip]\n  history: 14d\n",
        "spike: {by: host.name, window: 10m, baseline: 1d, ratio: 4, min_count: 20}\n",
    )
    silence = inline.replace("soar_rule: new_terms", "soar_rule: silence").replace(
        "new_terms:\n  fields: [user.name, source.ip]\n  history: 14d\n", "silence: {window: 15m}\n"
    )
    rules, errors = _load(
        tmp_path, "---\n".join([inline, spike.replace("fb002", "fb003"), silence.replace("fb002", "fb004")])
    )
    assert not errors, errors
    assert [type(r.params) for r in rules] == [NewTerms, Spike, Silence]
    assert rules[1].params == Spike(("host.name",), 600.0, 86400.0, 4.0, 20)
    assert rules[2].params == Silence(("host.name",), 900.0, 1, True, {}, 86400.0)
    assert all(r.base.id == r.id for r in rules)


@pytest.mark.parametrize(
    ("change", "where", "message"),
    [
        (
            ("soar_rule: new_terms", "soar_rule: flatline"),
            "1:12",
            "soar_rule: expected one of new_terms, spike, silence",
        ),
        (("history: 14d", "history: 1h"), "10:3", "new_terms.history: must be at least 2h"),
        (("history: 14d", "history: soon"), "10:3", "new_terms.history: expected a duration"),
        (("fields: [user.name, source.ip]", "fields: [user.name, user.name]"), "9:3", "a field is named twice"),
        (("fields: [user.name, source.ip]", "feilds: [user.name]"), "9:3", "new_terms.feilds: unknown key"),
        (("base: soar_test_ssh_accepted", "base: nope"), "7:1", "base: no Sigma rule with id or name 'nope'"),
        (
            ("tags: [attack.initial-access]", "tags: [attack.initial-access]\nspike: {}"),
            "7:1",
            "this is a new_terms rule",
        ),
        (("level: medium", "level: medium\ncolour: red"), "6:1", "colour: unknown key in a soar rule"),
        (
            ("level: medium", "level: medium\nlogsource: {product: linux}"),
            "1:1",
            "name the base selection once",
        ),
    ],
)
def test_problems_name_their_file_line_and_column(
    tmp_path: Path, change: tuple[str, str], where: str, message: str
) -> None:
    _, errors = _load(tmp_path, GOOD.replace(*change))
    assert len(errors) == 1, errors
    assert errors[0].startswith(f"{tmp_path / 'r.soar.yml'}:{where}:") and message in errors[0], errors[0]


def test_a_soar_rule_in_a_plain_yml_is_refused_with_the_fix(tmp_path: Path) -> None:
    (tmp_path / "plain.yml").write_text(GOOD, encoding="utf-8")
    errors = [str(e) for e in load_rules([tmp_path]).errors]
    assert errors == [f"{tmp_path / 'plain.yml'}:1:1: soar_rule: soar's own rule types go in a *.soar.yml file"]


def test_a_duplicate_id_is_reported_where_it_is_repeated(tmp_path: Path) -> None:
    clash = GOOD.replace("6b0b4e0c-1a0f-4c39-a8cf-0f5b1b2fb002", "6b0b4e0c-1a0f-4c39-a8cf-0f5b1b2fb001")
    _, errors = _load(tmp_path, clash)
    assert len(errors) == 1 and "r.soar.yml:3:1: duplicate rule id" in errors[0] and "base.yml:1" in errors[0]


def test_rules_test_runs_soar_rule_fixtures_and_names_what_differs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    from tests.unit.detection.helpers import run_cli

    repo = Path(__file__).resolve().parents[3]
    pack = tmp_path / "rules"
    pack.mkdir()
    for name in ("first_sudo_by_user_on_host.soar.yml", "first_sudo_by_user_on_host.soar.tests.yml"):
        shutil.copy(repo / "rules" / "linux" / "auth" / name, pack / name)
    env = {"SOAR_STATE_DIR": str(tmp_path / "state")}
    ok = run_cli(capsys, monkeypatch, "rules", "test", str(pack), env=env)
    assert ok.returncode == 0 and "PASS  1ff2ddfd-514e-48e4-b5be-a07f02e2e9c0" in ok.stdout, ok.stdout + ok.stderr
    fixtures = pack / "first_sudo_by_user_on_host.soar.tests.yml"
    fixtures.write_text(fixtures.read_text().replace("user.name: alice", "user.name: mallory"))
    bad = run_cli(capsys, monkeypatch, "rules", "test", str(pack), env=env)
    assert bad.returncode == 1 and "FAIL  1ff2ddfd-514e-48e4-b5be-a07f02e2e9c0" in bad.stdout
    assert (
        "expected an alert for" in bad.stdout and "mallory" in bad.stdout and "an alert no case expects" in bad.stdout
    )
