"""Where the settings come from (the ``SOAR_*`` prefix, the config file) — without pydantic.

Apart from :mod:`soar.config` so the CLI's start-up can recognise settings it has already
found valid (:mod:`soar.cli._settings`) without importing pydantic-settings.
"""

from __future__ import annotations

import os
from pathlib import Path

from soar.errors import ConfigError

ENV_PREFIX = "SOAR_"
CONFIG_FILE_NAMES = ("soar.yml", "soar.yaml", "soar.toml")


def config_file_path() -> Path | None:
    explicit = os.environ.get(f"{ENV_PREFIX}CONFIG")
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(f"{ENV_PREFIX}CONFIG: no such file {explicit}")
        return path
    for name in CONFIG_FILE_NAMES:
        if Path(name).is_file():
            return Path(name)
    return None
