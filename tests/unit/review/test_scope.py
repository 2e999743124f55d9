"""Scopes come from the inventory, never from what an alert says about itself (pure: no services)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from soar.access import Principal, authorize_in
from soar.config import Settings
from soar.errors import ConfigError
from soar.records import Approval, PlaybookRef, Run
from soar.scope import Scopes, scopes_for

INVENTORY = """\
hosts:
  web1: {address: 10.0.1.11, aliases: [web1.prod], labels: {env: prod, criticality: high}}
  stage1: {address: 10.0.2.11, labels: {env: staging}}
  bare1: {address: 10.0.3.11}
"""

PROD = Principal("alice", frozenset({"approver"}), {"env": ("prod",)})
STAGING = Principal("sam", frozenset({"approver"}), {"env": ("staging",)})
ROOT = Principal("root", frozenset({"admin"}))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    (tmp_path / "inventory.yml").write_text(INVENTORY)
    return Settings(content_root=tmp_path, inventory_file=Path("inventory.yml"), state_dir=tmp_path / "state")


def test_an_alerts_own_attributes_and_labels_are_never_its_scope(settings: Settings) -> None:
    """The attack: an alert for a prod host claiming env=staging must not let staging approvers act on it."""
    forged = {"host": {"name": "web1", "labels": {"env": "staging"}}, "attributes": {"env": "staging"}}
    scopes = scopes_for(settings).of_alert(forged)
    assert [(s.host, dict(s.labels)) for s in scopes] == [("web1", {"env": "prod", "criticality": "high"})]
    refused = authorize_in(STAGING, "approvals:decide", scopes)
    assert not refused.allowed and "env=prod" in refused.reason and "host web1" in refused.reason
    assert authorize_in(PROD, "approvals:decide", scopes).allowed


def test_every_host_an_alert_names_must_be_in_scope(settings: Settings) -> None:
    """host.name of a staging host with host.ip of a prod one: both scopes apply, so staging alone is refused."""
    scopes = scopes_for(settings).of_alert({"host": {"name": "stage1", "ip": ["10.0.1.11"]}})
    assert sorted(s.host or "" for s in scopes) == ["stage1", "web1"]
    assert not authorize_in(STAGING, "alerts:read", scopes).allowed
    assert not authorize_in(PROD, "alerts:read", scopes).allowed
    assert authorize_in(ROOT, "alerts:read", scopes).allowed


@pytest.mark.parametrize(
    "alert",
    [{}, {"host": {"name": "unknown-host"}}, {"host": {"name": "bare1"}}, {"host": "web1"}, None],
    ids=["no-host", "unknown", "unlabelled", "not-a-mapping", "none"],
)
def test_a_record_naming_no_labelled_host_is_closed_to_scoped_principals(
    settings: Settings, alert: dict[str, object] | None
) -> None:
    scopes = scopes_for(settings).of_alert(alert)
    assert not authorize_in(PROD, "alerts:read", scopes).allowed
    assert authorize_in(ROOT, "alerts:read", scopes).allowed


def test_a_run_is_scoped_by_its_alert_and_an_approval_also_by_the_hosts_it_acts_on(settings: Settings) -> None:
    scopes = scopes_for(settings)
    stored = {"alert": {"host": {"name": "web1.prod"}}, "attributes": {"env": "staging"}}
    assert [s.host for s in scopes.of_run(stored)] == ["web1"]  # a stored document, as listings pass it
    run = _run({"host": {"name": "web1.prod"}}, attributes={"env": "staging"})
    assert [s.host for s in scopes.of_run(run)] == ["web1"]
    approval = _approval({"host": "10.0.2.11", "reason": "isolate", "nested": [{"also": "not-a-host"}]})
    both = scopes.of_approval(run, approval)
    assert sorted(s.host or "" for s in both) == ["stage1", "web1"]
    assert not authorize_in(PROD, "approvals:decide", both).allowed
    unnamed = scopes.of_approval(_run({}), _approval({"host": "web1"}))
    assert [s.host for s in unnamed] == ["web1"]  # a named target is stricter than "no host"
    assert authorize_in(PROD, "approvals:decide", unnamed).allowed


def test_enrichment_replaces_what_the_sender_wrote_as_inventory(settings: Settings) -> None:
    forged = {"host": {"name": "stage1"}, "inventory": {"hosts": [{"host": "web1", "labels": {"env": "prod"}}]}}
    enriched = scopes_for(settings).enrich(forged)
    assert enriched["inventory"] == {"hosts": [{"host": "stage1", "labels": {"env": "staging"}}]}
    assert scopes_for(settings).enrich({"host": {"name": "nowhere"}})["inventory"] == {"hosts": []}


def test_an_exception_keeps_the_scope_stored_when_it_was_proposed() -> None:
    stored = {"scope": [{"host": "web1", "labels": {"env": "prod"}}]}
    assert not authorize_in(STAGING, "exceptions:approve", Scopes.of_exception(stored)).allowed
    assert authorize_in(
        Principal("p", frozenset({"admin"}), {"env": ("prod",)}), "exceptions:approve", Scopes.of_exception(stored)
    )
    legacy = {"field": "user.name"}  # proposed before exceptions carried a scope: closed to scoped principals
    assert not authorize_in(
        Principal("p", frozenset({"admin"}), {"env": ("prod",)}), "alerts:read", Scopes.of_exception(legacy)
    )


def test_the_inventory_is_read_again_when_its_content_changes_even_with_the_same_mtime(settings: Settings) -> None:
    path = settings.inventory_path
    assert [s.host for s in scopes_for(settings).of_alert({"host": {"name": "stage1"}})] == ["stage1"]
    stat = path.stat()
    path.write_text(INVENTORY.replace("env: staging", "env: prod-x"))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    labels = scopes_for(settings).of_alert({"host": {"name": "stage1"}})[0].labels
    assert dict(labels) == {"env": "prod-x"}


def test_no_inventory_means_every_record_is_unscoped_and_a_broken_one_fails_closed(
    settings: Settings, tmp_path: Path
) -> None:
    settings.inventory_path.unlink()
    assert not authorize_in(PROD, "alerts:read", scopes_for(settings).of_alert({"host": {"name": "web1"}})).allowed
    settings.inventory_path.write_text("hosts:\n  web1: {address: not-an-ip}\n")
    with pytest.raises(ConfigError, match="the inventory cannot be read"):
        scopes_for(settings)


TEAM = Principal("ida", frozenset({"approver"}), {"team": ("identity",)})
PROD_TEAM = Principal("pat", frozenset({"approver"}), {"env": ("prod",), "team": ("identity",)})


def test_a_rules_own_attributes_scope_its_alerts_under_the_hosts_labels(settings: Settings) -> None:
    """soar: {attributes: {team: identity}} in a rule file: its alerts are the identity team's, on top of the hosts."""
    scopes = scopes_for(settings)
    detected = scopes.enrich({"host": {"name": "web1"}}, {"team": "identity", "env": "staging"})
    assert detected["inventory"]["rule"] == {"attributes": {"team": "identity", "env": "staging"}}
    found = scopes.of_alert(detected)
    # the inventory wins a name both give: web1 stays env=prod whatever the rule says
    assert [dict(s.labels) for s in found] == [{"team": "identity", "env": "prod", "criticality": "high"}]
    assert authorize_in(PROD_TEAM, "approvals:decide", found).allowed
    assert not authorize_in(TEAM, "alerts:read", scopes.of_alert(scopes.enrich({"host": {"name": "web1"}}))).allowed
    # no inventory host: the rule's attributes are the whole scope
    hostless = scopes.of_alert(scopes.enrich({"user": {"name": "x"}}, {"team": "identity"}))
    assert authorize_in(TEAM, "alerts:read", hostless).allowed
    assert not authorize_in(PROD, "alerts:read", hostless).allowed


