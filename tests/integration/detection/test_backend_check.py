"""The pySigma backend check: soar's Elasticsearch output is what sigma-cli produces with the same pipeline
(where Sigma's semantics allow), and the shipped index template makes case-insensitive matching hold."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch

from soar.detection import compile_rule, load_rules
from soar.detection.elastic import TEMPLATE_NAME, install_index_template
from soar.detection.pipelines import ecs_linux_yaml_path
from tests.conftest import REPO_ROOT
from tests.unit.detection.helpers import process_event, run_cli, write
from tests.unit.detection.semantics import CASES

SIGMA = Path(sys.executable).with_name("sigma")
# Where soar deliberately differs from pySigma's Lucene backend (see soar/detection/_backends.py).
DIFFERENT_BY_DESIGN = ("|cased", "|re")


def _sigma_cli(files: list[Path]) -> list[dict[str, object]]:
    out = subprocess.run(
        [str(SIGMA), "convert", "-t", "lucene", "-p", str(ecs_linux_yaml_path()), "-f", "dsl_lucene", *map(str, files)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def _plain_rule_files(tmp_path: Path) -> list[Path]:
    files = [
        p
        for p in sorted((REPO_ROOT / "rules").rglob("*.yml"))
        if not p.name.endswith(".tests.yml") and "correlation:" not in p.read_text()
    ]
    for n, case in enumerate(CASES):
        text = case.rule()
        if not any(marker in text for marker in DIFFERENT_BY_DESIGN):
            files.append(write(tmp_path / f"case{n:02}.yml", text))
    return files


def test_elasticsearch_output_equals_sigma_cli_with_the_same_pipeline(tmp_path: Path) -> None:
    files = _plain_rule_files(tmp_path)
    assert len(files) > 10
    expected = _sigma_cli(files)
    ours = []
    for path in files:
        (rule,) = load_rules([path]).rules
        ours.append(compile_rule(rule, target="elasticsearch").dsl)
    assert ours == expected


def test_template_makes_matching_case_insensitive(es: Elasticsearch, tmp_path: Path) -> None:
    pattern = f"soar-test-{uuid.uuid4().hex[:12]}"
    template = f"{TEMPLATE_NAME}-{pattern}"
    index = f"{pattern}-events"
    try:
        install_index_template(es, [f"{pattern}-*"], name=template)
        es.index(index=index, id="1", document=process_event("Bash -I", "/USR/BIN/Bash"), refresh="wait_for")
        mapping = es.indices.get_mapping(index=index)[index]["mappings"]["properties"]
        assert mapping["process"]["properties"]["executable"]["normalizer"] == "lowercase"
        assert mapping["process"]["properties"]["executable"]["fields"]["cased"]["type"] == "keyword"
        rule_path = write(tmp_path / "r.yml", CASES[0].rule().replace("/usr/bin/CURL", "/usr/bin/bash"))
        compiled = compile_rule(load_rules([rule_path]).rules[0], target="elasticsearch")
        assert compiled.dsl is not None
        hits = es.search(index=index, query=compiled.dsl["query"])["hits"]["hits"]
        assert [h["_id"] for h in hits] == ["1"]
    finally:
        es.options(ignore_status=404).indices.delete(index=f"{pattern}-*")
        es.options(ignore_status=404).indices.delete_index_template(name=template)


@pytest.mark.parametrize("marker", DIFFERENT_BY_DESIGN)
def test_deliberate_differences_are_only_cased_and_re(marker: str) -> None:
    assert any(marker in case.rule() for case in CASES)


def test_cli_installs_the_template(
    es: Elasticsearch, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    pattern = f"soar-test-{uuid.uuid4().hex[:12]}"
    name = f"soar-events-{pattern}"
    try:
        out = run_cli(
            capsys,
            monkeypatch,
            "rules",
            "install-template",
            "--pattern",
            f"{pattern}-*",
            "--name",
            name,
            env={"SOAR_STATE_DIR": str(tmp_path)},
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == f"index template {name} installed for {pattern}-*"
        (template,) = es.indices.get_index_template(name=name)["index_templates"]
        assert template["index_template"]["index_patterns"] == [f"{pattern}-*"]
    finally:
        es.options(ignore_status=404).indices.delete_index_template(name=name)
