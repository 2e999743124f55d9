"""The settings at start-up: validated by :mod:`soar.config` once per environment and config file, then recognised.

Every command stops on an invalid setting, but importing pydantic-settings to check them
costs more than a warm ``soar rules convert`` spends working. So the root callback validates
with :mod:`soar.config` only settings it has not found valid before: a fingerprint of the
``SOAR_*`` environment, the config file's bytes and the code that validates them. A valid
fingerprint is remembered under the user's cache folder with the only two values the light
commands need (``content_root``, ``state_dir``; never a secret). An invalid setting is never
remembered, so its message always comes from :mod:`soar.config` itself.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

from soar._config_file import ENV_PREFIX, config_file_path
from soar._version import installed_version

KEPT = ("content_root", "state_dir")  # what a command may read without soar.config; no secrets
REMEMBERED = 64  # fingerprints kept (tests make a new environment per test)

_known: dict[str, str] | None = None


def _memo_path() -> Path | None:
    """Where valid fingerprints are kept; None without a home folder (then nothing is remembered)."""
    try:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    except RuntimeError:  # no HOME and no passwd entry
        return None
    return Path(base) / "soar" / "valid-settings.json"


def _fingerprint() -> str | None:
    """What decides whether the settings are valid; None when it cannot be read (then validate)."""
    try:
        path = config_file_path()
        parts: list[Any] = [
            sorted((k, v) for k, v in os.environ.items() if k.upper().startswith(ENV_PREFIX)),
            str(path.resolve()) if path else None,
            hashlib.sha256(path.read_bytes()).hexdigest() if path else None,
            hashlib.sha256((Path(__file__).parents[1] / "config.py").read_bytes()).hexdigest(),
            [installed_version(d) for d in ("soar", "pydantic", "pydantic-settings")],
            sys.version,
        ]
    except Exception:  # any doubt (an unreadable or missing file, …): soar.config decides and reports
        return None
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


def _remembered() -> dict[str, dict[str, str]]:
    path = _memo_path()
    if path is None:
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _remember(fingerprint: str, values: dict[str, str]) -> None:
    memo = _remembered()
    memo.pop(fingerprint, None)
    memo[fingerprint] = values
    keep = dict(list(memo.items())[-REMEMBERED:])
    path = _memo_path()
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(keep), encoding="utf-8")
        tmp.replace(path)  # atomic: concurrent commands never read half a file
    except OSError:
        pass  # a cache: without it every command validates, as before


def check_settings() -> None:
    """Raise ConfigError naming the setting if the settings are invalid — pydantic only for unknown ones."""
    global _known
    _known = None
    if "soar.config" in sys.modules:  # already loaded (tests, a second command): it is the cheap way
        from soar.config import get_settings

        get_settings()
        return
    fingerprint = _fingerprint()
    hit = _remembered().get(fingerprint) if fingerprint else None
    if isinstance(hit, dict) and all(isinstance(hit.get(k), str) for k in KEPT):
        _known = hit
        return
    from soar.config import get_settings

    settings = get_settings()
    if fingerprint:
        _remember(fingerprint, {name: str(getattr(settings, name)) for name in KEPT})


def path_setting(name: str) -> Path:
    """``content_root`` or ``state_dir``, without importing soar.config when they were recognised."""
    if _known is not None and "soar.config" not in sys.modules:
        return Path(_known[name])
    from soar.config import get_settings

    value: Path = getattr(get_settings(), name)
    return value


def content_path(relative: Path) -> Path:
    """A content path (relative to ``content_root``), as ``Settings.content_path`` gives it."""
    return relative if relative.is_absolute() else path_setting("content_root") / relative
