"""Trigger matching: rules or tags, a minimum level, field conditions."""

from __future__ import annotations

from soar.playbooks.model import Trigger
from soar.playbooks.triggers import matches

ALERT = {
    "rule": {"id": "r1", "level": "high", "tags": ["attack.credential-access", "attack.t1110.001"]},
    "severity": "high",
    "source": {"ip": "203.0.113.7"},
    "host": {"name": "web1"},
}


def test_rule_or_tag_with_sub_techniques() -> None:
    assert matches(Trigger(rules=("r1",)), ALERT)
    assert matches(Trigger(tags=("attack.t1110",)), ALERT)
    assert matches(Trigger(tags=("ATTACK.T1110.001",)), ALERT)
    assert not matches(Trigger(tags=("attack.t111",)), ALERT)
    assert not matches(Trigger(rules=("r2",), tags=("attack.t1059",)), ALERT)


def test_min_level_and_where() -> None:
    assert matches(Trigger(rules=("r1",), min_level="high"), ALERT)
    assert not matches(Trigger(rules=("r1",), min_level="critical"), ALERT)
    assert matches(Trigger(rules=("r1",), where={"source.ip": {"exists": True}, "host.name": ["web1", "web2"]}), ALERT)
    assert not matches(Trigger(rules=("r1",), where={"user.name": {"exists": True}}), ALERT)
    assert not matches(Trigger(rules=("r1",), where={"host.name": {"not": "web1"}}), ALERT)
    assert matches(Trigger(where={"host.name": "web1"}), ALERT)
