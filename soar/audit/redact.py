"""Keep secrets out of everything soar writes: audit entries, run reports, evidence bundles.

Two nets: a value stored under a secret-looking key is masked whatever it is, and any
configured secret (every ``SecretStr`` setting, the password of every URL setting, every API
token) is cut out of any string.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from pydantic import SecretStr

from soar.audit.keys import generated_keys
from soar.config import MASK, Settings
from soar.urls import url_passwords

SECRET_KEY = re.compile(r"(passw|secret|token|api[_-]?key|private[_-]?key|hmac|credential|authorization)", re.I)
MIN_SECRET_LEN = 4  # shorter "secrets" would mask ordinary words


def configured_secrets(settings: Settings | None, extra: Iterable[str] = ()) -> list[str]:
    """Every secret value soar knows of: SecretStr settings plus API tokens of the principals file."""
    values: list[str] = [v for v in extra if v]
    if settings is not None:
        for name in type(settings).model_fields:
            value = getattr(settings, name)
            if isinstance(value, SecretStr) and value.get_secret_value():
                values.append(value.get_secret_value())
            elif name == "integration":  # every integration's settings: secrets unless said otherwise
                values.extend(v.get_secret_value() for keys in value.values() for v in keys.values())
            elif isinstance(value, str):  # redis://:pw@host, https://user:pw@es:9200
                values.extend(url_passwords(value))
        from soar.access import token_values

        values.extend(token_values(settings))
    values.extend(generated_keys())  # the audit key generated into the state directory, once loaded
    # longest first, so a secret containing another is cut whole
    return sorted({v for v in values if len(v) >= MIN_SECRET_LEN}, key=len, reverse=True)


def redact(value: Any, secrets: Iterable[str] = ()) -> Any:
    """A copy of ``value`` (JSON-like) with secret keys masked and secret substrings replaced."""
    secret_list = list(secrets)
    return _redact(value, secret_list)


def _redact(value: Any, secrets: list[str]) -> Any:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if isinstance(key, str) and SECRET_KEY.search(key) and isinstance(item, str | bytes) and item:
                out[str(key)] = MASK
            else:
                out[str(key)] = _redact(item, secrets)
        return out
    if isinstance(value, list | tuple):
        return [_redact(item, secrets) for item in value]
    if isinstance(value, str):
        for secret in secrets:
            if secret in value:
                value = value.replace(secret, MASK)
        return value
    return value
