"""Responders: exact argv, the result protocol, and host-side refusals run in a throwaway network namespace."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pytest

from soar.config import Settings
from soar.hosts.inventory import Host
from soar.hosts.responders import BUILTIN_RESPONDERS, load_responder, parse_fields, wrap
from tests.services import IN_CI

RESPONDERS = ["isolate", "block_ip", "lock_account", "kill_sessions", "kill_process", "triage", "probe"]


def test_argv_is_sudo_then_sh_reading_the_script_from_stdin(settings: Settings) -> None:
    responder = load_responder(settings, "block_ip")
    planned = responder.command(Host("web1", "10.0.0.1", sudo=True), "apply", ["10.9.9.9", "--expire", "60"])
    assert planned.argv == ("sudo", "-n", "--", "sh", "-s", "--", "apply", "10.9.9.9", "--expire", "60")
    assert planned.stdin_script == "responders/block_ip.sh"
    assert responder.command(Host("h", "10.0.0.1"), "verify", ["x"]).argv == ("sh", "-s", "--", "verify", "x")
    # what goes over the wire is the argv quoted for the remote shell: a hostile value stays one word
    assert shlex.split(shlex.join(("sh", "-s", "--", "apply", "a;b $(c)"))) == ["sh", "-s", "--", "apply", "a;b $(c)"]


def test_the_script_is_the_library_then_the_responder_in_one_function(settings: Settings) -> None:
    responder = load_responder(settings, "isolate")
    lib = (BUILTIN_RESPONDERS / "_lib.sh").read_text()
    body = (BUILTIN_RESPONDERS / "isolate.sh").read_text()
    assert responder.script == wrap(lib, body)
    assert responder.script.startswith("soar_responder() {\n" + lib)


def test_a_script_cut_short_in_transit_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    script = wrap("set -eu\n", f"touch {marker}\necho done\nexit 0\n")
    whole = subprocess.run(["sh", "-s", "--", "x"], input=script, text=True, capture_output=True)
    assert whole.returncode == 0 and marker.exists()
    marker.unlink()
    for cut in (len(script) // 2, len(script) - 12):
        partial = subprocess.run(["sh", "-s"], input=script[:cut], text=True, capture_output=True)
        assert partial.returncode != 0
        assert not marker.exists(), f"a script cut at {cut} ran a command"


def test_a_content_root_responder_overrides_the_builtin(tmp_path: Path) -> None:
    from soar.config import load_settings

    (tmp_path / "responders").mkdir()
    (tmp_path / "responders" / "_lib.sh").write_text("# lib\n")
    (tmp_path / "responders" / "probe.sh").write_text("say reachable maybe\n")
    responder = load_responder(load_settings(content_root=tmp_path), "probe")
    assert responder.script == wrap("# lib\n", "say reachable maybe\n")


def test_parse_fields_reads_only_protocol_lines() -> None:
    out = "noise\nsoar: isolated=yes\nsoar: error=a=b\nsoar:bad\nsoar: isolated=no\n"
    assert parse_fields(out) == {"isolated": "no", "error": "a=b"}


@pytest.mark.parametrize("name", RESPONDERS)
def test_every_responder_is_posix_sh(name: str) -> None:
    script = wrap((BUILTIN_RESPONDERS / "_lib.sh").read_text(), (BUILTIN_RESPONDERS / f"{name}.sh").read_text())
    assert subprocess.run(["sh", "-n"], input=script, text=True, capture_output=True).returncode == 0
    assert "eval" not in script.split()


def run_isolated(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run a responder locally in a fresh, empty network namespace, so a bug could touch nothing real."""
    script = wrap((BUILTIN_RESPONDERS / "_lib.sh").read_text(), (BUILTIN_RESPONDERS / f"{name}.sh").read_text())
    return subprocess.run(
        ["unshare", "--net", "sh", "-s", "--", *args], input=script, text=True, capture_output=True, timeout=10
    )


# a developer without root skips these; under CI=true (root) they always run and fail if they cannot
needs_root = pytest.mark.skipif(os.geteuid() != 0 and not IN_CI, reason="unshare --net needs root")


