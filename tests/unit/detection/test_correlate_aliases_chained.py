"""Sigma v2 correlation aliases and chained correlations, at the window's edges, on the embedded store.

The same rules run on Elasticsearch in tests/integration/detection/test_correlation_es.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from soar.detection import CompiledRule, compile_rule, evaluate_correlation, load_rules
from soar.detection.embedded import EventStore, correlation_events
from tests.unit.detection.helpers import auth_event, write
from tests.unit.detection.test_correlate import CORRELATIONS as SSH_CORRELATIONS
from tests.unit.detection.test_correlate import _at

# The sshd rules t_ssh_failure and t_ssh_success of test_correlate, and a network rule.
BASES = (
    "---\n".join(SSH_CORRELATIONS.split("---\n")[:2])
    + """---
title: Outbound to port 4444
id: 66666666-0000-4000-8000-000000000003
name: t_outbound_4444
status: test
logsource: {product: linux, category: network_connection}
detection:
  sel: {DestinationPort: 4444}
  condition: sel
level: low
"""
)

# test_correlate's brute force (named here, to be chained), a correlation with aliases, a chained one.
BRUTE_FORCE = SSH_CORRELATIONS.split("---\n")[2].replace("status: test", "name: t_brute_force\nstatus: test")
CORRELATIONS = (
    BRUTE_FORCE
    + """---
title: Login then a connection back to the same address
id: 66666666-0000-4000-8000-000000000012
status: test
correlation:
  type: temporal_ordered
  rules: [t_ssh_success, t_outbound_4444]
  group-by: [peer]
  timespan: 1m
  aliases:
    peer:
      t_ssh_success: SourceIp
      t_outbound_4444: DestinationIp
level: high
---
title: Login after a brute force
id: 66666666-0000-4000-8000-000000000013
status: test
correlation:
  type: temporal_ordered
  rules: [t_brute_force, t_ssh_success]
  group-by: [SourceIp]
  timespan: 1m
