"""known_hosts as soar reads it: the inventory pin replaces the file for its host, @revoked wins, @cert-authority
is refused by name, and every other line means what OpenSSH says it means."""

from __future__ import annotations

from pathlib import Path

import paramiko
import pytest

from soar.hosts.errors import HostKeyRejected
from soar.hosts.inventory import Host
from soar.hosts.known_hosts import KnownHostsProblem, host_matches, parse_pin, trust_for
from soar.hosts.transport import _RefuseUnpinned, host_trust, pinned_keys


def _key(kind: str) -> paramiko.PKey:
    if kind == "ecdsa":
        return paramiko.ECDSAKey.generate()
    if kind == "rsa":
        return paramiko.RSAKey.generate(1024)
    raise AssertionError(kind)


ECDSA, ECDSA_2, RSA = _key("ecdsa"), _key("ecdsa"), _key("rsa")


def line(key: paramiko.PKey) -> str:
    return f"{key.get_name()} {key.get_base64()}"


def host(**kw: object) -> Host:
    values: dict[str, object] = {"name": "web1", "address": "10.0.0.5", "user": "soar"}
    values.update(kw)
    return Host(**values)  # type: ignore[arg-type]


def write(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "known_hosts"
    path.write_text("".join(f"{text}\n" for text in lines))
    return path


@pytest.mark.parametrize(
    ("patterns", "name", "expected"),
    [
        ("10.0.0.5", "10.0.0.5", True),
        ("web1.example,10.0.0.5", "10.0.0.5", True),
        ("10.0.0.50", "10.0.0.5", False),
        ("10.0.0.*", "10.0.0.5", True),
        ("10.0.0.?", "10.0.0.5", True),
        ("10.0.0.*,!10.0.0.5", "10.0.0.5", False),  # a negated match wins
        ("!10.0.0.6", "10.0.0.5", False),  # a negation alone names nothing
        ("[10.0.0.5]:2222", "[10.0.0.5]:2222", True),
        ("[10.0.0.5]:2222", "10.0.0.5", False),
        ("WEB1.Example", "web1.example", True),
    ],
)
def test_host_patterns_as_openssh_reads_them(patterns: str, name: str, expected: bool) -> None:
    assert host_matches(patterns, name) is expected


def test_hashed_host_names_match_their_host_only() -> None:
    hashed = paramiko.HostKeys.hash_host("10.0.0.5")
    assert host_matches(hashed, "10.0.0.5")
    assert not host_matches(hashed, "10.0.0.6")
    assert not host_matches("|1|bm90YmFzZTY0|!!", "10.0.0.5")  # a damaged hash names nothing


def test_known_hosts_keys_of_the_host_are_accepted_comments_and_other_hosts_ignored(tmp_path: Path) -> None:
    path = write(tmp_path, "# pinned by ops", "", f"10.0.0.6 {line(ECDSA_2)}", f"10.0.0.5 {line(ECDSA)}")
    trust = trust_for("10.0.0.5", path, path.read_text(), None)
    assert [k.blob for k in trust.accepted] == [ECDSA.asbytes()]
    assert trust.accepted[0].where == f"{path}:4"


def test_the_inventory_pin_replaces_every_known_hosts_key_of_its_host(tmp_path: Path) -> None:
    path = write(tmp_path, f"10.0.0.5 {line(RSA)}", f"10.0.0.5 {line(ECDSA)}")
    trust = host_trust(host(host_key=line(ECDSA_2)), path)
    assert [k.blob for k in trust.accepted] == [ECDSA_2.asbytes()]
    keys = pinned_keys(host(), trust)
    assert list(keys["10.0.0.5"].keys()) == ["ecdsa-sha2-nistp256"]  # no ssh-rsa from known_hosts
    assert keys["10.0.0.5"]["ecdsa-sha2-nistp256"] == ECDSA_2


def test_a_revoked_key_is_never_accepted_even_when_another_line_lists_it(tmp_path: Path) -> None:
    path = write(tmp_path, f"10.0.0.5 {line(ECDSA)}", f"10.0.0.5 {line(RSA)}", f"@revoked * {line(ECDSA)}")
    trust = host_trust(host(), path)
    assert trust.revoked_entry(ECDSA.asbytes()) is not None
    assert list(pinned_keys(host(), trust)["10.0.0.5"].keys()) == ["ssh-rsa"]
    with pytest.raises(HostKeyRejected) as info:  # the server presents it: the refusal says revoked, and where
        _RefuseUnpinned(host(), trust).missing_host_key(paramiko.SSHClient(), "10.0.0.5", ECDSA)
    assert str(info.value) == (
        f"host web1: presented host key {ECDSA.fingerprint} which is marked @revoked in {path}:3; refusing"
    )


def test_a_revoked_key_is_refused_for_every_host_and_as_an_inventory_pin(tmp_path: Path) -> None:
    path = write(tmp_path, f"@revoked 10.9.9.9 {line(ECDSA)}")
    with pytest.raises(HostKeyRejected) as info:
        host_trust(host(host_key=line(ECDSA)), path)
    assert str(info.value) == f"host web1: the inventory's host_key is marked @revoked in {path}:1; refusing"


def test_an_unpinned_key_is_refused_naming_the_host(tmp_path: Path) -> None:
    trust = host_trust(host(port=2222), write(tmp_path, f"10.0.0.5 {line(ECDSA)}"))
    assert trust.accepted == ()  # the port-22 line does not pin port 2222
    with pytest.raises(HostKeyRejected, match=r"^host web1: no pinned host key for \[10\.0\.0\.5\]:2222; refusing$"):
        _RefuseUnpinned(host(port=2222), trust).missing_host_key(paramiko.SSHClient(), "x", ECDSA)


def test_cert_authority_lines_are_refused_by_name_for_the_hosts_they_match(tmp_path: Path) -> None:
    path = write(tmp_path, f"10.0.0.5 {line(ECDSA)}", f"@cert-authority 10.0.0.* {line(RSA)}")
    with pytest.raises(HostKeyRejected) as info:
        host_trust(host(), path)
    assert str(info.value) == (
        f"host web1: {path}:2: @cert-authority is not supported for 10.0.0.5: soar accepts pinned host keys only;"
        " list the host's own key, or set host_key in the inventory"
    )
    assert host_trust(host(address="10.1.0.5"), write(tmp_path, f"@cert-authority 10.0.0.* {line(RSA)}")).accepted == ()
    pinned = host_trust(host(host_key=line(ECDSA)), write(tmp_path, f"@cert-authority 10.0.0.* {line(RSA)}"))
    assert [k.blob for k in pinned.accepted] == [ECDSA.asbytes()]  # the pin replaces the file for its host


def test_unknown_markers_and_undecodable_keys_of_the_host_are_named(tmp_path: Path) -> None:
    path = write(tmp_path, f"@bogus 10.0.0.5 {line(ECDSA)}")
    with pytest.raises(KnownHostsProblem, match=rf"^{path}:1: unknown marker '@bogus' for 10\.0\.0\.5$"):
        trust_for("10.0.0.5", path, path.read_text(), None)
    path = write(tmp_path, "10.0.0.5 ssh-ed25519 not*base64", f"10.0.0.6 {line(ECDSA)}")
    with pytest.raises(KnownHostsProblem, match=rf"^{path}:1: the key is not base64$"):
        trust_for("10.0.0.5", path, path.read_text(), None)
    assert len(trust_for("10.0.0.6", path, path.read_text(), None).accepted) == 1  # another host's line is not read


def test_an_unreadable_file_and_a_bad_pin_are_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(HostKeyRejected, match=r"^host web1: cannot read known_hosts .*absent: No such file"):
        host_trust(host(), tmp_path / "absent")
    for bad in ("ssh-ed25519", "ssh-ed25519 ***", "ssh-nope AAAA", "ssh-ed25519 AAAA"):
        with pytest.raises(HostKeyRejected, match=r"^host web1: the inventory's host_key is not '<type> <base64>'$"):
            host_trust(host(host_key=bad), None)
    with pytest.raises(ValueError):
        parse_pin("only-a-type")
