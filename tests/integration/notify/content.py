"""A small content root for end-to-end approval tests: a playbook whose one step needs 2 approvals.

The ``lab.contain`` action stands in for a containment host action (impact ``contain``) so the
test exercises the real playbook engine, policy and approvals without the SSH lab.
"""

from __future__ import annotations

from pathlib import Path

RULE_ID = "5b0c0d3e-0000-4000-8000-00000000a11a"

PLAYBOOK = f"""
name: approve-then-contain
description: Contain the host once two approvers agree.
trigger:
  rules: [{RULE_ID}]
steps:
  - id: contain
    uses: lab.contain
    with:
      host: "{{{{ alert.host.name }}}}"
"""

POLICY = """
protected:
  hosts: []
  accounts: []
approvals:
  - name: two-person-containment
    impact: [contain, destructive]
    approvals: 2
    roles: [approver, admin]
    timeout: 1800
"""

INTEGRATION = '''
from soar.actions import ActionContext, ActionResult, action


@action("lab.contain", impact="contain", idempotent=True, targets={"host": "host"})
def contain(ctx: ActionContext, host: str) -> ActionResult:
    """Pretend to contain a host (a test integration)."""
    return ActionResult(ok=True, output={"host": host}, verified=True, verification={"contained": host})
'''

TOKENS = """
principals:
  - name: alice
    token: alice-token-0123456789
    roles: [approver]
    slack_user_id: UALICE
  - name: bob
    token: bob-token-0123456789ab
    roles: [approver]
    slack_user_id: UBOB
  - name: carol
    token: carol-token-0123456789ab
    roles: [approver]
    attributes: {env: [prod]}
    slack_user_id: UCAROL
  - name: victor
    token: victor-token-0123456789
    roles: [viewer]
    slack_user_id: UVICTOR
"""


def write_content(root: Path) -> Path:
    (root / "playbooks").mkdir(parents=True, exist_ok=True)
    (root / "integrations").mkdir(exist_ok=True)
    (root / "playbooks" / "approve-then-contain.yml").write_text(PLAYBOOK)
    (root / "policy.yml").write_text(POLICY)
    (root / "integrations" / "lab.py").write_text(INTEGRATION)
    (root / "tokens.yml").write_text(TOKENS)
    return root
