"""The pySigma backend check: soar's Lucene export is what sigma-cli produces with the same pipeline (where
Sigma's semantics allow), and soar installs no template over the data streams shippers write."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch

from soar.detection import compile_rule, load_rules
from soar.detection.elastic import TEMPLATE_NAME, install_index_template
from soar.detection.pipelines import ecs_linux_yaml_path
from soar.errors import InputError
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
        if not p.name.endswith((".tests.yml", ".soar.yml")) and "correlation:" not in p.read_text()
    ]
    for n, case in enumerate(CASES):
        text = case.rule()
        if not any(marker in text for marker in DIFFERENT_BY_DESIGN):
            files.append(write(tmp_path / f"case{n:02}.yml", text))
    return files


def test_lucene_export_equals_sigma_cli_with_the_same_pipeline(tmp_path: Path) -> None:
    files = _plain_rule_files(tmp_path)
    assert len(files) > 10
    expected = [doc["query"]["bool"]["must"][0]["query_string"]["query"] for doc in _sigma_cli(files)]
    ours = []
    for path in files:
        (rule,) = load_rules([path]).rules
        ours.append(compile_rule(rule, target="lucene").query)
    assert ours == expected


@pytest.mark.parametrize("marker", DIFFERENT_BY_DESIGN)
def test_deliberate_differences_are_only_cased_and_re(marker: str) -> None:
    assert any(marker in case.rule() for case in CASES)


def _data_stream(es: Elasticsearch, stream: str, template: str, meta: dict[str, str] | None = None) -> None:
    """A data stream as an integration makes one (fixed names: this server has no API to delete data streams)."""
    es.indices.put_index_template(
        name=template,
        index_patterns=[stream],
        data_stream={},
        priority=200,
        template={
            "settings": {"number_of_replicas": 0},  # one node: a replica would leave the cluster yellow for good
            "mappings": {"properties": {"@timestamp": {"type": "date"}}},
        },
        meta=meta or {"managed_by": "fleet"},
    )
    es.index(index=stream, document={"@timestamp": "2000-01-01T00:00:00Z"}, op_type="create", refresh=True)


def test_no_template_over_shipper_data_streams(es: Elasticsearch) -> None:
    """logs-* belongs to the integrations that write it; an existing data stream soar did not create is refused."""
    _data_stream(es, "logs-soartest.fleet-default", "soartest-fleet-like")
    for pattern in ("logs-*", "logs-system.auth-*", "*", "metrics-*"):
        with pytest.raises(InputError, match=rf"refused: {re.escape(pattern)}: matches the data streams shippers"):
            install_index_template(es, [pattern], name=f"{TEMPLATE_NAME}-never")
    # Outside the shippers' namespaces, an existing data stream of someone else's is refused by name.
    _data_stream(es, "soartest-others-x", "soartest-others")
    with pytest.raises(InputError, match=r"soartest-others-\*: matches data stream soartest-others-x, which soar does"):
        install_index_template(es, ["soartest-others-*"], name=f"{TEMPLATE_NAME}-never")
    assert es.options(ignore_status=404).indices.get_index_template(name=f"{TEMPLATE_NAME}-never").meta.status == 404


def test_cli_installs_the_ecs_template_on_soars_own_indices(
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
        index = f"{pattern}-events"
        es.index(index=index, id="1", document=process_event("Bash -I", "/USR/BIN/Bash"), refresh="wait_for")
        mapping = es.indices.get_mapping(index=index)[index]["mappings"]["properties"]
        # ECS as a real cluster maps it: case kept (no normaliser), wildcard -> keyword on this open-modules server
        assert mapping["process"]["properties"]["executable"]["type"] == "keyword"
        assert "normalizer" not in mapping["process"]["properties"]["executable"]
        assert mapping["message"]["type"] == "text"
        refused = run_cli(
            capsys,
            monkeypatch,
            "rules",
            "install-template",
            "--pattern",
            "logs-*",
            env={"SOAR_STATE_DIR": str(tmp_path)},
        )
        assert refused.returncode != 0
        assert refused.stderr.strip().startswith("error: refused: logs-*: matches the data streams shippers write")
    finally:
        es.options(ignore_status=404).indices.delete(index=f"{pattern}-*")
        es.options(ignore_status=404).indices.delete_index_template(name=name)
