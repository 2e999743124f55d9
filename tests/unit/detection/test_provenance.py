"""Fixtures claiming a real shipper carry complete provenance and no field that shipper never writes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from soar.detection import load_fixtures, load_rules
from soar.detection._provenance import SOURCE_FIELD_LISTS, invented_fields
from soar.errors import ContentError
from tests.conftest import REPO_ROOT
from tests.unit.detection.helpers import rule_yaml, write

CORPUS = REPO_ROOT / "tests" / "data" / "shippers"
FOLDER_SOURCE = {
    "system_auth": "system",
    "system_syslog": "system",
    "auditd_log": "auditd_log",
    "auditd_manager": "auditd_manager",
    "fim": "file_integrity",
    "sysmon_linux": "sysmon_linux",
}


def _document(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((CORPUS / name).read_text())
    return data["document"]


@pytest.mark.parametrize(
    "path", sorted(p for folder in FOLDER_SOURCE for p in (CORPUS / folder).glob("*.json")), ids=lambda p: p.stem
)
def test_real_documents_use_only_ecs_and_declared_fields(path: Path) -> None:
    """The field lists and ECS together cover what the shippers really write (the check has no false alarms)."""
    document = json.loads(path.read_text())["document"]
    assert invented_fields(document, FOLDER_SOURCE[path.parent.name]) == []


def _rule_with(tmp_path: Path, entry: dict[str, Any]) -> Path:
    rule = write(
        tmp_path / "r.yml",
        rule_yaml({"sel": {"User": "mallory"}, "condition": "sel"}, logsource={"product": "linux", "service": "sshd"}),
    )
    write(tmp_path / "r.tests.yml", yaml.safe_dump({"should_match": [entry], "should_not_match": []}, sort_keys=False))
    return rule


PROVENANCE = {
    "source": "system",
    "integration": "system",
    "integration_version": "unknown",
    "file": "elastic/integrations@x:packages/system/data_stream/auth/_dev/test/pipeline/test-auth.log-expected.json#0",
}


def test_a_documented_real_event_loads(tmp_path: Path) -> None:
    event = _document("system_auth/sshd_invalid_user.json")
    (rule,) = load_rules([_rule_with(tmp_path, {"provenance": PROVENANCE, "event": event})]).rules
    (fixture,) = load_fixtures(rule)
    assert fixture.events == [event]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda e, p: e["system"]["auth"].update(severity="high"), r"field system\.auth\.severity is neither an ECS"),
        (lambda e, p: p.update(source="splunk"), r"provenance source 'splunk' is not a known source"),
        (lambda e, p: p.pop("file"), r"provenance lacks file"),
    ],
    ids=["invented field", "unknown source", "no file"],
)
def test_a_fixture_inventing_fields_or_lacking_provenance_fails_at_its_line(
    tmp_path: Path, change: Any, message: str
) -> None:
    event, provenance = _document("system_auth/sshd_invalid_user.json"), dict(PROVENANCE)
    change(event, provenance)
    (rule,) = load_rules([_rule_with(tmp_path, {"provenance": provenance, "event": event})]).rules
    with pytest.raises(ContentError, match=message) as info:
        load_fixtures(rule)
    assert str(info.value).startswith(f"{tmp_path / 'r.tests.yml'}:2:")


def test_every_source_has_field_lists() -> None:
    for lists in SOURCE_FIELD_LISTS.values():
        for name in lists:
            assert (REPO_ROOT / "soar" / "data" / "shipper_fields" / f"{name}.txt").is_file()
