"""On Elasticsearch too, the generic endpoint branch leaves other sources' documents to their own branch: a real
Sysmon for Linux ``su`` (no user.name, so the admin filter cannot apply) does not fire ``su_to_root_non_admin``,
and the rule's should_match fixtures still match (tests/unit/detection/test_source_exclusions.py, embedded)."""

from __future__ import annotations

from elasticsearch import Elasticsearch

from soar.detection import load_rules, match_events
from tests.unit.detection.test_source_exclusions import SU_RULE, su_should_match, sysmon_su_document


def test_a_real_sysmon_su_does_not_fire_su_to_root_non_admin_on_elasticsearch(es: Elasticsearch) -> None:
    ruleset = load_rules([SU_RULE])
    fixtures = su_should_match()
    events = [sysmon_su_document(), *fixtures]
    report, errors = match_events(ruleset, events, engine="elasticsearch", es=es, index_prefix="soar-test-exclusions")
    assert errors == []
    (row,) = report
    assert row["matched_events"] == list(range(1, len(fixtures) + 1))
    assert match_events(ruleset, events, engine="embedded")[0] == report
