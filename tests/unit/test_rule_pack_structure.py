"""The shipped Linux rule pack is well-formed, tagged and carries fixtures that pin each rule down.

Pure: pySigma and the YAML files only, no detection engine and no services. Whether the
fixtures really match is `soar rules test`'s job; this checks that every rule *can* be
tested that way: a should_match and a minimally different should_not_match beside it.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from sigma.collection import SigmaCollection
from sigma.correlations import SigmaCorrelationRule, SigmaCorrelationType
from sigma.rule import SigmaRule

REPO = Path(__file__).resolve().parents[2]
PACK = REPO / "rules" / "linux"
ATTACK_DATA = REPO / "soar" / "data" / "enterprise-attack.json"

RULE_FILES = sorted(  # Sigma rules; soar's own rule types (*.soar.yml) are tested by tests/integration/scheduler
    p for p in PACK.rglob("*.yml") if not p.name.endswith((".tests.yml", ".soar.yml"))
)
FILE_IDS = [str(p.relative_to(PACK)) for p in RULE_FILES]

# The log sources of docs/ecs-linux-pipeline.md: nothing else would compile.
CATEGORIES = {"process_creation", "file_event", "network_connection"}
SERVICES = {"auditd", "auth", "sshd", "sudo", "syslog", "cron"}
LEVELS = {"informational", "low", "medium", "high", "critical"}
# Differences allowed between a should_not_match and its nearest should_match: one fact,
# plus the fields an integration derives from it (process.args -> args_count, command_line).
MAX_CHANGED_FIELDS = 3


def load(path: Path) -> SigmaCollection:
    return SigmaCollection.from_yaml(path.read_text(encoding="utf-8"), collect_errors=True)


def fixtures_file(path: Path) -> Path:
    return path.with_name(path.name.removesuffix(".yml") + ".tests.yml")


def correlations(collection: SigmaCollection) -> list[SigmaCorrelationRule]:
    return [r for r in collection if isinstance(r, SigmaCorrelationRule)]


@cache
def attack() -> tuple[frozenset[str], frozenset[str]]:
    """Tactic short names and technique ids from the ATT&CK bundle shipped for offline use."""
    bundle = json.loads(ATTACK_DATA.read_text(encoding="utf-8"))
    tactics, techniques = set(), set()
    for obj in bundle["objects"]:
        ids = [
            ref["external_id"] for ref in obj.get("external_references", []) if ref.get("source_name") == "mitre-attack"
        ]
        if obj.get("type") == "x-mitre-tactic":
            tactics.add(obj["x_mitre_shortname"])
        elif obj.get("type") == "attack-pattern":
            techniques.update(i.lower() for i in ids)
    return frozenset(tactics), frozenset(techniques)


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Leaf fields of an event, dotted; a list is one value (ECS keyword arrays change as a whole)."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, sub in value.items():
            out.update(flatten(sub, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): value}


def changed_paths(a: dict[str, Any], b: dict[str, Any]) -> set[str]:
    fa, fb = flatten(a), flatten(b)
    return {key for key in fa.keys() | fb.keys() if fa.get(key) != fb.get(key)}


def changed_fields(a: dict[str, Any], b: dict[str, Any]) -> int:
    return len(changed_paths(a, b))


def scenario_distance(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> int:
    """Fields changed between two event sequences (the same field in several events counts once),
    plus one for each event added or left out."""
    paths: set[str] = set()
    for x, y in zip(a, b, strict=False):
        paths |= changed_paths(x, y)
    return len(paths) + abs(len(a) - len(b))


PROVENANCE_KEYS = ("source", "integration", "integration_version", "file")


def documented(entry: Any) -> bool:
    """A fixture entry ``{provenance, event}``: a real shipper document with where it comes from (issue #13)."""
    return isinstance(entry, dict) and set(entry) == {"provenance", "event"}


def unwrap(entry: Any) -> Any:
    """The event of a fixture entry (bare or documented); a correlation scenario, event by event."""
    if isinstance(entry, list):
        return [unwrap(e) for e in entry]
    return entry["event"] if documented(entry) else entry


def timestamp(event: dict[str, Any]) -> dt.datetime:
    return dt.datetime.fromisoformat(event["@timestamp"].replace("Z", "+00:00"))


def test_the_pack_has_the_rules_the_issue_asks_for() -> None:
    standalone = [p for p in RULE_FILES if not correlations(load(p))]
    correlated = {c.type for p in RULE_FILES for c in correlations(load(p))}
    assert len(RULE_FILES) >= 32
    assert len(standalone) >= 28
    assert {SigmaCorrelationType.EVENT_COUNT, SigmaCorrelationType.VALUE_COUNT} <= correlated
    assert SigmaCorrelationType.TEMPORAL_ORDERED in correlated


# Each host-misuse topic issue 3 lists -> the pack's rule files for it and a token their rule text holds
# (and, for the correlations it asks for, the correlation type).
TOPICS: dict[str, tuple[tuple[str, ...], str, SigmaCorrelationType | None]] = {
    "SSH brute force": (("auth/ssh_brute_force.yml",), "Failed", SigmaCorrelationType.EVENT_COUNT),
    "password spraying": (("auth/ssh_password_spraying.yml",), "user.name", SigmaCorrelationType.VALUE_COUNT),
    "login after many failures": (
        ("auth/ssh_login_after_failures.yml",),
        "Accepted",
        SigmaCorrelationType.TEMPORAL_ORDERED,
    ),
    "sudo by a user not in sudoers": (("auth/sudo_user_not_in_sudoers.yml",), "sudoers", None),
    "su/sudo to root by a non-admin": (
        ("auth/sudo_root_shell_non_admin.yml", "process_creation/su_to_root_non_admin.yml"),
        "root",
        None,
    ),
    "local user or group created": (
        ("process_creation/local_user_created.yml", "process_creation/local_group_created.yml"),
        "add",
        None,
    ),
    "user added to a privileged group": (("process_creation/user_added_to_privileged_group.yml",), "sudo", None),
    "authorized_keys modified": (("file_event/ssh_authorized_keys_modified.yml",), "authorized_keys", None),
    "passwd/shadow/sudoers modified": (
        ("file_event/account_database_modified.yml", "file_event/sudoers_modified.yml"),
        "/etc/",
        None,
    ),
    "shadow file read": (
        ("auditd/shadow_file_opened.yml", "process_creation/shadow_file_read_by_tool.yml"),
        "/etc/shadow",
        None,
    ),
    "reverse shells": (
        tuple(f"process_creation/reverse_shell_{k}.yml" for k in ("bash_dev_tcp", "mkfifo", "netcat_exec", "perl")),
        "",
        None,
    ),
    "download and execute": (("process_creation/download_piped_to_shell.yml",), "curl", None),
    "crontab persistence": (
        ("process_creation/crontab_replaced.yml", "file_event/cron_job_file_written.yml"),
        "cron",
        None,
    ),
    "systemd persistence": (("file_event/systemd_unit_created.yml",), "systemd", None),
    "ld.so.preload": (("file_event/ld_so_preload_written.yml",), "/etc/ld.so.preload", None),
    "kernel module loaded": (
        ("process_creation/kernel_module_loaded.yml", "auditd/kernel_module_syscall.yml"),
        "module",
        None,
    ),
    "history cleared": (("process_creation/shell_history_cleared.yml",), "history", None),
    "logs truncated": (("process_creation/system_logs_cleared.yml",), "/var/log", None),
    "auditd stopped": (("process_creation/auditd_disabled.yml",), "auditd", None),
    "setuid binary created": (("process_creation/setuid_bit_set.yml",), "u+s", None),
    "executables run from /tmp or /dev/shm": (("process_creation/executable_in_temp_dir.yml",), "/dev/shm/", None),
    "burst of discovery commands": (
        ("process_creation/discovery_burst.yml",),
        "whoami",
        SigmaCorrelationType.VALUE_COUNT,
    ),
    "web server process connects out": (("network_connection/web_server_outbound_connection.yml",), "nginx", None),
}


@pytest.mark.parametrize("topic", TOPICS)
def test_every_topic_the_issue_lists_has_its_rules(topic: str) -> None:
    files, token, kind = TOPICS[topic]
    for name in files:
        path = PACK / name
        assert path in RULE_FILES, f"{topic}: {name} is missing"
        assert token in path.read_text(encoding="utf-8"), f"{topic}: {name} does not mention {token!r}"
        if kind is not None:
            (corr,) = correlations(load(path))
            assert corr.type is kind, f"{topic}: {name} is a {corr.type}, not {kind}"


@pytest.mark.parametrize("path", RULE_FILES, ids=FILE_IDS)
def test_rule_file_parses_without_errors(path: Path) -> None:
    collection = load(path)
    assert len(collection.rules) >= 1
    for rule in collection:
        assert rule.errors == [], f"{path}: {rule.title}: {rule.errors}"
    corrs = correlations(collection)
    assert len(corrs) <= 1, "one correlation per file, so its fixtures are unambiguous"
    if corrs:
        base = [r for r in collection if isinstance(r, SigmaRule)]
        referenced = {ref.reference for ref in corrs[0].rules or []}
        assert {r.name for r in base} == referenced, "a correlation file holds exactly the base rules it refers to"
        assert all(ref.rule is not None for ref in corrs[0].rules or []), "references resolve inside the file"
    else:
        assert len(collection.rules) == 1, "a plain rule file holds one rule"


@pytest.mark.parametrize("path", RULE_FILES, ids=FILE_IDS)
def test_rule_metadata_is_complete(path: Path) -> None:
    for rule in load(path):
        where = f"{path}: {rule.title}"
        assert rule.title and len(rule.title) <= 110, where
        assert rule.id is not None, where
        assert rule.status is not None and rule.status.name.lower() in {"test", "stable"}, where
        assert rule.description and len(rule.description) >= 30, where
        assert rule.author == "soar", where
        assert isinstance(rule.date, dt.date), where
        assert rule.level is not None and rule.level.name.lower() in LEVELS, where
        assert rule.falsepositives, where
        if isinstance(rule, SigmaRule):
            assert rule.logsource.product == "linux", where
            assert (rule.logsource.category in CATEGORIES) != (rule.logsource.service in SERVICES), where


@pytest.mark.parametrize("path", RULE_FILES, ids=FILE_IDS)
def test_attack_tags_name_real_tactics_and_techniques(path: Path) -> None:
    tactics, techniques = attack()
    for rule in load(path):
        names = [t.name for t in rule.tags if t.namespace == "attack"]
        rule_tactics = [n for n in names if not re.fullmatch(r"t\d{4}(\.\d{3})?", n)]
        rule_techniques = [n for n in names if n not in rule_tactics]
        assert rule_tactics and rule_techniques, f"{path}: {rule.title}: needs a tactic and a technique"
        assert set(rule_tactics) <= tactics, f"{path}: unknown tactic {set(rule_tactics) - tactics}"
        assert set(rule_techniques) <= techniques, f"{path}: unknown technique {set(rule_techniques) - techniques}"
        assert all(str(t) == str(t).lower() for t in rule.tags), path


def test_ids_and_names_are_unique_across_the_pack() -> None:
    ids: dict[str, Path] = {}
    names: dict[str, Path] = {}
    for path in RULE_FILES:
        for rule in load(path):
            assert str(rule.id) not in ids, f"{path}: id {rule.id} also in {ids.get(str(rule.id))}"
            ids[str(rule.id)] = path
            if rule.name:
                assert rule.name not in names, f"{path}: name {rule.name} also in {names.get(rule.name)}"
                names[rule.name] = path


def test_the_whole_pack_loads_as_one_collection() -> None:
    """What `sigma convert rules/linux` and soar's loader see: every correlation resolves."""
    docs = [p.read_text(encoding="utf-8").strip() for p in RULE_FILES]
    collection = SigmaCollection.from_yaml("\n---\n".join(docs), collect_errors=True)
    assert all(r.errors == [] for r in collection)
    assert len(collection.rules) == sum(len(load(p).rules) for p in RULE_FILES)


@pytest.mark.parametrize("path", RULE_FILES, ids=FILE_IDS)
def test_every_rule_has_fixtures_of_both_kinds(path: Path) -> None:
    fixtures = yaml.safe_load(fixtures_file(path).read_text(encoding="utf-8"))
    assert set(fixtures) == {"should_match", "should_not_match"}
    corrs = correlations(load(path))
    for kind in ("should_match", "should_not_match"):
        cases = fixtures[kind]
        assert isinstance(cases, list) and cases, f"{path}: no {kind}"
        for case in cases:
            events = case if corrs else [case]
            if corrs:
                assert isinstance(case, list) and len(case) >= 2, f"{path}: a correlation case is a list of events"
            for entry in events:
                assert isinstance(entry, dict), f"{path}: {kind} entry is not an event"
                event = unwrap(entry)
                timestamp(event)  # ISO 8601
                assert event["@timestamp"].endswith("Z")
                if documented(entry):  # a real document keeps its own ecs.version and host fields
                    assert all(entry["provenance"].get(k) for k in PROVENANCE_KEYS), f"{path}: provenance incomplete"
                    assert event["host"].get("name") or event["host"].get("hostname")
                else:
                    assert event["ecs"]["version"] == "8.11.0"
                    assert event["host"]["name"]
                assert event["event"]["kind"] == "event"
                assert event["event"].get("dataset") or event["event"].get("module") == "auditd"


@pytest.mark.parametrize("path", RULE_FILES, ids=FILE_IDS)
def test_each_should_not_match_is_a_near_miss_of_a_should_match(path: Path) -> None:
    fixtures = yaml.safe_load(fixtures_file(path).read_text(encoding="utf-8"))
    is_corr = bool(correlations(load(path)))
    hits = [unwrap(hit) for hit in fixtures["should_match"]]
    for i, miss in enumerate(unwrap(m) for m in fixtures["should_not_match"]):
        if is_corr:
            distances = [scenario_distance(miss, hit) for hit in hits]
        else:
            distances = [changed_fields(miss, hit) for hit in hits]
        nearest = min(distances)
        assert 1 <= nearest <= MAX_CHANGED_FIELDS, f"{path}: should_not_match[{i}] differs in {nearest} fields"


@pytest.mark.parametrize("path", [p for p in RULE_FILES if correlations(load(p))], ids=lambda p: p.name)
def test_correlation_fixtures_fit_the_window_and_carry_the_group(path: Path) -> None:
    (corr,) = correlations(load(path))
    fixtures = yaml.safe_load(fixtures_file(path).read_text(encoding="utf-8"))
    for scenario in unwrap(fixtures["should_match"]):
        times = sorted(timestamp(e) for e in scenario)
        assert times[-1] - times[0] <= dt.timedelta(seconds=corr.timespan.seconds), path
        for event in scenario:
            flat = flatten(event)
            for field in corr.group_by or []:
                assert flat.get(field), f"{path}: group-by field {field} missing in a fixture event"
            if corr.type is SigmaCorrelationType.VALUE_COUNT:
                assert flat.get(corr.condition.fieldref), f"{path}: value_count field missing"


SCENARIO = REPO / "soar" / "data" / "scenarios" / "intrusion.jsonl"
EXPECTED = SCENARIO.with_name("intrusion.expected.json")


def test_demo_scenario_is_a_believable_ecs_timeline() -> None:
    lines = SCENARIO.read_text(encoding="utf-8").splitlines()
    events = [json.loads(line) for line in lines]
    assert 300 <= len(events) <= 2000
    times = [timestamp(e) for e in events]
    assert times == sorted(times), "events are in time order"
    assert dt.timedelta(minutes=30) <= times[-1] - times[0] <= dt.timedelta(minutes=45)
    assert len({e["host"]["name"] for e in events}) >= 3
    datasets = {e["event"].get("dataset") or e["event"]["module"] for e in events}
    assert {"system.auth", "endpoint.events.process", "endpoint.events.file", "auditd"} <= datasets
    for event in events:
        assert event["ecs"]["version"] == "8.11.0" and event["event"]["kind"] == "event"


def test_demo_scenario_expectations_name_rules_of_the_pack() -> None:
    expected = json.loads(EXPECTED.read_text(encoding="utf-8"))
    n_events = len(SCENARIO.read_text(encoding="utf-8").splitlines())
    pack = {str(rule.id): (path, rule) for path in RULE_FILES for rule in load(path)}
    assert len(expected["alerts"]) >= 20
    for alert in expected["alerts"]:
        path, rule = pack[alert["id"]]
        assert str(path.relative_to(REPO)) == alert["path"] and rule.title == alert["title"]
        if alert["kind"] == "correlation":
            assert isinstance(rule, SigmaCorrelationRule) and alert["groups"]
        else:
            assert alert["events"] and all(0 <= i < n_events for i in alert["events"])


def test_demo_scenario_is_what_its_builder_writes(tmp_path: Path) -> None:
    """The JSONL is generated; editing it by hand would be lost at the next rebuild."""
    out = tmp_path / "intrusion.jsonl"
    builder = REPO / "scripts" / "build_intrusion_scenario.py"  # the package ships data only
    subprocess.run([sys.executable, str(builder), str(out)], check=True, capture_output=True, timeout=60)
    assert out.read_bytes() == SCENARIO.read_bytes()
