"""Exports mean what the rule means, and each target's own parser accepts what soar writes (issue #14).

ElastAlert2's rule loader and schema (``elastalert-test-rule --schema-only``, in the virtualenv the
detection benchmark uses), and Endgame's ``eql`` parser in Elasticsearch syntax. ES|QL has no parser
installable here and the test server serves neither language: those exports are checked by content.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.detection.helpers import rule_yaml, run_cli, write

INDEX = "logs-endpoint.events.process-*"
RULES = {
    "mixed_case": {"sel": {"CommandLine|contains": "Curl -S ", "Image|endswith": "/Bash"}, "condition": "sel"},
    "regex": {"sel": {"CommandLine|re": "base64 -d"}, "condition": "sel"},
    "keywords": {"kw": ["wget http"], "condition": "kw"},
    "lookaround": {"sel": {"CommandLine|re": "(?<=x)y"}, "condition": "sel"},
}


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    folder = tmp_path / "rules"
    for name, detection in RULES.items():
        write(folder / f"{name}.yml", rule_yaml(detection, title=f"Export {name}"))
    return folder


def _export(capsys: Any, monkeypatch: Any, tmp_path: Path, rules: Path, fmt: str) -> tuple[str, str]:
    env = {"SOAR_STATE_DIR": str(tmp_path / "state"), "SOAR_EVENTS_INDEX": INDEX}
    out = run_cli(capsys, monkeypatch, "rules", "convert", str(rules), "-f", fmt, "--skip-unsupported", env=env)
    assert out.returncode == 0, out.stderr
    return out.stdout, out.stderr


def test_elastalert_rules_load_in_elastalert2_with_the_configured_index(
    capsys: Any, monkeypatch: Any, tmp_path: Path, rules: Path
) -> None:
    from tests.benchmarks.bench_detection import ensure_elastalert

    exe = ensure_elastalert()
    assert exe is not None, "ElastAlert2 could not be installed from PyPI"
    text, skipped = _export(capsys, monkeypatch, tmp_path, rules, "elastalert")
    docs = [d for d in yaml.safe_load_all(text) if d]
    assert sorted(d["name"] for d in docs) == ["Export keywords", "Export mixed_case", "Export regex"]
    assert "lookaround.yml" in skipped and "Lucene RegExp" in skipped  # refused for Elasticsearch: not exported
    assert all(d["index"] == INDEX and d["alert"] == ["debug"] for d in docs)
    queries = {d["name"]: d["filter"][0]["query"]["query_string"]["query"] for d in docs}
    assert "process.command_line:/.*(base64 -d).*/" in queries["Export regex"]  # a search, not the whole value
    config = write(
        tmp_path / "ea" / "config.yaml",
        yaml.safe_dump(
            {
                "rules_folder": str(tmp_path / "ea" / "rules"),
                "run_every": {"seconds": 5},
                "buffer_time": {"minutes": 15},
                "es_host": "127.0.0.1",
                "es_port": 9200,
                "writeback_index": "elastalert_status",
                "alert_time_limit": {"days": 1},
            }
        ),
    )
    (tmp_path / "ea" / "rules").mkdir()
    test_rule = exe.parent / "elastalert-test-rule"

    def schema_check(path: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(test_rule), "--config", str(config), "--schema-only", str(path)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    for doc in docs:
        path = write(tmp_path / "ea" / f"{doc['name'].replace(' ', '_')}.yaml", yaml.safe_dump(doc))
        loaded = schema_check(path)
        assert loaded.returncode == 0, (doc["name"], loaded.stdout[-2000:], loaded.stderr[-2000:])
        without_alert = write(
            path.with_suffix(".noalert.yaml"), yaml.safe_dump({k: v for k, v in doc.items() if k != "alert"})
        )
        refused = schema_check(without_alert)
        assert refused.returncode != 0  # the loader really validates: the key soar adds is the one it needs


def test_eql_exports_parse_in_elasticsearch_syntax_and_keyword_rules_are_refused(
    capsys: Any, monkeypatch: Any, tmp_path: Path, rules: Path
) -> None:
    import eql

    text, skipped = _export(capsys, monkeypatch, tmp_path, rules, "eql")
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 2, lines  # mixed_case and regex
    with eql.parser.elasticsearch_syntax, eql.parser.ignore_missing_functions:
        parsed = [eql.parse_query(line) for line in lines]
    assert all(parsed)
    assert any('process.command_line regex ".*(base64 -d).*"' in line for line in lines)  # case-sensitive, a search
    assert any('process.command_line:"*Curl -S *"' in line for line in lines)  # ':' compares case-insensitively
    assert "keywords.yml" in skipped and "EQL has no full-text search" in skipped
    assert "lookaround.yml" in skipped


def test_esql_exports_match_case_insensitively_and_search_regexps(
    capsys: Any, monkeypatch: Any, tmp_path: Path, rules: Path
) -> None:
    text, skipped = _export(capsys, monkeypatch, tmp_path, rules, "esql")
    lines = [line for line in text.splitlines() if line.strip()]
    assert all(line.startswith(f"from {INDEX} metadata") for line in lines)
    mixed = next(line for line in lines if "like" in line)
    # ES|QL's like/ends_with are case-sensitive: both sides lower-cased, so 'CURL -s' matches 'Curl -S' as in Sigma
    assert 'to_lower(process.command_line) like "*curl -s *"' in mixed
    assert 'ends_with(to_lower(process.executable), "/bash")' in mixed
    assert any('process.command_line rlike ".*(base64 -d).*"' in line for line in lines)
    assert "lookaround.yml" in skipped


def test_kibana_rules_search_the_configured_index(capsys: Any, monkeypatch: Any, tmp_path: Path, rules: Path) -> None:
    text, skipped = _export(capsys, monkeypatch, tmp_path, rules, "kibana-ndjson")
    items = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert items and all(item["index"] == [INDEX] for item in items)
    assert "lookaround.yml" in skipped


def test_the_query_string_export_matches_what_soars_own_search_matches(es: Any, es_index: str, tmp_path: Path) -> None:
    """On an ECS-mapped index: Sigma's case-insensitive strings, |cased and |re mean the same in the
    query_string Kibana and ElastAlert receive as in soar's DSL (mixed-case and non-ASCII values)."""
    from soar.detection import compile_rule, load_rules
    from soar.detection.elastic import bulk_index, create_events_index

    detection = {
        "sel": {"CommandLine|contains": "Curl -S ", "Image|endswith": "/Bash", "User|cased": "Root"},
        "re": {"CommandLine|re": "base64 -d"},
        "condition": "sel or re",
    }
    path = write(tmp_path / "rules" / "r.yml", rule_yaml(detection))
    (rule,) = load_rules([path]).rules
    docs = []
    for i, (cmd, exe, user) in enumerate(
        [
            ("CURL -s http://x", "/usr/bin/bash", "Root"),  # matches: case folded, user written as the rule
            ("curl -S http://x", "/usr/bin/BASH", "root"),  # |cased: 'root' is not 'Root'
            ("echo x | BASE64 -d", "/bin/sh", "x"),  # |re is case-sensitive
            ("echo x | base64 -d | sh", "/bin/sh", "x"),  # a search inside the value
            ("çurl -s", "/bin/bash", "Root"),  # not ASCII: never folded to 'c'
        ]
    ):
        docs.append(
            (
                str(i),
                {
                    "@timestamp": "2026-12-06T10:00:00Z",
                    "event": {"category": ["process"], "type": ["start"]},
                    "process": {"command_line": cmd, "executable": exe},
                    "user": {"name": user},
                },
            )
        )
    create_events_index(es, es_index)
    bulk_index(es, es_index, docs)
    es.indices.refresh(index=es_index)
    dsl = compile_rule(rule, "elasticsearch").dsl
    from soar.detection import export_rules

    text, errors = export_rules([rule], "kibana-ndjson", index=es_index)
    assert not errors
    lucene = json.loads(text)["query"]

    def hits(query: dict[str, Any]) -> set[str]:
        return {h["_id"] for h in es.search(index=es_index, query=query, size=50)["hits"]["hits"]}

    expected = hits(dsl["query"])
    assert expected == {"0", "3"}
    assert hits({"query_string": {"query": lucene}}) == expected
