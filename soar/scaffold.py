"""``soar init``: lay out a team's own detection-as-code repository.

It copies the shipped content (rules with their fixtures, playbooks, responders,
policy) as a starting point and writes an example inventory, a config file and a
CI workflow that runs ``soar rules check`` and ``soar rules test``. It never
overwrites: an existing non-empty target is refused before anything is written.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from soar.errors import InputError

SHIPPED_ROOT = Path(__file__).resolve().parent.parent
CONTENT_DIRS = ("rules", "playbooks", "responders")
CONTENT_FILES = ("policy.yml",)

INVENTORY = """\
# Hosts soar may act on (see soar/hosts/inventory.py). An alert field resolves to exactly
# one host by name, alias or address, or the action is refused before anything connects.
# Host keys are pinned: in known_hosts (SOAR_SSH_KNOWN_HOSTS) or per host as host_key.
defaults:
  user: soar-responder
  key: keys/soar_responder_ed25519
  sudo: true
  bastion: bastion-01
  management: [192.0.2.5]              # the controller: isolation always keeps it reachable
  log_endpoints: ["192.0.2.9:9200"]    # log shipping stays open while a host is isolated
  protected_accounts: [soar-responder]
hosts:
  bastion-01:
    address: 192.0.2.10
    bastion: null
    labels: {env: prod, role: bastion, criticality: high, owner: secops}
  web-01:
    address: 192.0.2.21
    aliases: [web-01.prod.internal]
    labels: {env: prod, role: web, criticality: high, owner: team-web}
  db-01:
    address: 192.0.2.22
    labels: {env: prod, role: database, criticality: critical, owner: team-data}
  dev-01:
    address: 192.0.2.31
    bastion: null
    labels: {env: dev, role: web, criticality: low, owner: team-web}
"""

CONFIG = """\
# soar settings for this repository; SOAR_* environment variables override them.
# Secrets (tokens, passwords, keys) belong in the environment, never in this file.
content_root: .
state_dir: .soar
store: sqlite
events_index: "logs-*"
inventory_file: inventory.yml
policy_file: policy.yml
api_tokens_file: principals.yml
"""

PRINCIPALS = """\
# Who may see and decide what (docs/access-api.md). The command line acts as the principal whose
# os_user is your login (or whose token is in SOAR_TOKEN); the API as the bearer token's principal.
# Tokens belong here only as token_sha256 (sha256 of the token), never in plain text in git.
principals:
  - name: {login}
    roles: [admin]
    os_user: {login}
"""

CI_WORKFLOW = """\
# Runs on every change to the detection content: rules must load, validate and pass their own tests.
name: detections
on: [push, pull_request]
jobs:
  rules:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-python@v5
        with: {python-version: "3.11"}
      - run: pip install soar
      - run: soar rules check --strict rules/
      - run: soar rules test rules/ --engine embedded
      - run: soar playbooks validate playbooks/
"""

README = """\
# Detection content

Rules (`rules/`, each with `<rule>.tests.yml` fixtures), playbooks (`playbooks/`),
responder scripts (`responders/`), the safety policy (`policy.yml`) and the inventory
(`inventory.yml`) of this team, and who may decide what (`principals.yml`), run by soar.

    soar rules check rules/          # validate every rule, file:line:col for each problem
    soar rules test rules/           # run every rule against its own fixture events
    soar playbooks plan playbooks/ssh_bruteforce.yml --alert alert.json   # dry run
"""


def _login() -> str:
    """Who runs ``soar init`` becomes the first admin (mapped by login, like initdb's first superuser)."""
    from soar.cli._identity import os_login

    login = os_login()
    return login if login.replace("-", "").replace("_", "").replace(".", "").isalnum() else "admin"


def scaffold(target: Path, source: Path = SHIPPED_ROOT) -> list[Path]:
    """Create the repository at ``target``; return the files written."""
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise InputError(f"{target}: already exists and is not empty; choose a new folder")
    missing = [name for name in CONTENT_DIRS if not (source / name).is_dir()]
    if missing:
        raise InputError(f"{source}: shipped content not found ({', '.join(missing)}); is soar installed from source?")
    # Build in a temporary sibling and rename at the end, so a failure leaves nothing half-written.
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        for name in CONTENT_DIRS:
            shutil.copytree(source / name, staging / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        for name in CONTENT_FILES:
            if (source / name).is_file():
                shutil.copy2(source / name, staging / name)
        (staging / "inventory.yml").write_text(INVENTORY, encoding="utf-8")
        (staging / "soar.yml").write_text(CONFIG, encoding="utf-8")
        (staging / "principals.yml").write_text(PRINCIPALS.format(login=_login()), encoding="utf-8")
        (staging / "README.md").write_text(README, encoding="utf-8")
        (staging / ".gitignore").write_text(".soar/\n", encoding="utf-8")
        workflow = staging / ".github" / "workflows" / "detections.yml"
        workflow.parent.mkdir(parents=True)
        workflow.write_text(CI_WORKFLOW, encoding="utf-8")
        if target.exists():
            target.rmdir()
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return sorted(p for p in target.rglob("*") if p.is_file())
