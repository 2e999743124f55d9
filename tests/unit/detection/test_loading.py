"""Loading collects every error with file:line:col taken from the YAML parser."""

from __future__ import annotations

from pathlib import Path

from soar.detection import load_rules
from tests.unit.detection.helpers import rule_yaml, write

RULE_ID = "0d6b8a7e-1c2f-4a8e-9a53-2f1f4f0b6a01"


def _messages(tmp_path: Path) -> list[str]:
    return [str(e) for e in load_rules([tmp_path]).errors]


def test_good_rule_loads_with_metadata(tmp_path: Path) -> None:
    write(tmp_path / "r.yml", rule_yaml({"sel": {"Image|endswith": "/curl"}, "condition": "sel"}, rule_id=RULE_ID))
    ruleset = load_rules([tmp_path])
    assert ruleset.errors == []
    (rule,) = ruleset.rules
    assert rule.id == RULE_ID
    assert rule.kind == "rule"
    assert rule.level == "medium"
    assert rule.logsource == {"product": "linux", "category": "process_creation"}
    assert "attack.t1059.004" in rule.tags
    assert len(rule.content_hash) == 64


def test_malformed_yaml_points_at_line_and_column(tmp_path: Path) -> None:
    write(tmp_path / "bad.yml", "title: x\n  oops: [\n")
    (message,) = _messages(tmp_path)
    assert message.startswith(f"{tmp_path / 'bad.yml'}:2:7: invalid YAML: mapping values are not allowed")


def test_unknown_modifier_and_bad_level_are_both_reported_at_their_lines(tmp_path: Path) -> None:
    text = rule_yaml({"sel": {"CommandLine|contanis": "x"}, "condition": "sel"}, level="hihg")
    path = write(tmp_path / "r.yml", text)
    lines = text.splitlines()
    modifier_line = next(i for i, line in enumerate(lines, 1) if "contanis" in line)
    level_line = next(i for i, line in enumerate(lines, 1) if line.startswith("level:"))
    messages = _messages(tmp_path)
    assert f"{path}:{modifier_line}:5: Unknown modifier 'contanis'" in messages
    assert any(m.startswith(f"{path}:{level_line}:") and "hihg" in m for m in messages)


def test_one_bad_document_does_not_hide_the_others(tmp_path: Path) -> None:
    good = rule_yaml({"sel": {"Image": "/bin/sh"}, "condition": "sel"})
    bad = rule_yaml({"sel": {"Image": "/bin/sh"}, "condition": "sel and missing"})
    write(tmp_path / "multi.yml", good + "---\n" + bad)
    write(tmp_path / "other.yml", rule_yaml({"sel": {"Image": "/bin/zsh"}, "condition": "sel"}))
    ruleset = load_rules([tmp_path])
    assert len(ruleset.rules) == 2
    (error,) = ruleset.errors
    assert "missing" in str(error)
    bad_line = (good + "---\n" + bad).splitlines().index("  condition: sel and missing") + 1
    assert str(error).startswith(f"{tmp_path / 'multi.yml'}:{bad_line}:")


def test_duplicate_ids_name_both_places(tmp_path: Path) -> None:
    write(tmp_path / "a.yml", rule_yaml({"sel": {"Image": "a"}, "condition": "sel"}, rule_id=RULE_ID))
    write(tmp_path / "b.yml", rule_yaml({"sel": {"Image": "b"}, "condition": "sel"}, rule_id=RULE_ID))
    ruleset = load_rules([tmp_path])
    assert len(ruleset.rules) == 1
    (error,) = ruleset.errors
    assert (
        str(error)
        == f"{tmp_path / 'b.yml'}:2:1: duplicate rule id {RULE_ID} (first defined at {tmp_path / 'a.yml'}:2:1)"
    )


def test_duplicate_yaml_key_is_an_error(tmp_path: Path) -> None:
    text = rule_yaml({"sel": {"Image": "a"}, "condition": "sel"}) + "level: high\n"
    write(tmp_path / "r.yml", text)
    (error,) = load_rules([tmp_path]).errors
    assert str(error) == f"{tmp_path / 'r.yml'}:{len(text.splitlines())}:1: duplicate key 'level'"


def test_correlation_resolves_references_and_unknown_reference_is_an_error(tmp_path: Path) -> None:
    base = rule_yaml(
        {"sel": {"event.outcome": "failure"}, "condition": "sel"},
        logsource={"product": "linux", "service": "sshd"},
        extra={"name": "ssh_failed"},
    )
    correlation = """\
        title: Brute force
        id: 22222222-1c2f-4a8e-9a53-2f1f4f0b6a01
        status: test
        correlation:
          type: event_count
          rules:
            - {ref}
          group-by:
            - source.ip
          timespan: 5m
          condition:
            gte: 5
        level: high
        """
    write(tmp_path / "ok.yml", base + "---\n" + correlation.replace("{ref}", "ssh_failed").replace("        ", ""))
    write(tmp_path / "bad.yml", correlation.replace("{ref}", "nope").replace("22222222", "33333333"))
    ruleset = load_rules([tmp_path])
    kinds = sorted(r.kind for r in ruleset.rules)
    assert kinds == ["correlation", "rule"]
    (error,) = ruleset.errors
    assert str(error).startswith(f"{tmp_path / 'bad.yml'}:")
    assert "nope" in str(error)


def test_fixture_files_are_not_rules(tmp_path: Path) -> None:
    write(tmp_path / "r.yml", rule_yaml({"sel": {"Image": "a"}, "condition": "sel"}))
    write(tmp_path / "r.tests.yml", "should_match: []\nshould_not_match: []\n")
    ruleset = load_rules([tmp_path])
    assert len(ruleset.rules) == 1
    assert ruleset.rules[0].fixtures_path == tmp_path / "r.tests.yml"


def test_an_unclosed_quote_names_where_the_value_began(tmp_path: Path) -> None:
    text = rule_yaml({"sel": {"Image": "PLACEHOLDER"}, "condition": "sel"}).replace("PLACEHOLDER", "'/bin/x")
    write(tmp_path / "bad.yml", text)
    began = next(i for i, line in enumerate(text.splitlines(), 1) if "'/bin/x" in line)
    column = text.splitlines()[began - 1].index("'") + 1
    (message,) = _messages(tmp_path)
    assert message.startswith(f"{tmp_path / 'bad.yml'}:")
    context = f"while scanning a quoted scalar at line {began}, column {column}"
    assert message.endswith(f": invalid YAML: found unexpected end of stream ({context})")
