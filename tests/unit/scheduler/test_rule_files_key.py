"""The rule files' key (read every tick, twice): it changes with any rule file, and only with rule files."""

from __future__ import annotations

import os
from pathlib import Path

from soar.scheduler.loading import _files_key


def test_the_key_follows_every_rule_file_and_only_rule_files(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    (rules / "linux" / "deep").mkdir(parents=True)
    (rules / "a.yml").write_text("a")
    (rules / "linux" / "deep" / "b.yaml").write_text("b")
    (rules / "README.md").write_text("not a rule")
    key = _files_key([rules])
    assert [Path(name).name for name, *_ in key] == ["a.yml", "b.yaml"]
    assert _files_key([rules]) == key  # stable
    (rules / "notes.txt").write_text("x")
    assert _files_key([rules]) == key  # not a rule file
    nested = rules / "linux" / "deep" / "b.yaml"
    nested.write_text("b, edited")
    os.utime(nested, ns=(1, 1))  # even with the same time, the size tells
    edited = _files_key([rules])
    assert edited != key
    (rules / "linux" / "c.yml").write_text("c")
    assert len(_files_key([rules])) == 3
    assert _files_key([rules / "a.yml"]) == ((str(rules / "a.yml"), *key[0][1:]),)  # one file named directly