level: critical
"""
)


def outbound_event(ts: str, destination_ip: str, port: int = 4444) -> dict[str, Any]:
    """An Elastic Defend network connection event."""
    return {
        "@timestamp": ts,
        "host": {"name": "bastion"},
        "event": {"category": ["network"], "type": ["start"], "action": "connection_attempted"},
        "process": {"executable": "/usr/bin/bash", "name": "bash"},
        "destination": {"ip": destination_ip, "port": port},
        "source": {"ip": "10.0.0.5", "port": 40000},
    }


# The login (0 s) and the connection back: per address, one delta from the login.
ALIAS_EVENTS = [
    auth_event(_at(0), "success", "203.0.113.5"),
    outbound_event(_at(59), "203.0.113.5"),  # 59 s later: inside the 1m window
    auth_event(_at(0), "success", "198.51.100.7"),
    outbound_event(_at(60), "198.51.100.7"),  # exactly the timespan: inside
    auth_event(_at(0), "success", "198.51.100.8"),
    outbound_event(_at(61), "198.51.100.8"),  # 61 s: outside
    outbound_event(_at(0), "198.51.100.9"),  # connection before the login: not in order
    auth_event(_at(10), "success", "198.51.100.9"),
    auth_event(_at(0), "success", "192.0.2.1"),
    outbound_event(_at(10), "192.0.2.2"),  # another address: the alias keeps them apart
]

# Three failures make a brute-force match ending at the third; the success must follow within 1m of it.
CHAINED_EVENTS = [
    *(auth_event(_at(t), "failure", "203.0.113.5") for t in (0, 20, 40)),
    auth_event(_at(100), "success", "203.0.113.5"),  # 60 s after the match's end: inside
    *(auth_event(_at(t), "failure", "198.51.100.7") for t in (0, 20, 40)),
    auth_event(_at(101), "success", "198.51.100.7"),  # 61 s after: outside
    *(auth_event(_at(t), "failure", "198.51.100.9") for t in (0, 20)),
    auth_event(_at(30), "success", "198.51.100.9"),  # only two failures: no brute force to follow
    auth_event(_at(0), "success", "192.0.2.1"),  # success before the brute force: not in order
    *(auth_event(_at(t), "failure", "192.0.2.1") for t in (10, 20, 30)),
]


def compiled(tmp_path: Path, target: str = "embedded") -> dict[str, CompiledRule]:
    ruleset = load_rules([write(tmp_path / "bases.yml", BASES), write(tmp_path / "corr.yml", CORRELATIONS)])
    ruleset.raise_first()
    return {r.title: compile_rule(r, target=target, ruleset=ruleset) for r in ruleset.rules if r.kind == "correlation"}


def embedded_matches(rule: CompiledRule, events: list[dict[str, Any]]) -> list[tuple[str, tuple[int, ...]]]:
    spec = rule.correlation
    assert spec is not None
    with EventStore() as store:
        store.insert(events)
        found = evaluate_correlation(spec, correlation_events(store, spec))
    return [(next(iter(m.group.values())), tuple(m.refs)) for m in found]


def test_alias_maps_each_rule_through_its_own_log_source(tmp_path: Path) -> None:
    spec = compiled(tmp_path)["Login then a connection back to the same address"].correlation
    assert spec is not None
    assert spec.group_by == ("peer",)
    assert spec.rule_fields == {
        "55555555-0000-4000-8000-000000000002": ("source.ip",),
        "66666666-0000-4000-8000-000000000003": ("destination.ip",),
    }
    again = CompiledRule.from_dict(compiled(tmp_path)["Login then a connection back to the same address"].to_dict())
    assert again.correlation == spec  # the cache and --json keep the aliases


def test_alias_correlation_at_the_window_edges(tmp_path: Path) -> None:
    rule = compiled(tmp_path)["Login then a connection back to the same address"]
    assert embedded_matches(rule, ALIAS_EVENTS) == [("198.51.100.7", (2, 3)), ("203.0.113.5", (0, 1))]


def test_chained_correlation_at_the_window_edges(tmp_path: Path) -> None:
    rules = compiled(tmp_path)
    spec = rules["Login after a brute force"].correlation
    assert spec is not None
    inner = spec.rules[0].correlation
    assert inner is not None and inner.type == "event_count"
    assert spec.reach == 120  # its own minute and the brute force's
    assert embedded_matches(rules["Login after a brute force"], CHAINED_EVENTS) == [("203.0.113.5", (0, 1, 2, 3))]
    # The inner correlation alone matches three addresses; only one is followed by a login in time.
    assert [g for g, _ in embedded_matches(rules["Brute force"], CHAINED_EVENTS)] == [
        "192.0.2.1",
        "198.51.100.7",
        "203.0.113.5",
    ]


BAD = [
    (
        "aliases:\n    peer:\n      t_ssh_success: SourceIp\n      t_nowhere: DestinationIp\n",
        "alias 'peer' names 't_nowhere', which is not a rule of this correlation",
        "t_nowhere",
    ),
    (
        "aliases:\n    peer:\n      t_ssh_success: SourceIp\n      t_outbound_4444: NoSuchField\n",
        "alias 'peer' for rule 't_outbound_4444': field 'NoSuchField' is not mapped by ecs_linux",
        "t_outbound_4444: NoSuchField",
    ),
    (
        "aliases:\n    peer:\n      t_ssh_success: SourceIp\n",
        "alias 'peer' names no field for rule 't_outbound_4444'",
        "peer:",
    ),
]


@pytest.mark.parametrize(("aliases", "message", "line_text"), BAD, ids=["unknown rule", "unmapped field", "missing"])
def test_bad_aliases_name_the_file_and_line(tmp_path: Path, aliases: str, message: str, line_text: str) -> None:
    text = f"""\
title: Bad alias
id: 66666666-0000-4000-8000-000000000021
status: test
correlation:
  type: temporal
  rules: [t_ssh_success, t_outbound_4444]
  group-by: [peer]
  timespan: 1m
  {aliases}level: high
