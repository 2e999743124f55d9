"""The generic ``endpoint`` branch does not pick other sources' documents (pipelines/_sources.py ``exclusions``).

``endpoint`` recognises documents by ECS categorisation alone (``event.category: process``, ``event.type:
start``), so every Sysmon for Linux, auditd_manager or Filebeat-auditd process start matches it too, read
with endpoint's mapping: a ``not`` filter on a field that source never writes (Sysmon and ``user.name``)
always passed, and ``su_to_root_non_admin`` fired on every Sysmon ``su``. Its branch now excludes, by their
own identifying conditions, the documents of every other source carrying the same log source.
"""

from __future__ import annotations

import importlib.util
import json
from types import ModuleType
from typing import Any

from soar.detection import Compiler, load_fixtures, load_rules, match_events
from soar.detection.dsl_match import matches
from soar.detection.pipelines._sources import (
    IDENTIFYING_FIELDS,
    condition_count,
    exclusions,
    identifying_conditions,
    load_sources,
    sources_for,
)
from tests.conftest import REPO_ROOT

SU_RULE = REPO_ROOT / "rules" / "linux" / "process_creation" / "su_to_root_non_admin.yml"
SYSMON = REPO_ROOT / "tests" / "data" / "shippers" / "sysmon_linux"
# The raw <Data> values of the real event ID 1 record of sysmon.log line 22 filled in (values only), as the
# rule fixtures with source sysmon_linux are made: a user running `su` from a login shell.
SU_VALUES = {
    "Image": "/usr/bin/su",
    "CommandLine": "su",
    "CurrentDirectory": "/home/vagrant",
    "ParentImage": "/bin/bash",
    "ParentCommandLine": "-bash",
}


def _derive() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sysmon_linux_derive_for_exclusions", SYSMON / "derive.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sysmon_su_document() -> dict[str, Any]:
    """The derived Sysmon for Linux document of a real event ID 1 record, its values those of an ``su``."""
    line = json.loads((SYSMON / "event_id_1_process_create.json").read_text())["provenance"]["derivation"]["log_line"]
    document: dict[str, Any] = _derive().derive(line, SU_VALUES)
    return document


def su_should_match() -> list[dict[str, Any]]:
    (rule,) = load_rules([SU_RULE]).rules
    return [e for f in load_fixtures(rule) if f.kind == "should_match" for e in f.events]


def test_endpoint_excludes_every_other_source_of_each_log_source_by_its_identifying_conditions() -> None:
    assert exclusions("endpoint", "category:process_creation") == (
        {"event.dataset": "sysmon_linux.log"},
        {"event.module": "auditd"},
        {"event.dataset": "auditd.log"},
    )
    assert exclusions("endpoint", "category:file_event") == (
        {"event.dataset": "sysmon_linux.log"},
        {"event.module": "file_integrity"},
    )
    assert exclusions("endpoint", "category:network_connection") == ({"event.dataset": "sysmon_linux.log"},)


def test_exclusions_are_generic_over_sources_yml() -> None:
    """Any source without an identifying condition excludes the others; a source that names its documents, none."""
    for source in load_sources().values():
        for key, mapping in source.logsources.items():
            excluded = exclusions(source.name, key)
            if identifying_conditions(mapping):
                assert excluded == (), (source.name, key)
                continue
            others = [identifying_conditions(o) for o in sources_for(key) if o.source != source.name]
            assert all(o in excluded for o in others if o), (source.name, key)
            assert all(set(e) <= set(IDENTIFYING_FIELDS) for e in excluded)
            assert condition_count(source.name, key) == len(excluded) + len(mapping.conditions)


def test_the_endpoint_branch_of_a_compiled_query_starts_with_one_must_not_per_excluded_source() -> None:
    (rule,) = load_rules([SU_RULE]).rules
    query = Compiler("elasticsearch").source_queries(rule)["endpoint"]
    clauses = query["bool"]["filter"]
    assert clauses[:3] == [
        {"bool": {"must_not": [{"term": {"event.dataset": "sysmon_linux.log"}}]}},
        {"bool": {"must_not": [{"term": {"event.module": "auditd"}}]}},
        {"bool": {"must_not": [{"term": {"event.dataset": "auditd.log"}}]}},
    ]
    assert clauses[3:5] == [{"term": {"event.category": "process"}}, {"term": {"event.type": "start"}}]


def test_the_sysmon_su_document_is_what_the_endpoint_branch_alone_used_to_match() -> None:
    """Without its exclusions the endpoint branch matches the real Sysmon ``su``: the false positive was real."""
    document = sysmon_su_document()
    assert document["event"]["dataset"] == "sysmon_linux.log" and "user" not in document
    (rule,) = load_rules([SU_RULE]).rules
    query = Compiler("elasticsearch").source_queries(rule)["endpoint"]
    without = {"bool": {"filter": query["bool"]["filter"][len(exclusions("endpoint", "category:process_creation")) :]}}
    assert matches(without, document)
    assert not matches(query, document)


def test_a_real_sysmon_su_does_not_fire_su_to_root_non_admin() -> None:
    ruleset = load_rules([SU_RULE])
    fixtures = su_should_match()
    report, errors = match_events(ruleset, [sysmon_su_document(), *fixtures], engine="embedded")
    assert errors == []
    (row,) = report
    assert row["matched_events"] == list(range(1, len(fixtures) + 1))  # every should_match, not the Sysmon su


def test_sources_yml_identifying_fields_are_the_ones_the_conditions_use() -> None:
    """Every source but endpoint names its documents, so the exclusion is never empty where it matters."""
    for source in load_sources().values():
        for key, mapping in source.logsources.items():
            assert bool(identifying_conditions(mapping)) == (source.name != "endpoint"), (source.name, key)


def test_exclusion_fields_are_known_to_the_strict_check() -> None:
    """The added ``not event.dataset`` clauses do not trip the strict field check of endpoint's pipeline."""
    ruleset = load_rules([SU_RULE])
    compiled = Compiler("embedded").compile(ruleset.rules[0], ruleset)
    assert "endpoint" in compiled.sources
    assert "event.dataset" in str(compiled.sql) and "NOT" in str(compiled.sql)
