"""MITRE ATT&CK data from the package, never from the network.

pySigma 1.x downloads ATT&CK on first use (``sigma.data.mitre_attack``) into a disk cache
under ``~/.cache/pysigma``. We point it at the bundle shipped in ``soar/data`` and at a
cache folder of our own keyed by the bundle's hash, so validation, Kibana exports and the
tests work offline and never pick up another version from the user's cache.
"""

from __future__ import annotations

import hashlib
import tempfile
import threading
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

_lock = threading.Lock()


def attack_bundle_path() -> Path:
    """The shipped STIX bundle (ATT&CK Enterprise, reduced to what pySigma reads)."""
    return Path(str(resources.files("soar") / "data" / "enterprise-attack.json"))


@cache
def use_shipped_attack_data() -> str:
    """Make pySigma load ATT&CK from the shipped bundle; return its version. Idempotent."""
    from sigma.data import mitre_attack

    path = attack_bundle_path()
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    cache_dir = Path(tempfile.gettempdir()) / f"soar-pysigma-attack-{digest}"
    with _lock:
        mitre_attack.set_cache_dir(str(cache_dir))
        mitre_attack.set_url(str(path))
        version: Any = mitre_attack.mitre_attack_version
    return str(version)


def techniques() -> dict[str, str]:
    """ATT&CK technique id (``T1110.001``) → name."""
    use_shipped_attack_data()
    from sigma.data import mitre_attack

    return dict(mitre_attack.mitre_attack_techniques)


def tactics() -> dict[str, str]:
    """ATT&CK tactic id (``TA0006``) → short name (``credential-access``)."""
    use_shipped_attack_data()
    from sigma.data import mitre_attack

    return dict(mitre_attack.mitre_attack_tactics)
