"""Routing by severity, rule and team; a bad routes file is one error naming file:line."""

from __future__ import annotations

import pytest

from soar.errors import ContentError
from soar.notify.routing import parse_routes

ROUTES = """
default: "#soc-alerts"
routes:
  - channel: "#soc-critical"
    min_severity: critical
  - channel: "#team-payments"
    team: payments
  - channel: "#soc-bruteforce"
    rule: ["ssh-brute-*", "T1110*"]
"""


def _summary(**kw: object) -> dict[str, object]:
    return {"title": "x", "rule_id": "r", "level": "medium", "tags": [], "team": None, **kw}


def test_first_matching_route_wins_else_the_default() -> None:
    routes = parse_routes(ROUTES, "notify.yml", "#fallback")
    assert routes.channel_for(_summary(level="critical", team="payments")) == "#soc-critical"
    assert routes.channel_for(_summary(level="high", team="payments")) == "#team-payments"
    assert routes.channel_for(_summary(tags=["team.payments"])) == "#team-payments"
    assert routes.channel_for(_summary(rule_id="ssh-brute-force")) == "#soc-bruteforce"
    assert routes.channel_for(_summary(tags=["attack.t1110.001"])) == "#soc-bruteforce"
    assert routes.channel_for(_summary(level="high")) == "#soc-alerts"
    assert parse_routes("routes: []", "n.yml", "#fallback").channel_for(_summary()) == "#fallback"


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("routes:\n  - channel: '#a'\n    min_severity: severe\n", "notify.yml:3: routes.0.min_severity"),
        ("routes:\n  - channel: '#a'\n  - chanel: '#b'\n", "notify.yml:3: routes.1"),
        ("routes: [\n", "notify.yml:2: not valid YAML"),
        ("- just a list\n", "notify.yml:1: must be a mapping"),
    ],
)
def test_a_bad_routes_file_names_file_and_line(text: str, where: str) -> None:
    with pytest.raises(ContentError) as err:
        parse_routes(text, "notify.yml", "#x")
    assert str(err.value).startswith(where), str(err.value)
