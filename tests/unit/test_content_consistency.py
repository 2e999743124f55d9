"""The shipped content fits together: every rule a playbook names exists in the rule pack."""

from __future__ import annotations

import yaml

from soar.detection import load_rules
from soar.detection._files import rule_files
from soar.detection._soar_rules import load_soar_rules
from tests.conftest import REPO_ROOT


def test_playbook_triggers_name_shipped_rules() -> None:
    ruleset = load_rules([REPO_ROOT / "rules"])
    own = load_soar_rules(rule_files([REPO_ROOT / "rules"], soar=True), ruleset)  # soar's own rule types
    assert not own.errors
    known = {r.id for r in [*ruleset.rules, *own.rules]} | {r.name for r in ruleset.rules if r.name}
    tags = {t for r in [*ruleset.rules, *own.rules] for t in r.tags}
    for path in sorted((REPO_ROOT / "playbooks").glob("*.yml")):
        trigger = yaml.safe_load(path.read_text())["trigger"]
        for rule_id in trigger.get("rules") or []:
            assert rule_id in known, f"{path.name}: trigger names rule {rule_id}, which no shipped rule has"
        for tag in trigger.get("tags") or []:
            assert tag in tags, f"{path.name}: trigger tag {tag} is on no shipped rule"
