"""soar's version, and installed versions read without importing :mod:`importlib.metadata`.

``importlib.metadata`` costs about 50 ms to import — a tenth of a warm ``soar rules convert``.
The ``Version:`` line of a distribution's ``METADATA`` file is what it would return; it is
used only when no ``*.dist-info`` folder on ``sys.path`` holds the distribution.
"""

from __future__ import annotations

import os
import re
import sys
from functools import cache


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


@cache
def _dist_infos(entry: str) -> dict[str, str]:
    """Normalised distribution name -> its ``*.dist-info`` folder, for one ``sys.path`` entry."""
    try:
        names = os.listdir(entry or ".")  # noqa: PTH208 - names only, no Path per entry
    except OSError:
        return {}
    out: dict[str, str] = {}
    for name in names:
        if name.endswith(".dist-info"):
            dist = name[: -len(".dist-info")].rpartition("-")[0]
            out.setdefault(_normalise(dist), os.path.join(entry, name))  # noqa: PTH118 - plain strings, speed
    return out


def installed_version(dist: str) -> str | None:
    """The installed version of ``dist`` (the first one on ``sys.path``, as importlib.metadata finds it)."""
    wanted = _normalise(dist)
    for entry in sys.path:
        folder = _dist_infos(entry).get(wanted)
        if folder is None:
            continue
        try:
            with open(os.path.join(folder, "METADATA"), encoding="utf-8") as lines:  # noqa: PTH118, PTH123
                for line in lines:
                    if line.startswith("Version:"):
                        return line.partition(":")[2].strip()
                    if not line.strip():
                        break  # the headers end at the first blank line
        except OSError:
            continue
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


__version__ = installed_version("soar") or "0.0.0+src"  # 0.0.0+src: a source tree that was not installed