@needs_root
@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("isolate", ["apply", "--mgmt", "10.0.0.1;id"]),
        ("isolate", ["apply", "--mgmt", "10.0.0.1", "--log", "10.0.0.9"]),
        ("isolate", ["apply", "--mgmt", "10.0.0.1", "--deadman", "$(id)"]),
        ("isolate", ["apply"]),  # no management address: refused, never cut the controller off
        ("block_ip", ["apply", "10.0.0.256"]),
        ("block_ip", ["apply", "10.0.0.0/40"]),
        ("block_ip", ["apply", "10.0.0.1", "--expire", "1h"]),
        ("lock_account", ["apply", "Bob;id"]),
        ("lock_account", ["apply", "nosuchuser-soar"]),
        ("kill_sessions", ["apply", "$(id)"]),
        ("kill_process", ["apply", "1", "/sbin/init"]),
        ("kill_process", ["apply", "123", "../x"]),
        ("triage", ["collect", "--hash", "/etc/../etc/shadow"]),
        ("probe", ["check", "10.0.0.1", "99999", "1"]),
    ],
)
def test_the_host_side_refuses_bad_arguments_itself(name: str, args: list[str]) -> None:
    result = run_isolated(name, *args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "soar: error=" in result.stdout


@needs_root
def test_the_host_side_refuses_uid_0() -> None:
    result = run_isolated("lock_account", "apply", "root")
    assert result.returncode == 4 and "uid 0" in result.stdout


def run_without_nft(tmp_path: Path, name: str, body: str) -> subprocess.CompletedProcess[str]:
    """In a private mount and network namespace, hide nft from /usr/sbin and run ``body`` (sh -eu) there,
    with the responder ``name`` at ``tmp_path/<name>.sh``."""
    real, fake = tmp_path / "real", tmp_path / "fake"
    real.mkdir()
    fake.mkdir()
    script = wrap((BUILTIN_RESPONDERS / "_lib.sh").read_text(), (BUILTIN_RESPONDERS / f"{name}.sh").read_text())
    (tmp_path / f"{name}.sh").write_text(script)
    runner = f"""
set -eu
mount --bind /usr/sbin {real}
for f in {real}/*; do n=${{f##*/}}; [ "$n" = nft ] || ln -s "{real}/$n" "{fake}/$n"; done
mount --bind {fake} /usr/sbin
if command -v nft >/dev/null; then echo "nft still visible"; exit 9; fi
ip link set lo up
{body}
"""
    return subprocess.run(
        ["unshare", "--mount", "--net", "sh", "-c", runner], capture_output=True, text=True, timeout=60
    )


@needs_root
def test_isolation_falls_back_to_iptables_when_nft_is_absent(tmp_path: Path) -> None:
    body = f"""
sh {tmp_path}/isolate.sh apply --mgmt 10.0.0.2 --log 10.0.0.9:9200 --deadman 600 > {tmp_path}/apply.out
sh {tmp_path}/isolate.sh verify --mgmt 10.0.0.2 > {tmp_path}/verify.out
iptables -S > {tmp_path}/rules.txt
ip6tables -S > {tmp_path}/rules6.txt
sh {tmp_path}/isolate.sh revert > {tmp_path}/revert.out
iptables -S > {tmp_path}/after.txt
ip6tables -S > {tmp_path}/after6.txt
sh {tmp_path}/isolate.sh verify > {tmp_path}/verify2.out || echo "exit=$?" >> {tmp_path}/verify2.out
"""
    done = run_without_nft(tmp_path, "isolate", body)
    assert done.returncode == 0, done.stdout + done.stderr
    assert parse_fields((tmp_path / "apply.out").read_text())["backend"] == "iptables"
    verified = parse_fields((tmp_path / "verify.out").read_text())
    assert verified.pop("boot_id") == Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    assert verified == {
        "isolated": "yes",
        "backend": "iptables",
        "deadman": "armed",
        "persisted": "no",
    }
    rules = (tmp_path / "rules.txt").read_text()
    assert "-A INPUT -j SOAR-ISO-IN" in rules
    assert "-A SOAR-ISO-IN -s 10.0.0.2/32 -j ACCEPT" in rules
    assert "-A SOAR-ISO-OUT -d 10.0.0.9/32 -p tcp -m tcp --dport 9200 -j ACCEPT" in rules
    assert "-A SOAR-ISO-IN -j DROP" in rules
    # IPv6 is cut off too (ip6tables), with only loopback left open: the management address is IPv4
    rules6 = (tmp_path / "rules6.txt").read_text()
    assert "-A INPUT -j SOAR-ISO-IN" in rules6 and "-A OUTPUT -j SOAR-ISO-OUT" in rules6
    assert [r for r in rules6.splitlines() if r.startswith("-A SOAR-ISO-IN")] == [
        "-A SOAR-ISO-IN -i lo -j ACCEPT",
        "-A SOAR-ISO-IN -j DROP",
    ]
    assert parse_fields((tmp_path / "revert.out").read_text()) == {"changed": "yes", "isolated": "no"}
    assert "SOAR" not in (tmp_path / "after.txt").read_text()
    assert "SOAR" not in (tmp_path / "after6.txt").read_text()
    assert "exit=3" in (tmp_path / "verify2.out").read_text()


@needs_root
def test_block_ip_falls_back_to_iptables_and_expires_by_a_host_timer(tmp_path: Path) -> None:
    """No nft: the block is iptables rules, and its expiry a detached timer that runs the address's revert."""
    body = f"""
sh {tmp_path}/block_ip.sh apply 10.0.0.7 --expire 1 > {tmp_path}/apply.out
sh {tmp_path}/block_ip.sh apply 2001:db8::/32 > {tmp_path}/apply6.out
iptables -S > {tmp_path}/rules.txt
ip6tables -S > {tmp_path}/rules6.txt
sleep 2.5
sh {tmp_path}/block_ip.sh verify 10.0.0.7 > {tmp_path}/expired.out || echo "exit=$?" >> {tmp_path}/expired.out
iptables -S > {tmp_path}/after.txt
sh {tmp_path}/block_ip.sh revert 2001:db8::/32 > {tmp_path}/revert6.out
ip6tables -S > {tmp_path}/after6.txt
"""
    done = run_without_nft(tmp_path, "block_ip", body)
    assert done.returncode == 0, done.stdout + done.stderr
    assert parse_fields((tmp_path / "apply.out").read_text())["backend"] == "iptables"
    rules = (tmp_path / "rules.txt").read_text()
    assert "-A INPUT -j SOAR-BLOCK-IN" in rules and "-A OUTPUT -j SOAR-BLOCK-OUT" in rules
    assert "-A SOAR-BLOCK-IN -s 10.0.0.7/32 -j DROP" in rules
    assert "-A SOAR-BLOCK-OUT -d 10.0.0.7/32 -j DROP" in rules
    assert "-A SOAR-BLOCK-IN -s 2001:db8::/32 -j DROP" in (tmp_path / "rules6.txt").read_text()
    assert "exit=3" in (tmp_path / "expired.out").read_text()  # expired by itself
    assert "SOAR" not in (tmp_path / "after.txt").read_text()
    assert parse_fields((tmp_path / "revert6.out").read_text()) == {"changed": "yes", "blocked": "no"}
    assert "SOAR" not in (tmp_path / "after6.txt").read_text()


@needs_root
def test_the_probe_tells_a_drop_from_a_refusal(tmp_path: Path) -> None:
    """Only silence proves a drop: a reset (nothing listening) is "refused", which no containment accepts."""
    script = wrap((BUILTIN_RESPONDERS / "_lib.sh").read_text(), (BUILTIN_RESPONDERS / "probe.sh").read_text())
    (tmp_path / "probe.sh").write_text(script)
    listen = "import socket, time; s = socket.socket(); s.bind(('127.0.0.1', 3)); s.listen(); time.sleep(30)"
    runner = f"""
set -eu
ip link set lo up
iptables -A INPUT -p tcp --dport 2 -j DROP
python3 -c "{listen}" & listener=$!
until sh {tmp_path}/probe.sh check 127.0.0.1 3 1 > {tmp_path}/open.out && grep -q =yes {tmp_path}/open.out; do
  sleep 0.1
done
sh {tmp_path}/probe.sh check 127.0.0.1 1 1 > {tmp_path}/refused.out
sh {tmp_path}/probe.sh check 127.0.0.1 2 1 > {tmp_path}/dropped.out
kill "$listener"
"""
    done = subprocess.run(["unshare", "--net", "sh", "-c", runner], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert parse_fields((tmp_path / "open.out").read_text()) == {"reachable": "yes"}
    assert parse_fields((tmp_path / "refused.out").read_text()) == {"reachable": "refused"}
    assert parse_fields((tmp_path / "dropped.out").read_text()) == {"reachable": "no"}
