"""A warm ``soar rules convert`` starts light: no pySigma, Celery, Elasticsearch client or pydantic.

Each run is a fresh process that records ``sys.modules`` when it exits; the cold run (empty
compile cache, settings never seen) shows the check would catch those imports.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import env_without_soar
from tests.unit.detection.helpers import process_event, rule_yaml, write

HEAVY = ("sigma", "celery", "elasticsearch", "pydantic", "pydantic_settings", "fastapi", "importlib.metadata")

RECORD = """
import atexit, json, sys
out = sys.argv.pop(1)
atexit.register(lambda: open(out, "w").write(json.dumps(sorted(sys.modules))))
sys.argv[0] = "soar"
from soar.cli import main
main()
"""


def _run(tmp_path: Path, name: str, *args: str, env: dict[str, str] | None = None) -> tuple[set[str], str, str, int]:
    modules = tmp_path / f"{name}.json"
    base = {**env_without_soar(), "SOAR_STATE_DIR": str(tmp_path / "state"), "XDG_CACHE_HOME": str(tmp_path / "xdg")}
    proc = subprocess.run(
        [sys.executable, "-c", RECORD, str(modules), *args],
        capture_output=True,
        text=True,
        env={**base, **(env or {})},
        timeout=120,
        check=False,
    )
    loaded = set(json.loads(modules.read_text())) if modules.exists() else set()
    return loaded, proc.stdout, proc.stderr, proc.returncode


def _heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in HEAVY or m in HEAVY)


def _pack(tmp_path: Path) -> Path:
    rules = tmp_path / "rules"
    write(
        rules / "curl_sh.yml", rule_yaml({"sel": {"CommandLine|contains|all": ["curl ", "| sh"]}, "condition": "sel"})
    )
    write(rules / "curl_sh.tests.yml", yaml.safe_dump({"should_match": [process_event("curl x | sh")]}))
    return rules


def test_warm_convert_imports_no_pysigma_celery_elasticsearch_or_pydantic(tmp_path: Path) -> None:
    rules = _pack(tmp_path)
    cold, cold_out, err, code = _run(tmp_path, "cold", "rules", "convert", str(rules), "--json")
    assert code == 0, err
    assert "sigma" in cold and "pydantic_settings" in cold  # compiled, and the settings validated
    warm, warm_out, err, code = _run(tmp_path, "warm", "rules", "convert", str(rules), "--json")
    assert code == 0, err
    assert warm_out == cold_out and json.loads(warm_out)[0]["dsl"]["query"]
    assert "soar.detection._convert" in warm
    assert _heavy(warm) == []


def test_a_setting_seen_valid_before_is_still_checked_when_it_changes(tmp_path: Path) -> None:
    rules = _pack(tmp_path)
    _run(tmp_path, "ok", "rules", "convert", str(rules), "--json")
    _, _, err, code = _run(tmp_path, "bad", "rules", "convert", str(rules), env={"SOAR_REDIS_URL": "http://wrong"})
    assert code == 2
    assert err.strip().splitlines() == [
        "error: redis_url (SOAR_REDIS_URL): must be a redis://, rediss:// or unix:// URL, got 'http://wrong'"
    ]
    _, _, err, code = _run(tmp_path, "bad2", "rules", "convert", str(rules), env={"SOAR_NO_SUCH": "1"})
    assert code == 2 and err.startswith("error: SOAR_NO_SUCH: unknown setting")


def test_remembered_settings_hold_no_secret(tmp_path: Path) -> None:
    rules = _pack(tmp_path)
    env = {"SOAR_SLACK_BOT_TOKEN": "xoxb-remember-me-not", "SOAR_CONTENT_ROOT": str(tmp_path)}
    _, _, err, code = _run(tmp_path, "one", "rules", "convert", "--json", env=env)  # rules/ under content_root
    assert code == 0, err
    modules, out, err, code = _run(tmp_path, "two", "rules", "convert", "--json", env=env)
    assert code == 0, err
    assert json.loads(out)[0]["path"] == str(rules / "curl_sh.yml")
    assert "pydantic_settings" not in modules  # recognised, not validated again
    memo = (tmp_path / "xdg" / "soar" / "valid-settings.json").read_text()
    assert "xoxb-remember-me-not" not in memo and str(tmp_path) in memo


def test_plain_parameters_keep_typer_errors_and_help(tmp_path: Path) -> None:
    _, out, _, code = _run(tmp_path, "help", "rules", "convert", "--help")
    assert code == 0 and "--target" in out and "--no-cache" in out
    _, _, err, code = _run(tmp_path, "missing", "rules", "convert", str(tmp_path / "nope"))
    assert code == 1
    assert err.strip().splitlines() == [f"error: {tmp_path / 'nope'}: no such file or folder"]
    _, _, err, code = _run(tmp_path, "badopt", "rules", "convert", "--target")
    assert code == 2 and "requires an argument" in err and "Traceback" not in err


def test_plain_params_give_typer_values_and_leave_the_rest_to_typer(capsys: pytest.CaptureFixture[str]) -> None:
    import typer
    import typer.main

    from soar.cli._params import plain_params

    seen: dict[str, object] = {}
    app = typer.Typer(context_settings={"help_option_names": ["-h", "--help"]})

    @app.command()
    def one(
        paths: list[Path] | None = typer.Argument(None),
        name: str = typer.Option("x", "--name"),
        where: Path | None = typer.Option(None, "--where"),
        count: int = typer.Option(1, "--count"),
    ) -> None:
        seen.update(paths=paths, name=name, where=where, count=count)

    @app.command()
    def two() -> None:
        """Second command."""

    def run(*args: str) -> None:
        command = typer.main.get_command(app)
        plain_params(command)
        command.main(list(args), standalone_mode=False)

    run("one", "a", "b/c", "--name", "n", "--where", "w", "--count", "3")
    assert seen == {"paths": [Path("a"), Path("b/c")], "name": "n", "where": Path("w"), "count": 3}
    with pytest.raises(typer.BadParameter) as caught:
        run("one", "--count", "many")
    assert "valid integer" in str(caught.value)  # an int is still coerced (and refused) by typer itself
    run("one", "-h")
    assert "--where" in capsys.readouterr().out  # the inherited help names still work
