"""Integration settings and secrets: SOAR_INTEGRATION__<NAME>__<KEY>, masked, redacted, handed over as declared."""

from __future__ import annotations

from pathlib import Path

import pytest

from soar.actions import ActionContext, ActionResult, ActionSpec, Secrets, action
from soar.actions.registry import RegisteredAction, missing_secrets, scoped_context, without_secrets
from soar.audit.redact import configured_secrets
from soar.config import load_settings
from soar.errors import ConfigError, InputError


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("SOAR_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)


def test_environment_variables_become_the_integration_section_lower_cased(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOAR_INTEGRATION__TICKETING__API_TOKEN", "t0ken-value-123")
    monkeypatch.setenv("SOAR_INTEGRATION__TICKETING__URL", "https://tickets.example")
    settings = load_settings()
    assert {k: v.get_secret_value() for k, v in settings.integration["ticketing"].items()} == {
        "api_token": "t0ken-value-123",
        "url": "https://tickets.example",
    }
    assert settings.masked()["integration"] == {"ticketing": {"api_token": "********", "url": "********"}}
    assert "t0ken-value-123" in configured_secrets(settings)


def test_the_config_file_section_and_the_environment_merge(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "soar.yml").write_text(
        "integration:\n  ticketing: {url: https://a.example, api_token: from-file-123}\n  cmdb: {key: k-1234567}\n"
    )
    monkeypatch.setenv("SOAR_INTEGRATION__TICKETING__API_TOKEN", "from-env-456")
    section = load_settings().integration
    assert section["ticketing"]["api_token"].get_secret_value() == "from-env-456"
    assert section["ticketing"]["url"].get_secret_value() == "https://a.example"
    assert section["cmdb"]["key"].get_secret_value() == "k-1234567"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("SOAR_INTEGRATION_TICKETING_TOKEN", "SOAR_INTEGRATION_TICKETING_TOKEN: unknown setting"),
        ("SOAR_INTEGRATION__TICKETING", "SOAR_INTEGRATION__TICKETING: unknown setting"),
        ("SOAR_INTEGRATION__1BAD__KEY", "SOAR_INTEGRATION__1BAD__KEY: unknown setting"),
    ],
)
def test_a_malformed_variable_is_an_unknown_setting(monkeypatch: pytest.MonkeyPatch, name: str, message: str) -> None:
    monkeypatch.setenv(name, "x")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert str(caught.value).startswith(message)


def test_a_bad_name_in_the_config_file_is_refused_naming_it(tmp_path: Path) -> None:
    (tmp_path / "soar.yml").write_text("integration:\n  Ticketing: {token: x}\n")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "'Ticketing': integration names and keys are [a-z][a-z0-9_]*" in str(caught.value)


@action("ticketing.open_case", impact="notify", secrets=("token",))
def _open_case(ctx: ActionContext, title: str) -> ActionResult:
    return ActionResult(ok=True, output={"title": title})


def _registered(builtin: bool) -> RegisteredAction:
    from soar.actions.registry import _params_model

    spec: ActionSpec = _open_case.__soar_action__  # type: ignore[attr-defined]
    return RegisteredAction(spec, _open_case, _params_model(spec.name, _open_case), __name__, builtin)


def test_an_action_gets_exactly_its_declared_keys_and_a_team_integration_no_soar_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SOAR_INTEGRATION__TICKETING__TOKEN", "tk-1234567890")
    monkeypatch.setenv("SOAR_INTEGRATION__TICKETING__UNUSED", "un-1234567890")
    monkeypatch.setenv("SOAR_SLACK_BOT_TOKEN", "xoxb-123456789")
    monkeypatch.setenv("SOAR_REDIS_URL", "redis://:redis-pw-1234@127.0.0.1:6379/0")
    settings = load_settings()
    ctx = ActionContext(settings=settings)
    team = scoped_context(_registered(builtin=False), ctx)
    assert dict(team.secrets) == {"token": "tk-1234567890"}
    assert repr(team.secrets) == "Secrets(token=********)"
    assert team.settings.slack_bot_token is None and team.settings.integration == {}
    assert "redis-pw-1234" not in team.settings.redis_url
    own = scoped_context(_registered(builtin=True), ctx)
    assert own.settings is settings and dict(own.secrets) == {"token": "tk-1234567890"}
    with pytest.raises(KeyError, match="not a secret this action declared"):
        team.secrets["unused"]


def test_a_missing_declared_key_is_named_by_its_variable() -> None:
    settings = load_settings()
    spec: ActionSpec = _open_case.__soar_action__  # type: ignore[attr-defined]
    assert missing_secrets(spec, settings) == ["SOAR_INTEGRATION__TICKETING__TOKEN"]
    with pytest.raises(InputError, match=r"needs SOAR_INTEGRATION__TICKETING__TOKEN \(not set\)"):
        scoped_context(_registered(builtin=False), ActionContext(settings=settings))
    refused = _registered(builtin=False).call(ActionContext(settings=settings), {"title": "x"})
    assert not refused.ok and "SOAR_INTEGRATION__TICKETING__TOKEN" in str(refused.error)


def test_settings_without_secrets_keep_everything_else() -> None:
    settings = load_settings(audit_hmac_key="k" * 40, events_index="logs-x-*")
    bare = without_secrets(settings)
    assert bare.audit_hmac_key is None and bare.events_index == "logs-x-*"
    assert Secrets() == {} and len(Secrets({"a": "b"})) == 1
