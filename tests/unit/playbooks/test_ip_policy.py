"""Attacker-controlled addresses through the real playbook path (issue #15): the run records the refusal.

An alert's ``source.ip`` is whatever the attacker put in the event: a protected network, the whole
address space, a range, junk. The policy judges what it covers, the step is ``refused`` with the
reason (audited as ``policy.refused``), a wide block waits for a person, a narrow one runs.
"""

from __future__ import annotations

from typing import Any

import pytest

from soar.config import Settings
from soar.playbooks import dispatch, engine
from soar.playbooks.approvals import decide
from soar.playbooks.records import RUNS
from soar.playbooks.runtime import Runtime
from tests.playbook_kit import Content, alert
from tests.playbook_kit.testkit import calls

BLOCK = """\
name: block
trigger: {rules: [rule-contain]}
steps:
  - id: block
    uses: testkit.block
    with: {ip: "{{ alert.source.ip }}"}
    on_failure: continue
"""


def _run_for(settings: Settings, content: Content, ip: str) -> tuple[Runtime, dict[str, Any]]:
    content.playbook("block", BLOCK)
    rt = dispatch.runtime_for(settings)
    doc = alert(ip=ip)
    rt.store.create(engine.ALERTS, doc["id"], doc)
    started = engine.handle_alert(rt, doc["id"])
    assert len(started) == 1
    dispatch.kick(settings, started[0], runtime=rt)
    rec = rt.store.get(RUNS, started[0])
    assert rec is not None
    return rt, rec.doc


@pytest.mark.parametrize(
    ("ip", "why"),
    [
        ("10.0.9.0/24", "is protected (overlaps 10.0.9.0/24)"),  # the protected network itself
        ("10.0.0.0/8", "is protected (overlaps 10.0.9.0/24)"),
        ("0.0.0.0/1", "is protected (overlaps 10.0.9.0/24)"),
        ("10.0.9.1-10.0.9.9", "is protected (overlaps 10.0.9.0/24)"),
        ("::ffff:10.0.9.7", "is protected (in 10.0.9.0/24)"),
        ("0.0.0.0/0", "covers every address (0.0.0.0/0): never blocked"),
        ("::/0", "covers every address (::/0): never blocked"),
        ("203.0.113.7; rm -rf /", "ip '203.0.113.7; rm -rf /' is not an IP address, CIDR or range"),
    ],
)
def test_attacker_addresses_are_refused_and_recorded(
    content: Content, pb_settings: Settings, ip: str, why: str
) -> None:
    rt, run = _run_for(pb_settings, content, ip)
    inst = run["steps"]["block"]["instances"][0]
    assert inst["status"] == "refused" and why in inst["error"], inst
    assert inst["decision"]["outcome"] == "refuse"
    assert not [c for c in calls(content.state) if c["action"] == "testkit.block"]
    refusals = [r.doc for r in rt.store.find("audit", {"action": "policy.refused"}, limit=10)]
    assert len(refusals) == 1 and any(why in r for r in refusals[0]["details"]["reasons"])


def test_narrow_block_runs(content: Content, pb_settings: Settings) -> None:
    _, run = _run_for(pb_settings, content, "203.0.113.0/24")
    inst = run["steps"]["block"]["instances"][0]
    assert run["status"] == "succeeded" and inst["decision"]["outcome"] == "allow", inst
    assert [c["ip"] for c in calls(content.state) if c["action"] == "testkit.block"] == ["203.0.113.0/24"]


def test_wide_block_waits_for_a_person(content: Content, pb_settings: Settings) -> None:
    rt, run = _run_for(pb_settings, content, "198.51.0.0/16")
    inst = run["steps"]["block"]["instances"][0]
    assert run["status"] == "waiting_approval", run
    assert inst["decision"]["outcome"] == "approve" and "wider than a /24" in " ".join(inst["decision"]["reasons"])
    assert calls(content.state) == []
    out = decide(
        pb_settings, rt.store, run["id"], "block", approver="bob", role="approver", decision="approve", via="cli"
    )
    assert out.status == "approved"
    rec = rt.store.get(RUNS, run["id"])
    assert rec is not None and rec.doc["status"] == "succeeded", rec.doc.get("error")
    assert [c["ip"] for c in calls(content.state) if c["action"] == "testkit.block"] == ["198.51.0.0/16"]
