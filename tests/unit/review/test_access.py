"""Roles, attribute scopes and the principals file (pure: no services)."""

from __future__ import annotations

from pathlib import Path

import pytest

from soar.access import Principal, authorize, load_principals, parse_principals, token_digest
from soar.errors import ConfigError

TOKENS = """\
principals:
  - name: vera
    token: viewer-token-0123456789
    roles: [viewer]
  - name: alice
    token_sha256: {digest}
    roles: [approver]
    attributes: {{env: [prod]}}
    slack_user_id: U111
  - name: root
    token: admin-token-0123456789
    roles: admin
"""


def _principals():  # type: ignore[no-untyped-def]
    return parse_principals(TOKENS.format(digest=token_digest("alice-token-0123456789")), "tokens.yml")


def test_tokens_map_to_principals_and_plain_tokens_are_kept_for_redaction() -> None:
    p = _principals()
    alice = p.by_token("alice-token-0123456789")
    assert alice is not None and alice.name == "alice" and alice.role == "approver"
    assert p.by_token("wrong") is None
    assert p.by_slack_user("U111") is alice
    assert sorted(p.plain_tokens) == ["admin-token-0123456789", "viewer-token-0123456789"]


def test_roles_are_cumulative() -> None:
    root = Principal("root", frozenset({"admin"}))
    vera = Principal("vera", frozenset({"viewer"}))
    assert authorize(root, "approvals:decide").allowed
    assert authorize(vera, "alerts:read").allowed
    denied = authorize(vera, "approvals:decide")
    assert not denied.allowed and "needs role approver" in denied.reason
    assert not authorize(None, "alerts:read").allowed
    assert not authorize(root, "no:such").allowed


def test_attribute_scopes_refuse_other_tenants_and_unlabelled_resources() -> None:
    alice = Principal("alice", frozenset({"approver"}), {"env": ("prod",)})
    assert authorize(alice, "approvals:decide", {"env": "prod"}).allowed
    staging = authorize(alice, "approvals:decide", {"env": "staging"})
    assert not staging.allowed and "env=staging" in staging.reason
    assert not authorize(alice, "approvals:decide", {}).allowed


def test_os_user_maps_a_login_to_one_principal() -> None:
    text = "principals:\n  - {name: a, roles: [viewer], os_user: ann}\n  - {name: b, roles: [admin]}\n"
    p = parse_principals(text, "tokens.yml")
    assert p.by_os_user("ann") is p.items[0] and p.by_os_user("b") is None
    twice = "principals:\n  - {name: a, roles: [viewer], os_user: ann}\n  - {name: b, roles: [admin], os_user: ann}\n"
    with pytest.raises(ConfigError, match=r"tokens\.yml:3: principal b: os_user 'ann' is given to two principals"):
        parse_principals(twice, "tokens.yml")


def test_a_principals_file_replaced_with_the_same_mtime_is_read_again(tmp_path: Path) -> None:
    """A revoked token must stop working even when the new file keeps the old file's mtime (cp -p, touch -r)."""
    import os

    from soar.config import Settings

    path = tmp_path / "tokens.yml"
    path.write_text("principals:\n  - {name: a, roles: [admin], token: first-token-0123456789}\n")
    settings = Settings(api_tokens_file=path, state_dir=tmp_path / "state")
    assert load_principals(settings).by_token("first-token-0123456789") is not None
    stat = path.stat()
    path.write_text("principals:\n  - {name: a, roles: [admin], token: other-token-0123456789}\n")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_mtime_ns == stat.st_mtime_ns
    reloaded = load_principals(settings)
    assert reloaded.by_token("first-token-0123456789") is None
    assert reloaded.by_token("other-token-0123456789") is not None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("principals:\n  - name: a\n    roles: [root]\n", "tokens.yml:2: principal a: roles must be"),
        ("principals:\n  - name: a\n    roles: [viewer]\n    token: short\n", "tokens.yml:2: principal a: token"),
        ("principals:\n  - roles: [viewer]\n", "tokens.yml:2: a principal needs a name"),
        ("principals: [\n", "tokens.yml:2:1: not valid YAML"),
        ("- a\n", "tokens.yml:1: expected a mapping"),
        (
            "principals:\n  - {name: a, roles: [viewer]}\n  - {name: b, roles: [viewer], colour: red}\n",
            "tokens.yml:3: unknown key 'colour'",
        ),
    ],
)
def test_bad_principals_file_names_file_and_line(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_principals(text, Path("tokens.yml"))
    assert str(err.value).startswith(message)
