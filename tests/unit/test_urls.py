"""A URL's password is masked wherever soar prints or logs it; everything else in the URL stays readable."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from soar.config import load_settings
from soar.urls import mask_log_records, mask_url, url_passwords


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:secret@host:6379/0", "redis://:***@host:6379/0"),
        ("rediss://default:s3cr3t@redis.internal:6380/2", "rediss://default:***@redis.internal:6380/2"),
        ("https://user:pw@es:9200", "https://user:***@es:9200"),
        ("https://user:p@ss:w@rd@es:9200/path", "https://user:***@es:9200/path"),  # an unencoded @ in it
        ("https://user:p%40ss@es:9200", "https://user:***@es:9200"),
        ("http://127.0.0.1:9200", "http://127.0.0.1:9200"),  # nothing to mask
        ("https://user@es:9200", "https://user@es:9200"),  # a user name alone is not a secret
        ("redis://:@host:6379/0", "redis://:@host:6379/0"),  # an empty password
        ("unix:///run/redis.sock", "unix:///run/redis.sock"),
        ("mailto:soc@example.org", "mailto:soc@example.org"),
    ],
)
def test_only_the_password_is_masked(url: str, shown: str) -> None:
    assert mask_url(url) == shown


def test_every_url_in_a_message_is_masked_and_the_rest_kept() -> None:
    text = "Redis at redis://:r-pw@a:6379/0 is down; Elasticsearch at https://e:e-pw@b:9200 answered 401"
    shown = "Redis at redis://:***@a:6379/0 is down; Elasticsearch at https://e:***@b:9200 answered 401"
    assert mask_url(text) == shown


def test_config_show_values_mask_every_url_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOAR_REDIS_URL", "redis://:redis-pw-1@10.0.0.5:6379/0")
    monkeypatch.setenv("SOAR_ELASTICSEARCH_URL", "https://elastic:es-pw-2@es.internal:9200")
    monkeypatch.setenv("SOAR_SLACK_API_URL", "https://proxy:slack-pw-3@slack-proxy/api/")
    values = load_settings().masked()
    assert values["redis_url"] == "redis://:***@10.0.0.5:6379/0"
    assert values["elasticsearch_url"] == "https://elastic:***@es.internal:9200"
    assert values["slack_api_url"] == "https://proxy:***@slack-proxy/api/"
    assert not any(pw in str(values) for pw in ("redis-pw-1", "es-pw-2", "slack-pw-3"))


def test_an_invalid_url_setting_is_named_without_its_password(monkeypatch: pytest.MonkeyPatch) -> None:
    from soar.errors import ConfigError

    monkeypatch.setenv("SOAR_REDIS_URL", "http://u:leaky-pw@redis:6379/0")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert str(info.value) == (
        "redis_url (SOAR_REDIS_URL): must be a redis://, rediss:// or unix:// URL, got 'http://u:***@redis:6379/0'"
    )
    assert info.value.__cause__ is None and info.value.__suppress_context__  # pydantic's echo of it is not chained


@pytest.fixture
def log_output() -> Iterator[io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger("soar.test_urls")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        yield out
    finally:
        logger.removeHandler(handler)


def test_log_records_mask_urls_in_messages_arguments_and_tracebacks(log_output: io.StringIO) -> None:
    mask_log_records()
    mask_log_records()  # idempotent: installed once
    log = logging.getLogger("soar.test_urls")
    log.info("connecting to %s", "redis://:arg-pw@r:6379/0")
    log.warning("broker redis://default:msg-pw@r:6379/1 is slow")
    try:
        raise ConnectionError("cannot reach https://elastic:exc-pw@es:9200")
    except ConnectionError:
        log.exception("search failed")
    log.info("plain %s line", "unchanged")
    text = log_output.getvalue()
    for secret in ("arg-pw", "msg-pw", "exc-pw"):
        assert secret not in text
    assert "INFO connecting to redis://:***@r:6379/0" in text
    assert "WARNING broker redis://default:***@r:6379/1 is slow" in text
    assert "ConnectionError: cannot reach https://elastic:***@es:9200" in text
    assert "INFO plain unchanged line" in text


def test_url_passwords_are_secrets_the_record_redaction_cuts_out(monkeypatch: pytest.MonkeyPatch) -> None:
    from soar.audit.redact import configured_secrets, redact

    assert url_passwords("redis://:p%40ss-61@r:6379/0 and https://u:pw-62@es") == ["p%40ss-61", "pw-62", "p@ss-61"]
    monkeypatch.setenv("SOAR_REDIS_URL", "redis://:redis-pw-63@10.0.0.5:6379/0")
    monkeypatch.setenv("SOAR_ELASTICSEARCH_URL", "https://elastic:es-pw-64@es:9200")
    secrets = configured_secrets(load_settings())
    assert {"redis-pw-63", "es-pw-64"} <= set(secrets)
    record = {"error": "Redis at redis://:redis-pw-63@10.0.0.5:6379/0 is down", "note": ["es-pw-64"]}
    assert "pw-6" not in str(redact(record, secrets))
