"""Every argument that reaches a host passes a strict pattern; hostile alert values are refused."""

from __future__ import annotations

import pytest

from soar.errors import InputError
from soar.hosts import validate

HOSTILE = ["", " ", "a b", "x;id", "$(id)", "`id`", "a\nb", "-oProxyCommand=id", "../../etc/passwd", "a|b", "é"]


@pytest.mark.parametrize("value", ["alice", "_svc", "www-data", "u1", "a" * 32])
def test_user_names_accepted(value: str) -> None:
    assert validate.user_name(value) == value


@pytest.mark.parametrize("value", [*HOSTILE, "Root", "1abc", "a" * 33, "-rf"])
def test_user_names_refused_with_the_parameter_named(value: str) -> None:
    with pytest.raises(InputError, match=r"^parameter user: .* is not a valid user name"):
        validate.user_name(value)


@pytest.mark.parametrize(
    ("value", "canonical"),
    [("10.0.0.1", "10.0.0.1"), ("2001:DB8::1", "2001:db8::1"), ("10.1.0.0/16", "10.1.0.0/16"), ("::1", "::1")],
)
def test_addresses_and_networks_are_canonical(value: str, canonical: str) -> None:
    assert validate.ip_or_cidr(value) == canonical


@pytest.mark.parametrize(
    "value", [*HOSTILE, "10.0.0.256", "10.0.0.1/33", "10.1.0.1/16", "1.2.3", "10.0.0.1 ", "0x7f.1"]
)
def test_bad_addresses_refused(value: str) -> None:
    with pytest.raises(InputError, match=r"^parameter ip: "):
        validate.ip_or_cidr(value)


def test_single_address_refuses_networks() -> None:
    with pytest.raises(InputError):
        validate.ip_address("10.0.0.0/8")


@pytest.mark.parametrize(
    ("value", "out"), [("10.0.0.3:9200", "10.0.0.3:9200"), ("[2001:db8::1]:443", "[2001:db8::1]:443")]
)
def test_endpoints(value: str, out: str) -> None:
    assert validate.endpoint(value) == out


@pytest.mark.parametrize(
    "value", ["10.0.0.3", "10.0.0.3:0", "10.0.0.3:70000", "host:80", "2001:db8::1:443", "1.2.3.4:80;id"]
)
def test_bad_endpoints(value: str) -> None:
    with pytest.raises(InputError):
        validate.endpoint(value)


@pytest.mark.parametrize("value", [2, "1234", 4194304])
def test_pids(value: int | str) -> None:
    assert validate.pid(value) == int(value)


@pytest.mark.parametrize("value", [0, 1, -5, "12;reboot", "1e3", "4194305", " 12", True])
def test_bad_pids(value: object) -> None:
    with pytest.raises(InputError, match=r"^parameter pid: "):
        validate.pid(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["/usr/bin/sleep", "/opt/app-1.2/bin/x+y", "/"])
def test_paths(value: str) -> None:
    assert validate.absolute_path(value) == value


@pytest.mark.parametrize("value", ["relative/x", "/a/../etc/shadow", "/a/..", "/tmp/$(id)", "/tmp/a b", "/tmp/a\n"])
def test_bad_paths(value: str) -> None:
    with pytest.raises(InputError):
        validate.absolute_path(value)


def test_long_values_are_shortened_in_the_message() -> None:
    with pytest.raises(InputError) as info:
        validate.user_name("x;" * 200)
    assert len(str(info.value)) < 160


@pytest.mark.parametrize(
    ("value", "ok"), [(0, False), (1, True), (30 * 86400, True), (30 * 86400 + 1, False), (True, False)]
)
def test_seconds(value: int, ok: bool) -> None:
    if ok:
        assert validate.seconds(value, "expire_seconds") == value
    else:
        with pytest.raises(InputError, match=r"^parameter expire_seconds: "):
            validate.seconds(value, "expire_seconds")


@pytest.mark.parametrize(
    ("value", "networks"),
    [
        ("10.0.0.5", ["10.0.0.5"]),
        ("10.0.0.5/32", ["10.0.0.5"]),
        ("10.0.0.0/24", ["10.0.0.0/24"]),
        ("10.0.0.4-10.0.0.6", ["10.0.0.4/31", "10.0.0.6"]),
        ("10.0.0.0-10.0.0.255", ["10.0.0.0/24"]),
        ("2001:db8::-2001:db8::3", ["2001:db8::/126"]),
        ("10.0.0.7-10.0.0.7", ["10.0.0.7"]),
    ],
)
def test_a_range_is_blocked_as_its_fewest_networks(value: str, networks: list[str]) -> None:
    assert validate.ip_networks(value) == networks


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("10.0.0.9-10.0.0.1", "first address is after its last"),
        ("10.0.0.1-::1", "mixes IPv4 and IPv6"),
        ("10.0.0.1-10.0.0.1; reboot", "is not an IP address"),
        ("$(id)-10.0.0.1", "is not an IP address"),
        ("10.0.0.1-10.0.255.254", "at most 16"),
    ],
)
def test_bad_ranges_are_refused_with_the_parameter_named(value: str, why: str) -> None:
    with pytest.raises(InputError) as caught:
        validate.ip_networks(value, "ip")
    assert caught.value.message.startswith("parameter ip: ") and why in caught.value.message
