from __future__ import annotations

from pathlib import Path

import pytest

from soar.errors import InputError
from soar.scaffold import scaffold
from tests.unit.test_cli import run_soar


def test_init_lays_out_a_content_repository(tmp_path: Path) -> None:
    target = tmp_path / "detections"
    out = run_soar("init", str(target))
    assert out.returncode == 0, out.stderr
    for name in ("rules", "playbooks", "responders", "inventory.yml", "soar.yml", ".github/workflows/detections.yml"):
        assert (target / name).exists(), name
    from soar.hosts.inventory import load_inventory

    inventory = load_inventory(target / "inventory.yml")
    assert {"web-01", "db-01"} <= {h.name for h in inventory.hosts.values()}
    workflow = (target / ".github/workflows/detections.yml").read_text()
    assert "soar rules check" in workflow and "soar rules test" in workflow
    assert not any(p.name.startswith(".detections.") for p in tmp_path.iterdir()), "staging folder left behind"


def test_init_refuses_a_non_empty_folder_and_writes_nothing(tmp_path: Path) -> None:
    target = tmp_path / "existing"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    with pytest.raises(InputError, match="already exists and is not empty"):
        scaffold(target)
    assert [p.name for p in target.iterdir()] == ["keep.txt"]
    out = run_soar("init", str(target))
    assert out.returncode == 1
    assert out.stderr.strip().startswith("error: ") and "Traceback" not in out.stderr
