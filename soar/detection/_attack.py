"""MITRE ATT&CK data from the package (or one the user loaded), never from the network.

pySigma 1.x downloads ATT&CK on first use (``sigma.data.mitre_attack``) into a disk cache
under ``~/.cache/pysigma``. We point it at the bundle shipped in ``soar/data`` and at a
cache folder of our own keyed by the bundle's hash, so validation, Kibana exports and the
tests work offline and never pick up another version from the user's cache.

ATT&CK moves faster than releases: ``soar rules update-attack FILE`` reduces a downloaded
``enterprise-attack.json`` (any size, from MITRE's attack-stix-data) to what pySigma reads and
keeps it under ``<state_dir>/attack/``; the rules commands use it instead of the shipped one
(``use_attack_data_dir``). Nothing here ever downloads.
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
_data_dir: Path | None = None
BUNDLE = "enterprise-attack.json"
# what pySigma's mitre_attack module reads; everything else of a full bundle is left out
KEPT_TYPES = (
    "x-mitre-collection",
    "x-mitre-tactic",
    "attack-pattern",
    "malware",
    "tool",
    "intrusion-set",
    "course-of-action",
    "x-mitre-data-source",
)
KEPT_FIELDS = ("type", "name", "external_references", "kill_chain_phases", "x_mitre_shortname", "x_mitre_platforms")


def shipped_bundle_path() -> Path:
    return Path(str(resources.files("soar") / "data" / BUNDLE))


def use_attack_data_dir(directory: Path | None) -> None:
    """Prefer a bundle loaded with ``update-attack`` in ``directory`` (None: the shipped one)."""
    global _data_dir
    _data_dir = directory


def attack_bundle_path() -> Path:
    """The STIX bundle in use: one loaded with ``soar rules update-attack``, else the shipped one."""
    if _data_dir is not None and (_data_dir / BUNDLE).is_file():
        return _data_dir / BUNDLE
    return shipped_bundle_path()


def use_shipped_attack_data() -> str:
    """Make pySigma load ATT&CK from the bundle in use; return its version. Idempotent per bundle."""
    return _use_bundle(attack_bundle_path())


def bundle_version(bundle: dict[str, Any]) -> str | None:
    collection = next((o for o in bundle.get("objects", []) if o.get("type") == "x-mitre-collection"), None)
    return str(collection["x_mitre_version"]) if collection and collection.get("x_mitre_version") else None


def reduce_bundle(bundle: Any, source: str) -> dict[str, Any]:
    """A STIX bundle cut down to the object types and fields pySigma reads; ValueError naming what is wrong."""
    if not isinstance(bundle, dict) or bundle.get("type") != "bundle" or not isinstance(bundle.get("objects"), list):
        raise ValueError(f"{source}: not a STIX bundle (expected an object with type 'bundle' and 'objects')")
    objects = [
        {
            k: o[k]
            for k in (*KEPT_FIELDS, *(("x_mitre_version",) if o.get("type") == "x-mitre-collection" else ()))
            if k in o
        }
        for o in bundle["objects"]
        if isinstance(o, dict)
        and o.get("type") in KEPT_TYPES
        and not o.get("revoked")
        and not o.get("x_mitre_deprecated")
    ]
    reduced = {"type": "bundle", "id": bundle.get("id", "bundle--soar"), "objects": objects}
    if bundle_version(reduced) is None:
        raise ValueError(f"{source}: no x-mitre-collection with an x_mitre_version: not MITRE's enterprise-attack.json")
    if not any(o["type"] == "attack-pattern" for o in objects) or not any(
        o["type"] == "x-mitre-tactic" for o in objects
    ):
        raise ValueError(f"{source}: no techniques or no tactics in the bundle")
    return reduced


def install_bundle(source: Path, directory: Path) -> tuple[str, int]:
    """Reduce ``source`` and write it atomically as the bundle in use; (ATT&CK version, objects kept)."""
    import json
    import os

    try:
        bundle = json.loads(source.read_bytes())
    except OSError as exc:
        raise ValueError(f"{source}: cannot read: {exc.strerror}") from None
    except ValueError as exc:
        raise ValueError(f"{source}: not JSON: {exc}") from None
    reduced = reduce_bundle(bundle, str(source))
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".{BUNDLE}.{os.getpid()}"
    tmp.write_text(json.dumps(reduced, separators=(",", ":")), encoding="utf-8")
    tmp.replace(directory / BUNDLE)
    return str(bundle_version(reduced)), len(reduced["objects"])


@cache
def _use_bundle(path: Path) -> str:
    from sigma.data import mitre_attack

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
