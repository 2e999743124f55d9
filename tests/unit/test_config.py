from __future__ import annotations

from pathlib import Path

import pytest

from soar.config import MASK, load_settings
from soar.errors import ConfigError


def test_defaults_point_at_local_services(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    s = load_settings()
    assert s.elasticsearch_url == "http://127.0.0.1:9200"
    assert s.redis_url.startswith("redis://")
    assert s.store == "sqlite"


def test_environment_overrides_config_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "soar.yml").write_text("elasticsearch_url: http://es.example:9200\nindex_prefix: fromfile\n")
    monkeypatch.setenv("SOAR_INDEX_PREFIX", "fromenv")
    s = load_settings()
    assert s.elasticsearch_url == "http://es.example:9200"
    assert s.index_prefix == "fromenv"


def test_toml_config_file_via_soar_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cfg = tmp_path / "x.toml"
    cfg.write_text('redis_url = "redis://10.0.0.1:6380/2"\n')
    monkeypatch.setenv("SOAR_CONFIG", str(cfg))
    assert load_settings().redis_url == "redis://10.0.0.1:6380/2"


def test_invalid_value_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOAR_ELASTICSEARCH_URL", "ftp://nowhere")
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert "elasticsearch_url (SOAR_ELASTICSEARCH_URL)" in str(err.value)
    assert err.value.exit_code == 2


def test_unknown_environment_setting_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOAR_ELASTICSAERCH_URL", "http://typo:9200")
    with pytest.raises(ConfigError, match="SOAR_ELASTICSAERCH_URL: unknown setting"):
        load_settings()


def test_unknown_key_in_config_file_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "soar.yml").write_text("redis_ulr: redis://x\n")
    with pytest.raises(ConfigError, match="redis_ulr: unknown setting"):
        load_settings()


def test_malformed_config_file_names_file_and_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "soar.yml").write_text("store: sqlite\nredis_url: [unclosed\n")
    with pytest.raises(ConfigError, match=r"soar\.yml:\d+:\d+: config file is not valid YAML"):
        load_settings()


def test_missing_soar_config_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SOAR_CONFIG", str(tmp_path / "absent.yml"))
    with pytest.raises(ConfigError, match="SOAR_CONFIG: no such file"):
        load_settings()


def test_secrets_are_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOAR_SLACK_BOT_TOKEN", "xoxb-very-secret")
    monkeypatch.setenv("SOAR_ELASTICSEARCH_PASSWORD", "hunter2")
    s = load_settings()
    masked = s.masked()
    assert masked["slack_bot_token"] == MASK
    assert masked["elasticsearch_password"] == MASK
    assert "xoxb-very-secret" not in repr(s)
    assert "hunter2" not in str(masked)


def test_search_timeout_defaults_to_half_the_request_timeout_and_must_stay_below_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SOAR_ELASTICSEARCH_TIMEOUT", "8")
    assert load_settings().search_timeout == 4.0
    monkeypatch.setenv("SOAR_DETECTION_SEARCH_TIMEOUT", "2.5")
    assert load_settings().search_timeout == 2.5
    monkeypatch.setenv("SOAR_DETECTION_SEARCH_TIMEOUT", "8")
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert str(err.value) == (
        "detection_search_timeout (SOAR_DETECTION_SEARCH_TIMEOUT): must be below elasticsearch_timeout (8 s),"
        " so a slow rule times out alone instead of the whole request"
    )
