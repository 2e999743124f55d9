"""The request half of the interactivity endpoint: signature, replay window, payload shape."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from pathlib import Path
from urllib.parse import urlencode

import pytest

from soar.config import Settings, load_settings
from soar.notify.interactions import Rejected, parse, verify

SECRET = "unit-signing-secret"


@pytest.fixture
def slack_settings(tmp_path: Path) -> Settings:
    return load_settings(state_dir=tmp_path, slack_signing_secret=SECRET)


def _headers(body: bytes, ts: int | str | None = None, secret: str = SECRET) -> dict[str, str]:
    stamp = str(int(time.time()) if ts is None else ts)
    sig = hmac.new(secret.encode(), f"v0:{stamp}:".encode() + body, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": f"v0={sig}"}


def _body(**overrides: object) -> bytes:
    payload = {
        "type": "block_actions",
        "user": {"id": "U1", "username": "alice"},
        "channel": {"id": "C1"},
        "container": {"message_ts": "1.2"},
        "actions": [
            {"action_id": "soar.approve", "value": json.dumps({"run_id": "r", "step_id": "s"}), "action_ts": "1.5"}
        ],
        **overrides,
    }
    return urlencode({"payload": json.dumps(payload)}).encode()


def test_a_correctly_signed_fresh_request_passes(slack_settings: Settings) -> None:
    body = _body()
    verify(slack_settings, body, _headers(body))
    click = parse(body)
    assert (click.decision, click.run_id, click.step_id, click.user_id, click.channel_id) == (
        "approve",
        "r",
        "s",
        "U1",
        "C1",
    )
    assert parse(body).id == click.id  # the same request is the same click


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Slack-Request-Timestamp": "123"},
        {"X-Slack-Request-Timestamp": "soon", "X-Slack-Signature": "v0=00"},
    ],
)
def test_missing_or_garbled_signature_headers_are_401(slack_settings: Settings, headers: dict[str, str]) -> None:
    with pytest.raises(Rejected) as err:
        verify(slack_settings, _body(), headers)
    assert err.value.status == 401


def test_wrong_secret_tampered_body_and_old_timestamps_are_401(slack_settings: Settings) -> None:
    body = _body()
    for headers, sent in (
        (_headers(body, secret="other"), body),
        (_headers(body), body.replace(b"approve", b"deny")),
        (_headers(body, ts=int(time.time()) - 301), body),
        (_headers(body, ts=int(time.time()) + 301), body),
    ):
        with pytest.raises(Rejected) as err:
            verify(slack_settings, sent, headers)
        assert err.value.status == 401


def test_a_body_that_is_not_utf8_is_400_before_the_signature_is_computed(slack_settings: Settings) -> None:
    body = b"payload=\xff\xfe"
    with pytest.raises(Rejected) as err:
        verify(slack_settings, body, _headers(body))
    assert (err.value.status, err.value.reason) == (400, "request body is not UTF-8 text")


def test_without_a_signing_secret_interactivity_is_off(tmp_path: Path) -> None:
    body = _body()
    with pytest.raises(Rejected) as err:
        verify(load_settings(state_dir=tmp_path), body, _headers(body))
    assert err.value.status == 503


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"payload=%7B",
        b"nopayload=1",
        _body(type="view_submission"),
        _body(actions=[]),
        _body(actions=[{"action_id": "soar.approve", "value": "x"}]),
        _body(actions=[{"action_id": "soar.delete_everything", "value": "{}"}]),
        _body(user={}),
        _body(actions=[{"action_id": "soar.deny", "value": json.dumps({"run_id": "r"})}]),
        _body(actions=[{"action_id": "soar.deny", "value": json.dumps({"run_id": "r", "step_id": None})}]),
        _body(actions=[{"action_id": "soar.approve", "value": json.dumps({"run_id": 7, "step_id": "s"})}]),
        _body(actions=[{"action_id": "soar.approve", "value": json.dumps(["r", "s"])}]),
        _body(actions=[{"action_id": "soar.verdict_tp", "value": json.dumps({"alert_id": None})}]),
        _body(container="1.2"),
        _body(container={"message_ts": 1.2}),
        _body(user={"id": ["U1"]}),
        _body(channel="C1"),
        b"payload=%FF%FE",
    ],
)
def test_malformed_payloads_and_unknown_actions_are_400(body: bytes) -> None:
    with pytest.raises(Rejected) as err:
        parse(body)
    assert err.value.status == 400
