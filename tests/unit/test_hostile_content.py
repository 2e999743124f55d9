"""Hostile content is bounded: YAML aliases (a "billion laughs") and oversize files are refused
at their file and line before anything expands, in every kind of file soar reads.

Each refusal is timed only as a guard (well under the 5 s given): before, a 567-byte rule took
47 s and 5 GB. Not a benchmark.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from soar import _yaml
from soar.access import parse_principals
from soar.detection import load_rules
from soar.detection._fixtures import load_fixtures
from soar.errors import SoarError
from soar.hosts.inventory import load_inventory
from soar.notify.routing import parse_routes
from soar.playbooks.loader import parse_playbook
from soar.policy import load_policy
from tests.unit.playbooks.test_loader import GOOD

REPO = Path(__file__).resolve().parents[2]
RULE = REPO / "rules" / "linux" / "process_creation" / "at_job_scheduled.yml"
GUARD = 5.0  # seconds: a generous timeout guard, not a measurement

# Nine levels of nine: 9**9 (387 million) "lol"s once expanded. The first alias is on line 3 of the bomb.
BOMB = "\n".join(
    [
        'lol0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]',
        *(f"lol{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 9)),
    ]
)
BOMB_LINES = BOMB.count("\n") + 1


def _bomb_at(prefix: str, suffix: str = "") -> tuple[str, int]:
    """``prefix`` (complete lines), the bomb's lines at top level, then ``suffix``; and the first alias's line."""
    first_alias = prefix.count("\n") + 2
    return prefix + BOMB + "\n" + suffix, first_alias


def _timed(call: Callable[[], Any]) -> Any:
    start = time.perf_counter()
    try:
        return call()
    finally:
        assert time.perf_counter() - start < GUARD


def _refused(call: Callable[[], Any]) -> str:
    start = time.perf_counter()
    with pytest.raises(SoarError) as info:
        call()
    assert time.perf_counter() - start < GUARD
    return str(info.value)


def _alias_message(path: Path, line: int) -> str:
    return f"{path}:{line}:"


def test_a_billion_laughs_rule_is_refused_at_the_alias_line(tmp_path: Path) -> None:
    text, line = _bomb_at(RULE.read_text(encoding="utf-8"))
    path = tmp_path / "bomb.yml"
    path.write_text(text, encoding="utf-8")
    ruleset = _timed(lambda: load_rules([path]))
    assert not ruleset.rules
    (error,) = ruleset.errors
    assert str(error).startswith(_alias_message(path, line))
    assert "YAML alias *l0 is not allowed" in str(error)


def test_an_alias_inside_a_rules_detection_is_refused_and_the_check_says_so_in_one_line(tmp_path: Path) -> None:
    text = RULE.read_text(encoding="utf-8").replace("detection:\n", "detection:\n  shared: &x {a: b}\n  again: *x\n", 1)
    path = tmp_path / "aliased.yml"
    path.write_text(text, encoding="utf-8")
    line = text.splitlines().index("  again: *x") + 1
    soar = shutil.which("soar", path=str(Path(sys.executable).parent))
    assert soar is not None
    out = _timed(lambda: subprocess.run([soar, "rules", "check", str(tmp_path)], capture_output=True, text=True))
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    assert f"{path}:{line}:10: invalid YAML: YAML alias *x is not allowed" in out.stdout


def test_an_undefined_alias_is_named_the_same_way(tmp_path: Path) -> None:
    path = tmp_path / "undefined.yml"
    path.write_text(RULE.read_text(encoding="utf-8") + "extra: *nowhere\n", encoding="utf-8")
    (error,) = load_rules([path]).errors
    assert "YAML alias *nowhere is not allowed" in str(error)


def test_a_billion_laughs_fixtures_file_is_refused_at_the_alias_line(tmp_path: Path) -> None:
    rule = tmp_path / RULE.name
    shutil.copy(RULE, rule)
    text, line = _bomb_at("should_match: []\n")
    fixtures = tmp_path / RULE.name.replace(".yml", ".tests.yml")
    fixtures.write_text(text, encoding="utf-8")
    (loaded,) = load_rules([rule]).rules
    message = _refused(lambda: load_fixtures(loaded))
    assert message.startswith(_alias_message(fixtures, line))
    assert "YAML alias *l0 is not allowed" in message


PLAYBOOK = GOOD


def _playbook(path: Path) -> Any:
    return parse_playbook(path)


def _policy(path: Path) -> Any:
    return load_policy(path)


def _inventory(path: Path) -> Any:
    return load_inventory(path)


def _principals(path: Path) -> Any:
    return parse_principals(path.read_text(encoding="utf-8"), path)


def _config(path: Path) -> Any:
    from soar.config import _read_config_file

    return _read_config_file(path)


def _routes(path: Path) -> Any:
    return parse_routes(path.read_text(encoding="utf-8"), path, "#alerts")


@pytest.mark.parametrize(
    ("load", "prefix"),
    [
        (_playbook, PLAYBOOK),
        (_policy, "protected_hosts: [db-01]\n"),
        (_inventory, "hosts:\n  web-01: {address: 10.0.0.1}\n"),
        (_principals, "principals: []\n"),
        (_routes, "default: '#alerts'\n"),
        (_config, "log_level: INFO\n"),
    ],
    ids=["playbook", "policy", "inventory", "principals", "routes", "config"],
)
def test_a_billion_laughs_is_refused_at_the_alias_line(
    tmp_path: Path, load: Callable[[Path], Any], prefix: str
) -> None:
    text, line = _bomb_at(prefix)
    path = tmp_path / "file.yml"
    path.write_text(text, encoding="utf-8")
    message = _refused(lambda: load(path))
    assert message.startswith(_alias_message(path, line))
    assert "YAML alias *l0 is not allowed" in message


def test_playbooks_validate_refuses_an_aliased_playbook_in_one_line(tmp_path: Path) -> None:
    text, line = _bomb_at(PLAYBOOK)
    (tmp_path / "bomb.yml").write_text(text, encoding="utf-8")
    soar = shutil.which("soar", path=str(Path(sys.executable).parent))
    assert soar is not None
    out = _timed(lambda: subprocess.run([soar, "playbooks", "validate", str(tmp_path)], capture_output=True, text=True))
    assert out.returncode != 0
    assert "Traceback" not in out.stderr
    assert f"{tmp_path / 'bomb.yml'}:{line}:" in out.stdout + out.stderr


def _oversize(prefix: str) -> str:
    return prefix + "# " + "x" * _yaml.MAX_FILE_BYTES + "\n"


def test_an_oversize_rule_file_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "big.yml"
    path.write_text(_oversize(RULE.read_text(encoding="utf-8")), encoding="utf-8")
    (error,) = _timed(lambda: load_rules([path])).errors
    size = path.stat().st_size
    assert str(error) == f"{path}: cannot read rule file: {size:,} bytes, over the limit of 1 MiB for one file"


@pytest.mark.parametrize(
    ("load", "prefix"),
    [(_playbook, PLAYBOOK), (_policy, "protected_hosts: [db-01]\n"), (_inventory, "hosts: {}\n")],
    ids=["playbook", "policy", "inventory"],
)
def test_an_oversize_file_is_refused_with_its_size(tmp_path: Path, load: Callable[[Path], Any], prefix: str) -> None:
    path = tmp_path / "big.yml"
    path.write_text(_oversize(prefix), encoding="utf-8")
    message = _refused(lambda: load(path))
    assert message.startswith(f"{path}: ")
    assert "over the limit of 1 MiB for one file" in message


def test_anchors_without_aliases_and_ampersands_in_values_still_load() -> None:
    assert _yaml.load("a: &x 1\nb: 'x && y'\nc: '*not an alias*'\n") == {"a": 1, "b": "x && y", "c": "*not an alias*"}
