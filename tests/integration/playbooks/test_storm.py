"""An alert storm of 1,000 alerts on the embedded path: caps hold, the excess waits, nothing lost, nothing twice."""

from __future__ import annotations

import time
from collections import Counter

from soar.config import Settings
from soar.playbooks import dispatch, engine
from soar.playbooks.records import RUNS
from tests.playbook_kit import Content, alert
from tests.playbook_kit.testkit import calls

STORM = 1000
CAP = 25
RULE_CAP = 15


def test_alert_storm_caps_hold_nothing_lost_nothing_twice(content: Content, pb_settings: Settings) -> None:
    content.policy(f"rate_caps: {{contain_per_hour: {CAP}, contain_per_rule_per_hour: {RULE_CAP}}}\n")
    content.playbook(
        "contain",
        """\
        name: contain
        trigger: {rules: [rule-a, rule-b]}
        steps:
          - id: contain
            uses: testkit.contain
            with: {host: "{{ alert.host.name }}"}
        """,
    )
    rt = dispatch.runtime_for(pb_settings)
    alerts = [
        alert(f"storm-{i:04d}", rule_id="rule-a" if i % 2 else "rule-b", host=f"h{i % 200}") for i in range(STORM)
    ]
    t0 = time.monotonic()
    for doc in alerts:
        rt.store.create(engine.ALERTS, doc["id"], doc)
        for run_id in engine.handle_alert(rt, doc["id"]):
            dispatch.kick(pb_settings, run_id, runtime=rt)
    elapsed = time.monotonic() - t0
    # every alert redelivered: no new run, no new action
    for doc in alerts[:200]:
        assert engine.handle_alert(rt, doc["id"]) == []
    runs = [r.doc for r in rt.store.find(RUNS, limit=10 * STORM)]
    assert len(runs) == STORM  # nothing lost
    status = Counter(r["status"] for r in runs)
    contained = calls(content.state)
    assert len(contained) == status["succeeded"] <= CAP  # the global cap holds
    per_rule = Counter(r["rule_id"] for r in runs if r["status"] == "succeeded")
    assert all(n <= RULE_CAP for n in per_rule.values()) and sum(per_rule.values()) == CAP
    assert status["waiting_approval"] == STORM - CAP  # the excess waits for a person
    assert len({(c["run"], c["step"]) for c in contained}) == len(contained)  # nothing ran twice
    assert rt.store.count("approvals", {"status": "pending"}) == STORM - CAP
    print(f"\nstorm: {STORM} alerts in {elapsed:.1f}s ({STORM / elapsed:.0f} alerts/s), {dict(status)}")
