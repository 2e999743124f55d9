"""The report page served by the real API (uvicorn), rendered by headless Chromium; the screenshot is kept.

Chromium cannot send a bearer token from the command line, so a small forwarding proxy in
the test adds the viewer's token — the page itself comes from the API unchanged.
"""

from __future__ import annotations

import shutil
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import uvicorn

from tests.conftest import REPO_ROOT
from tests.integration.api.conftest import Api, contained_incident
from tests.integration.api.lab_content import auth
from tests.services import require

ARTIFACTS = REPO_ROOT / "test-artifacts"


def _chromium() -> str:
    def find() -> str:
        path = shutil.which("chromium") or shutil.which("chromium-browser")
        if path is None:
            raise RuntimeError("chromium is not installed (run scripts/ensure_chromium.sh)")
        return path

    return require("Chromium", find)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def _serve_api(api: Api) -> Iterator[str]:
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(api.client.app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextmanager
def _token_proxy(upstream: str, headers: dict[str, str]) -> Iterator[str]:
    class Forward(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            resp = httpx.get(upstream + self.path, headers=headers, timeout=30)
            self.send_response(resp.status_code)
            for key in ("content-type", "content-security-policy"):
                if key in resp.headers:
                    self.send_header(key, resp.headers[key])
            self.send_header("content-length", str(len(resp.content)))
            self.end_headers()
            self.wfile.write(resp.content)

        def log_message(self, *args: object) -> None:
            pass

    proxy = ThreadingHTTPServer(("127.0.0.1", 0), Forward)
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{proxy.server_address[1]}"
    finally:
        proxy.shutdown()
        proxy.server_close()


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@pytest.mark.timeout(180)
def test_report_page_renders_in_headless_chromium(api: Api, tmp_path: Path) -> None:
    chromium = _chromium()
    _, run_id = contained_incident(api)
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "run-report-page.png"
    shot.unlink(missing_ok=True)
    base = [
        chromium,
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1280,1600",
    ]
    with _serve_api(api) as upstream, _token_proxy(upstream, auth("viewer")) as proxy:
        url = f"{proxy}/runs/{run_id}/report.html"
        dom = subprocess.run([*base, "--dump-dom", url], capture_output=True, text=True, timeout=120, check=True).stdout
        subprocess.run([*base, f"--screenshot={shot}", url], capture_output=True, timeout=120, check=True)
    # the browser's DOM: the timeline table rendered with every milestone, hostile data inert
    assert 'id="timeline"' in dom
    for kind in ("first_event", "detected", "approval_decided", "contained", "released", "run_finished"):
        assert f'class="event {kind}"' in dom, kind
    assert "<script>alert(1)</script>" not in dom and "&lt;script&gt;alert(1)&lt;/script&gt;" in dom
    assert "Lab rule &lt;b&gt;bold&lt;/b&gt;" in dom
    width, height = _png_size(shot)
    assert (width, height) == (1280, 1600)
    assert shot.stat().st_size > 20_000  # a rendered page, not a blank canvas
