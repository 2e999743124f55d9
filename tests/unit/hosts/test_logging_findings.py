"""What ``hosts.check_logging`` tells a person first about a host that went silent."""

from __future__ import annotations

from soar.hosts.procedures import logging_findings


def test_a_healthy_host_has_no_finding() -> None:
    assert (
        logging_findings({"auditd": "active", "rsyslog": "running", "audit_rules": "12", "log_disk_used_pct": "40"})
        == []
    )


def test_stopped_services_no_rules_and_a_full_disk_are_named() -> None:
    broken = {"auditd": "inactive", "rsyslog": "failed", "audit_rules": "0", "log_mount": "/var"}
    broken |= {"log_disk_used_pct": "97", "log_inodes_used_pct": "20"}
    assert logging_findings(broken) == [
        "auditd is inactive",
        "rsyslog is failed",
        "no audit rules are loaded",
        "/var is 97% full (space)",
    ]
    assert logging_findings({"auditd": "absent", "rsyslog": "active", "log_inodes_used_pct": "99"}) == [
        "auditd is absent",
        "/var/log is 99% full (inodes)",
    ]
