"""A small content root for the API tests: a playbook that triages, waits for approval, contains, releases.

The actions are a real integration run by the real engine (they act on nothing outside the
test: the "host" is a name), so the engine, approvals, records and audit are all exercised.
"""

from __future__ import annotations

from pathlib import Path

INTEGRATION = '''
from soar.actions import ActionContext, ActionResult, action


@action("labtest.contain", impact="contain", revert="labtest.release", idempotent=True, secrets=("password",))
def contain(ctx: ActionContext, host: str) -> ActionResult:
    """Pretend to isolate a host; prints its own secret to prove the runner redacts it (soar's own, such as the
    Elasticsearch password, a content root's integration never gets)."""
    secret = ctx.secrets["password"]
    if ctx.settings.elasticsearch_password is not None:
        return ActionResult.failure("the Elasticsearch password reached a content root's integration")
    return ActionResult(
        ok=True,
        verified=True,
        verification={"probe": "blocked"},
        stdout=f"isolated {host} using password {secret}",
        evidence=[{"name": "triage.tar", "sha256": "ab" * 32, "path": "/tmp/none", "size": 10}],
    )


@action("labtest.fail", impact="read", idempotent=True)
def fail(ctx: ActionContext, host: str) -> ActionResult:
    """A check that always fails, to make the engine roll back."""
    return ActionResult.failure(f"{host}: simulated failure")


@action("labtest.release", impact="read", idempotent=True)
def release(ctx: ActionContext, host: str) -> ActionResult:
    """Pretend to release the host."""
    return ActionResult(ok=True, verified=True, stdout=f"released {host}")
'''

PLAYBOOK = """
name: lab-contain
description: Triage, contain after approval, release.
trigger:
  rules: [lab-rule-1]
steps:
  - id: triage
    uses: core.log
    with: {message: "triage {{ alert.host.name }}"}
  - id: isolate
    uses: labtest.contain
    with: {host: "{{ alert.host.name }}"}
    requires_approval: {approvals: 1, roles: [approver, admin]}
  - id: release
    uses: labtest.release
    with: {host: "{{ alert.host.name }}"}
"""

ROLLBACK_PLAYBOOK = """
name: lab-rollback
description: Contain, then a failing check makes the engine revert the containment.
trigger:
  rules: [lab-rule-2]
steps:
  - id: isolate
    uses: labtest.contain
    with: {host: "{{ alert.host.name }}"}
  - id: check
    uses: labtest.fail
    with: {host: "{{ alert.host.name }}"}
    on_failure: rollback
"""

TOKENS = {
    "viewer": "viewer-token-aaaaaaaaaaaa",
    "responder": "responder-token-bbbbbbbbbb",
    "approver": "approver-token-cccccccccc",
    "staging_approver": "staging-approver-dddddddd",
    "admin": "admin-token-eeeeeeeeeeeeee",
    "prod_admin": "prod-admin-token-ffffffffff",
    "staging_admin": "staging-admin-token-gggggggg",
}

PRINCIPALS = f"""
principals:
  - {{name: vera, token: {TOKENS["viewer"]}, roles: [viewer]}}
  - {{name: rory, token: {TOKENS["responder"]}, roles: [responder], attributes: {{env: [prod]}}}}
  - {{name: alice, token: {TOKENS["approver"]}, roles: [approver], attributes: {{env: [prod]}}, slack_user_id: U1}}
  - {{name: sam, token: {TOKENS["staging_approver"]}, roles: [approver], attributes: {{env: [staging]}}}}
  - {{name: root, token: {TOKENS["admin"]}, roles: [admin]}}
  - {{name: paula, token: {TOKENS["prod_admin"]}, roles: [admin], attributes: {{env: [prod]}}}}
  - {{name: stella, token: {TOKENS["staging_admin"]}, roles: [admin], attributes: {{env: [staging]}}}}
"""


# who may see and decide what is read from here (the hosts' labels), never from the alert
INVENTORY = """
hosts:
  web1: {address: 192.0.2.11, labels: {env: prod, criticality: high}}
  web2: {address: 192.0.2.12, labels: {env: prod}}
  stage1: {address: 192.0.2.21, labels: {env: staging}}
"""


def write_content(root: Path) -> Path:
    (root / "integrations").mkdir(parents=True)
    (root / "integrations" / "labtest.py").write_text(INTEGRATION)
    (root / "playbooks").mkdir()
    (root / "playbooks" / "lab-contain.yml").write_text(PLAYBOOK)
    (root / "playbooks" / "lab-rollback.yml").write_text(ROLLBACK_PLAYBOOK)
    (root / "inventory.yml").write_text(INVENTORY)
    tokens = root / "tokens.yml"
    tokens.write_text(PRINCIPALS)
    return tokens


def auth(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[role]}"}
