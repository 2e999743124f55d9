"""``soar incidents`` on both stores: the same shape as ``soar alerts`` — scoped (another scope's incident is
unknown), unique prefixes, ``--json``, changes audited with the principal, and the report page (#17 item 2).

Alerts are attached in process as the hand-off does; the commands run as the OS login the principals file maps
(``os_user``), or as a staging-scoped principal by token.
"""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from soar.config import load_settings
from soar.incidents import attach
from soar.store import Store
from soar.store.elastic import ElasticsearchStore
from soar.store.sqlite import SQLiteStore
from tests.conftest import env_without_soar

INVENTORY = """\
hosts:
  web1: {address: 10.0.1.11, labels: {env: prod}}
  stage1: {address: 10.0.2.11, labels: {env: staging}}
"""
STAGING_TOKEN = "sam-staging-token-000000001"


def _alert(n: int, host: str, minute: int, title: str = "Reverse shell") -> dict[str, object]:
    return {
        "id": f"al{n:02d}" + "f" * 36,
        "@timestamp": f"2026-12-01T10:{minute:02d}:00.000Z",
        "rule": {"id": "rule-1", "title": title, "level": "high"},
        "severity": "high",
        "host": {"name": host},
        "user": {"name": "<b>bob</b>"},
    }


@pytest.fixture(params=["sqlite", "elasticsearch"])
def state(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    env = {"SOAR_STATE_DIR": str(tmp_path), "SOAR_CONTENT_ROOT": str(tmp_path),
           "SOAR_API_TOKENS_FILE": str(tmp_path / "tokens.yml")}  # fmt: skip
    store: Store
    if request.param == "sqlite":
        store = SQLiteStore(tmp_path / "state.sqlite3")
    else:
        es = request.getfixturevalue("es")
        prefix = f"soar-test-{uuid.uuid4().hex[:10]}"
        env |= {"SOAR_STORE": "elasticsearch", "SOAR_INDEX_PREFIX": prefix}
        store = ElasticsearchStore(es, prefix)
    settings = load_settings(state_dir=tmp_path, content_root=tmp_path)
    alerts = [_alert(0, "web1", 1), _alert(1, "web1", 20, "Sudo"), _alert(2, "stage1", 3), _alert(3, "web1", 59)]
    for doc in alerts:
        store.put("alerts", str(doc["id"]), doc)
        attach(store, settings, doc)
    login = pwd.getpwuid(os.geteuid()).pw_name
    (tmp_path / "tokens.yml").write_text(
        "principals:\n"
        f"  - {{name: ana, roles: [responder], os_user: {login}}}\n"
        f"  - {{name: sam, roles: [responder], token: {STAGING_TOKEN}, attributes: {{env: [staging]}}}}\n"
    )
    (tmp_path / "inventory.yml").write_text(INVENTORY)
    yield tmp_path, env
    if request.param == "elasticsearch":  # the client is the session's: not closed here
        es.options(ignore_status=404).indices.delete(index=f"{prefix}-state-*")
        es.options(ignore_status=404).indices.delete_index_template(name=f"{prefix}-state")
    else:
        store.close()


def _soar(state: tuple[Path, dict[str, str]], *args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
    root, extra = state
    env = {**env_without_soar(), **extra, **({"SOAR_TOKEN": token} if token else {})}
    return subprocess.run([sys.executable, "-m", "soar", *args], cwd=root, env=env, capture_output=True, text=True,
                          timeout=120)  # fmt: skip


def _json(out: subprocess.CompletedProcess[str]) -> object:
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_incidents_on_the_command_line(state: tuple[Path, dict[str, str]]) -> None:
    listed = _json(_soar(state, "incidents", "list", "--json"))
    assert isinstance(listed, list)
    by_host = {i["key"]["value"]: i for i in listed}
    assert sorted((i["key"]["value"], i["alert_count"]) for i in listed) == [("stage1", 1), ("web1", 1), ("web1", 2)]
    web1 = next(i for i in listed if i["key"]["value"] == "web1" and i["alert_count"] == 2)
    assert {i["id"] for i in listed} >= {by_host["stage1"]["id"]}

    # the staging principal sees the staging incident only; a prod one is unknown to it, even by its full id
    sam = _json(_soar(state, "incidents", "list", "--json", token=STAGING_TOKEN))
    assert [i["key"]["value"] for i in sam] == ["stage1"]  # type: ignore[union-attr]
    hidden = _soar(state, "incidents", "show", web1["id"], token=STAGING_TOKEN)
    assert hidden.returncode != 0 and f"unknown incident id {web1['id']!r}" in hidden.stderr
    assert "Traceback" not in hidden.stderr

    prefix = web1["id"][:8]
    shown = _soar(state, "incidents", "show", prefix)
    assert shown.returncode == 0, shown.stderr
    assert "host.name=web1" in shown.stdout and "Reverse shell" in shown.stdout and "Sudo" in shown.stdout
    detail = _json(_soar(state, "incidents", "show", prefix, "--json"))
    assert [a["id"][:4] for a in detail["alerts"]] == ["al00", "al01"]  # type: ignore[index]
    assert _soar(state, "incidents", "show", "zzzz").stderr.startswith("error: unknown incident id 'zzzz'")

    alert = _json(_soar(state, "alerts", "show", "al00", "--json"))
    assert alert["incident_id"] == web1["id"]  # type: ignore[index]
    assert f"incident   {by_host['stage1']['id']}" in _soar(state, "alerts", "show", "al02", token=STAGING_TOKEN).stdout

    acked = _soar(state, "incidents", "ack", prefix, "--note", "on it")
    assert acked.returncode == 0 and f"incident {web1['id']}: acknowledged by ana" in acked.stdout
    assert "already acknowledged" in _soar(state, "incidents", "ack", prefix).stdout
    assert _soar(state, "incidents", "assign", prefix, "me").returncode == 0
    assert _soar(state, "incidents", "note", prefix, "<script>x</script> contained").returncode == 0
    refused = _soar(state, "incidents", "close", prefix, token=STAGING_TOKEN)
    assert refused.returncode != 0 and "unknown incident id" in refused.stderr
    assert _soar(state, "incidents", "close", prefix).returncode == 0
    after = _json(_soar(state, "incidents", "list", "--json", "--status", "closed", "--owner", "me"))
    assert [(i["id"], i["owner"], i["closed_by"]) for i in after] == [(web1["id"], "ana", "ana")]  # type: ignore[index]

    page = state[0] / "incident.html"
    rep = _soar(state, "incidents", "report", prefix, "--html", str(page))
    assert rep.returncode == 0, rep.stderr
    html = page.read_text()
    assert "&lt;script&gt;x&lt;/script&gt; contained" in html and "<script>" not in html
    assert "&lt;b&gt;bob&lt;/b&gt;" in html and "no playbook ran for these alerts" in html
    titles = [e["title"] for e in _json(_soar(state, "incidents", "report", prefix, "--json"))["timeline"]]  # type: ignore[index]
    assert titles == ["Reverse shell", "Sudo", "created", "acknowledged", "assigned", "note", "closed"]
