"""derive.py (the transcription of the sysmon_linux agent processors and ingest pipeline) is proven on the
package's own test data, and every sysmon_linux document built with it (corpus, rule fixtures) is what it derives.

The proof: the pipeline test of elastic/integrations packages/sysmon_linux @ 410bb784 (input and expected output
of one commit, stored in tests/data/shippers/sysmon_linux/pipeline_test/) and the package's real sample_event.json
(line 1 of the same sysmon.log through the whole agent + pipeline chain), compared field by field.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from tests.conftest import REPO_ROOT

FOLDER = REPO_ROOT / "tests" / "data" / "shippers" / "sysmon_linux"
PIPELINE_TEST = FOLDER / "pipeline_test"
# The pipeline's `set ecs.version` at the commit of the pipeline test (its expected output says 8.5.0) and at the
# commit of sample_event.json (8.10.0); derive.py transcribes the pipeline @ 15273582 (8.17.0). The other steps
# are the same at those commits for these inputs: the comparisons below are of every other field.
ECS_AT_PIPELINE_TEST = "8.5.0"
ECS_AT_SAMPLE_EVENT = "8.10.0"


def _derive() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sysmon_linux_derive", FOLDER / "derive.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


derive = _derive()


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted leaf name -> value (lists kept whole), to compare documents field by field."""
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for key, sub in value.items():
            out.update(flatten(sub, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): value}


def assert_same_fields(derived: dict[str, Any], expected: dict[str, Any]) -> None:
    got, want = flatten(derived), flatten(expected)
    assert sorted(got) == sorted(want), (
        f"fields differ: extra {sorted(set(got) - set(want))}, missing {sorted(set(want) - set(got))}"
    )
    for field in want:
        assert got[field] == want[field], f"{field}: derived {got[field]!r}, expected {want[field]!r}"
        assert type(got[field]) is type(want[field]), f"{field}: derived type {type(got[field]).__name__}"


PAIRS = list(
    zip(
        json.loads((PIPELINE_TEST / "test-sysmon.json").read_text())["events"],
        json.loads((PIPELINE_TEST / "test-sysmon.json-expected.json").read_text())["expected"],
        strict=True,
    )
)


@pytest.mark.parametrize(("event", "expected"), PAIRS, ids=["record_24_osqueryd", "record_22_null_image"])
def test_the_pipeline_transcription_reproduces_the_package_pipeline_test(event: Any, expected: Any) -> None:
    # elastic-package puts the test config's `fields` into every input event before simulating the pipeline
    # (internal/testrunner/runners/pipeline/test_case.go createTestCase @ 0381685…): that is where the expected
    # output's tags: [preserve_original_event] comes from (no pipeline step sets tags). The config file itself is
    # not in the stored index, so the tag is given here as the runner gives it; every field is then compared.
    given = dict(event, tags=["preserve_original_event"])
    assert_same_fields(derive.ingest(given, ecs_version=ECS_AT_PIPELINE_TEST), expected)


def test_the_whole_chain_reproduces_the_real_sample_event_of_line_1() -> None:
    """Agent processors + envelope + pipeline on sysmon.log line 1 give sample_event.json exactly.

    Not circular for the per-line fields: @timestamp (syslog timestamp + run year), log.offset (0), message (the
    syslog msg), process.name/pid (appname/procid), host.hostname (the rename that fails), event.* and the
    absence of event.original, log.syslog and event.code are all derived.
    """
    number, offset, line = derive.log_lines()[0]
    real = json.loads((FOLDER / "sample_event_sysmon_banner.json").read_text())["document"]
    assert (number, offset) == (1, 0)
    assert_same_fields(derive.ingest(derive.agent(line, offset), ecs_version=ECS_AT_SAMPLE_EVENT), real)


def test_the_stored_log_is_the_source_file() -> None:
    data = (FOLDER / "sysmon.log").read_bytes()
    # read_file reports 36,693 characters for the file @ c81e9fe7 (50 CR LF-terminated lines).
    assert len(data) == 36693 and data.count(b"\r\n") == data.count(b"\n") == 50


def test_command_line_split_is_the_pipeline_script() -> None:
    # Windows rules (the painless port of Go's commandLineToArgv): double quotes group, single quotes do not.
    assert derive.command_line_to_argv('a "b c" d') == ["a", "b c", "d"]
    assert derive.command_line_to_argv("bash -c 'id; uname'") == ["bash", "-c", "'id;", "uname'"]
    assert derive.command_line_to_argv(r'x "a\"b" c\\d') == ["x", 'a"b', r"c\\d"]


def test_community_id_is_the_published_v1_hash() -> None:
    # The Community ID spec's TCP example (corelight/community-id-spec baseline): 128.232.110.120:34855 ->
    # 66.35.250.204:80.
    got = derive.community_id("128.232.110.120", 34855, "66.35.250.204", 80, "tcp")
    assert got == "1:LQU9qZlK+B5F3KDmev6m5PMibrg="


CORPUS = sorted(p for p in FOLDER.glob("*.json") if "derivation" in json.loads(p.read_text())["provenance"])


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.stem)
def test_derived_corpus_documents_are_what_derive_py_makes_of_their_line(path: Path) -> None:
    data = json.loads(path.read_text())
    derivation = data["provenance"]["derivation"]
    number, _, line = derive.log_lines()[derivation["log_line"] - 1]
    assert line == derivation["raw_line"]
    assert data["provenance"]["commit"] == derive.SOURCES["log"][2]
    assert derivation["pipeline"]["commit"] == derive.SOURCES["pipeline"][2]
    assert_same_fields(derive.derive(number), data["document"])


def _sysmon_fixtures() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in sorted((REPO_ROOT / "rules" / "linux").rglob("*.tests.yml")):
        data = yaml.safe_load(path.read_text()) or {}
        for kind in ("should_match", "should_not_match"):
            for index, entry in enumerate(data.get(kind) or []):
                if isinstance(entry, dict) and entry.get("provenance", {}).get("source") == "sysmon_linux":
                    out.append((f"{path.stem}:{kind}[{index}]", entry))
    return out


SYSMON_FIXTURES = _sysmon_fixtures()


def test_there_are_sysmon_fixtures() -> None:
    assert len(SYSMON_FIXTURES) >= 50


@pytest.mark.parametrize(("where", "entry"), SYSMON_FIXTURES, ids=[w for w, _ in SYSMON_FIXTURES])
def test_sysmon_fixtures_are_derived_from_a_real_line_with_values_only_changed(
    where: str, entry: dict[str, Any]
) -> None:
    provenance = entry["provenance"]
    assert provenance["derived_by"] == "tests/data/shippers/sysmon_linux/derive.py"
    number = int(provenance["file"].rsplit("#", 1)[1])
    corpus = json.loads((REPO_ROOT / provenance["corpus"]).read_text())
    assert corpus["provenance"]["derivation"]["log_line"] == number
    assert_same_fields(derive.derive(number, provenance["raw_values"]), entry["event"])