def test_rule_attributes_sent_with_an_alert_are_dropped_by_enrichment(settings: Settings) -> None:
    """The webhook and `playbooks run --alert FILE` enrich without rule attributes: a sender cannot claim a team."""
    scopes = scopes_for(settings)
    forged = {"host": {"name": "bare1"}, "inventory": {"rule": {"attributes": {"team": "identity"}}}}
    enriched = scopes.enrich(forged)
    assert enriched["inventory"] == {"hosts": [{"host": "bare1", "labels": {}}]}
    assert not authorize_in(TEAM, "alerts:read", scopes.of_alert(enriched)).allowed


def test_an_approval_on_the_alerts_own_host_keeps_the_rules_attributes(settings: Settings) -> None:
    """The step's target host is also one of the alert's: the rule's attributes must not be dropped there."""
    scopes = scopes_for(settings)
    alert = scopes.enrich({"host": {"name": "web1"}}, {"team": "identity"})
    found = scopes.of_approval(_run(alert), _approval({"host": "web1", "ip": "203.0.113.7"}))
    assert [dict(s.labels) for s in found] == [{"team": "identity", "env": "prod", "criticality": "high"}]
    assert authorize_in(PROD_TEAM, "approvals:decide", found).allowed
    bare = scopes.of_approval(_run(scopes.enrich({"host": {"name": "web1"}})), _approval({"host": "web1"}))
    assert not authorize_in(TEAM, "approvals:decide", bare).allowed


def _run(alert: dict[str, Any], **extra: Any) -> Run:
    """A run on ``alert`` as the engine holds it (``extra``: fields the scope must not read)."""
    return Run(
        id="run-1", playbook=PlaybookRef("contain"), alert_id="a-1", status="waiting_approval", alert=alert, extra=extra
    )


def _approval(params: dict[str, Any]) -> Approval:
    return Approval(
        id="run-1.isolate",
        run_id="run-1",
        step="isolate",
        step_id="isolate",
        status="pending",
        expires_at=0.0,
        params=params,
    )