"""
    path = write(tmp_path / "bad.yml", text)
    ruleset = load_rules([write(tmp_path / "bases.yml", BASES), path])
    ruleset.raise_first()
    with pytest.raises(Exception) as caught:
        compile_rule(ruleset.rules[-1], target="embedded", ruleset=ruleset)
    line = next(i for i, t in enumerate(path.read_text().splitlines(), 1) if line_text in t)
    assert str(caught.value).startswith(f"{path}:{line}:")
    assert message in str(caught.value)


def test_chained_group_by_must_be_carried_and_loops_are_errors(tmp_path: Path) -> None:
    text = """\
title: Brute force per user
id: 66666666-0000-4000-8000-000000000031
name: t_brute_user
status: test
correlation:
  type: event_count
  rules: [t_ssh_failure]
  group-by: [User]
  timespan: 1m
  condition: {gte: 3}
level: high
---
title: Login after a brute force, by address
id: 66666666-0000-4000-8000-000000000032
status: test
correlation:
  type: temporal
  rules: [t_brute_user, t_ssh_success]
  group-by: [SourceIp]
  timespan: 1m
level: high
---
title: Loop one
id: 66666666-0000-4000-8000-000000000033
name: t_loop_one
status: test
correlation:
  type: temporal
  rules: [t_loop_two, t_ssh_success]
  timespan: 1m
level: high
---
title: Loop two
id: 66666666-0000-4000-8000-000000000034
name: t_loop_two
status: test
correlation:
  type: temporal
  rules: [t_loop_one]
  timespan: 1m
level: high
"""
    path = write(tmp_path / "chains.yml", text)
    ruleset = load_rules([write(tmp_path / "bases.yml", BASES), path])
    ruleset.raise_first()
    by_title = {r.title: r for r in ruleset.rules}
    lines = path.read_text().splitlines()
    with pytest.raises(Exception) as caught:
        compile_rule(by_title["Login after a brute force, by address"], target="embedded", ruleset=ruleset)
    assert str(caught.value) == (
        f"{path}:{lines.index('  group-by: [SourceIp]') + 1}:3: field 'source.ip' is not a group-by field of the "
        "chained correlation 't_brute_user' (its matches carry: user.name)"
    )
    with pytest.raises(Exception) as caught:
        compile_rule(by_title["Loop one"], target="embedded", ruleset=ruleset)
    assert "correlation chain loops back to 't_loop_one'" in str(caught.value)
    assert str(caught.value).startswith(f"{path}:")


def test_a_cached_chained_correlation_misses_when_a_rule_behind_its_inner_one_changes(tmp_path: Path) -> None:
    from soar.detection import CompileCache, convert_paths

    docs = [d.rstrip("\n") + "\n" for d in BASES.split("---\n")]
    corr = [d.rstrip("\n") + "\n" for d in CORRELATIONS.split("---\n")]
    rules = tmp_path / "rules"
    failure = write(rules / "failure.yml", docs[0])
    write(rules / "others.yml", "---\n".join(docs[1:]))
    write(rules / "brute.yml", corr[0])
    write(rules / "chain.yml", corr[2])
    cache = CompileCache(tmp_path / "cache")
    first = convert_paths([rules], target="embedded", cache=cache)
    assert first.errors == [] and first.cache_hits == 0
    assert convert_paths([rules], target="embedded", cache=cache).cache_hits == 4
    failure.write_text(docs[0].replace("failure}", "FAILURE}"), encoding="utf-8")
    again = convert_paths([rules], target="embedded", cache=cache)
    assert again.cache_hits == 1  # only others.yml: failure.yml, brute.yml and chain.yml (through brute) miss
    chained = next(c for c in again.compiled if c.title == "Login after a brute force")
    assert chained.correlation is not None
    assert "FAILURE" in str(chained.correlation.rules[0].correlation.rules[0].query)  # type: ignore[union-attr]


def test_coverage_lists_the_fields_an_alias_stands_for(tmp_path: Path) -> None:
    from soar.detection import coverage

    ruleset = load_rules([write(tmp_path / "bases.yml", BASES), write(tmp_path / "corr.yml", CORRELATIONS)])
    rows = {r["title"]: r for r in coverage(ruleset, ("ecs_linux",))["rules"]}
    row = rows["Login then a connection back to the same address"]
    assert row["compiles"] and {"source.ip", "destination.ip"} <= set(row["fields"]) and "peer" not in row["fields"]
