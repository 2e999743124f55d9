"""A team's own integration, in its content root, with its own secret (issue #16 item 3).

It is discovered and validated like a built-in one; it runs with the keys it declared in ``ctx.secrets`` and
with settings that hold none of soar's secrets; a missing secret refuses the step naming the variable; the
secret never reaches the run record.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.conftest import REPO_ROOT, env_without_soar
from tests.integration.playbooks.test_cli import _alert_file, soar
from tests.playbook_kit import CLI_TOKENS, Content, content_env

TICKETING = '''
"""A ticketing integration a team writes for itself."""

import hashlib

from soar.actions import ActionContext, ActionResult, action


@action("ticketing.open_case", impact="notify", idempotent=True, secrets=("token",))
def open_case(ctx: ActionContext, title: str) -> ActionResult:
    """Open a case; echoes what the action could see, to prove what it was given."""
    token = ctx.secrets["token"]
    try:
        ctx.secrets["other"]
        undeclared = "visible"
    except KeyError as exc:
        undeclared = str(exc)
    return ActionResult(
        ok=True,
        output={
            "title": title,
            "digest": hashlib.sha256(token.encode()).hexdigest(),
            "echo": f"sent with {token}",
            "declared": sorted(ctx.secrets),
            "undeclared": undeclared,
            "settings_integration": {k: sorted(v) for k, v in ctx.settings.integration.items()},
            "redis_url": ctx.settings.redis_url,
            "audit_key_set": ctx.settings.audit_hmac_key is not None,
            "repr": repr(ctx.secrets),
        },
    )
'''

PLAYBOOK = """\
name: ticket
trigger: {rules: [rule-ticket]}
steps:
  - id: case
    uses: ticketing.open_case
    with: {title: "{{ alert.rule.title }} on {{ alert.host.name }}"}
"""

TOKEN = "tick-et-token-9f8e7d6c5b4a"


def _content(content: Content) -> None:
    (content.root / "integrations" / "ticketing.py").write_text(textwrap.dedent(TICKETING), encoding="utf-8")
    content.playbook("ticket", PLAYBOOK)


def test_an_out_of_tree_integration_runs_with_only_its_declared_secret(content: Content, tmp_path: Path) -> None:
    _content(content)
    assert soar(content, "playbooks", "validate").returncode == 0
    env_token = {"SOAR_INTEGRATION__TICKETING__TOKEN": TOKEN, "SOAR_INTEGRATION__OTHER__KEY": "other-secret-1234567"}
    out = _run(content, tmp_path, env_token, rule_id="rule-ticket")
    assert out.returncode == 0, out.stderr
    run = json.loads(out.stdout)
    assert run["status"] == "succeeded", run
    output = run["steps"]["case"]["instances"][0]["result"]["output"]
    assert output["digest"] == hashlib.sha256(TOKEN.encode()).hexdigest()
    assert output["echo"] == "sent with ********"  # the secret in an output is redacted as soar's own are
    assert output["declared"] == ["token"]
    assert "not a secret this action declared" in output["undeclared"]
    assert output["settings_integration"] == {}  # not even its own section: what it gets is ctx.secrets
    assert output["audit_key_set"] is False and output["repr"] == "Secrets(token=********)"
    assert TOKEN not in out.stdout and "other-secret-1234567" not in out.stdout  # redacted from the record
    shown = soar(content, "runs", "show", run["id"], "--json")
    assert TOKEN not in shown.stdout


def test_a_missing_declared_secret_refuses_the_step_naming_the_variable(content: Content, tmp_path: Path) -> None:
    _content(content)
    out = _run(content, tmp_path, {}, rule_id="rule-ticket")
    assert out.returncode in (0, 1), out.stderr
    run = json.loads(out.stdout)
    result = run["steps"]["case"]["instances"][0]["result"]
    assert result["ok"] is False and result["output"]["refused"] == result["error"]
    assert "ticketing.open_case: needs SOAR_INTEGRATION__TICKETING__TOKEN (not set)" in result["error"]


def _run(content: Content, tmp_path: Path, env: dict[str, str], **alert: str) -> subprocess.CompletedProcess[str]:
    """``soar playbooks run ticket`` as rita, with ``env`` added."""
    full = {**env_without_soar(), **content_env(content), "SOAR_TOKEN": CLI_TOKENS["rita"], **env}
    argv = [sys.executable, "-m", "soar", "playbooks", "run", "ticket", "--alert", str(_alert_file(tmp_path, **alert))]
    return subprocess.run(
        [*argv, "--json"], cwd=REPO_ROOT, env=full, capture_output=True, text=True, timeout=120, check=False
    )
