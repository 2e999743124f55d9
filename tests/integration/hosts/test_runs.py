"""A containment that fails on a real host, as a playbook run records it: the failure, and the host restoring itself."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from soar.config import load_settings
from soar.playbooks import dispatch, engine
from soar.playbooks.records import RUNS
from tests.integration.hosts.lab import LAB, can_connect, nft_ruleset, state_left, timers_in, wait_for
from tests.integration.playbooks.conftest import LOCK_DB, alert
from tests.workers import redis_url_for_db

pytestmark = pytest.mark.lab

PLAYBOOK = """\
name: isolate-on-alert
trigger: {rules: [rule-contain], min_level: medium}
steps:
  - id: isolate
    uses: hosts.isolate_host
    with: {host: "{{ alert.host.name }}", deadman_seconds: 8}
"""


def test_ssh_dropped_mid_apply_fails_the_run_and_the_host_restores_itself(
    tmp_path: Path, lab_inventory_path: Path
) -> None:
    # An inventory mistake: app1's real management path (the bastion, 10.77.0.2) is missing, so the rules
    # cut soar's own connection in the middle of `apply`.
    root = tmp_path / "content"
    (root / "playbooks").mkdir(parents=True)
    (root / "playbooks" / "isolate.yml").write_text(PLAYBOOK)
    data = yaml.safe_load(lab_inventory_path.read_text())
    data["defaults"]["management"] = ["10.77.0.3"]
    data["hosts"]["bastion"]["aliases"] = []
    data["defaults"]["key"] = str(LAB / "id_ed25519")
    (root / "inventory.yml").write_text(yaml.safe_dump(data))
    settings = load_settings(
        content_root=root,
        state_dir=tmp_path / "state",
        ssh_known_hosts=LAB / "known_hosts",
        ssh_connect_timeout=5.0,
        ssh_command_timeout=4.0,
        celery_eager=True,
        redis_url=redis_url_for_db(LOCK_DB),
    )
    assert settings.inventory_path == root / "inventory.yml"
    before = nft_ruleset("app1")
    rt = dispatch.runtime_for(settings)
    try:
        doc = alert(host="app1")
        rt.store.create(engine.ALERTS, doc["id"], doc)
        started = engine.handle_alert(rt, doc["id"])
        assert len(started) == 1
        dispatch.drive(rt, started[0])
        record = rt.store.get(RUNS, started[0])
        assert record is not None
        run = record.doc
    finally:
        dispatch.forget_runtimes()
    assert run["status"] == "failed", run.get("error")
    step = run["steps"]["isolate"]["instances"][0]
    assert step["status"] == "failed"
    assert "dead-man timer restores the host within 8 s" in step["error"]
    assert step["result"]["verified"] is False
    assert step["result"]["commands"][0]["note"] == "isolate apply"
    assert run["contained_targets"] == []  # a failed containment is not counted as one
    # nobody releases it: the host's own timer does
    assert wait_for(lambda: nft_ruleset("app1") == before, 15), nft_ruleset("app1")
    assert can_connect("peer", "10.77.0.13", 22)
    assert wait_for(lambda: timers_in("app1") == [], 5)
    assert not state_left("app1")
