"""A client of the Slack stand-in's control endpoints (scripts/slack_standin.py), for tests and the benchmark."""

from __future__ import annotations

import json
import os
import urllib.request
from typing import Any

STANDIN = os.environ.get("SOARDEV_TEST_SLACK_STANDIN", "http://127.0.0.1:8765")


def control(name: str, body: dict[str, Any] | None = None, *, query: str = "") -> dict[str, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(  # noqa: S310 (loopback test server)
        f"{STANDIN}/_standin/{name}{'?' + query if query else ''}",
        data=data,
        headers={"Content-Type": "application/json"},
        method="POST" if data is not None else "GET",
    )
    with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 (loopback test server)
        result: dict[str, Any] = json.loads(resp.read())
    return result


def health() -> dict[str, Any]:
    return control("health")


class Workspace:
    """One isolated Slack workspace on the stand-in: its own token, channels, messages and faults."""

    def __init__(self, channels: list[str], rate_limit_per_sec: float | None = None) -> None:
        reply = control("workspaces", {"channels": channels, "rate_limit_per_sec": rate_limit_per_sec})
        self.token: str = reply["token"]
        self.channels: dict[str, str] = reply["channels"]
        self.api_url = f"{STANDIN}/api/"

    def fault(self, kind: str, *, method: str = "*", count: int = 1, retry_after: int = 1, status: int = 500) -> None:
        control(
            "faults",
            {
                "token": self.token,
                "kind": kind,
                "method": method,
                "count": count,
                "retry_after": retry_after,
                "status": status,
            },
        )

    def outage(self, on: bool) -> None:
        control("outage", {"token": self.token, "on": on})

    def add_channel(self, name: str) -> str:
        return str(control("channels", {"token": self.token, "name": name})["id"])

    def state(self) -> dict[str, Any]:
        return control("state", query=f"token={self.token}")

    def top_level(self, channel: str | None = None) -> list[dict[str, Any]]:
        st = self.state()
        cid = st["channels"].get(channel.lstrip("#")) if channel else None
        return [m for m in st["messages"] if not m["thread_ts"] and (cid is None or m["channel"] == cid)]

    def replies(self, parent_ts: str) -> list[dict[str, Any]]:
        return [m for m in self.state()["messages"] if m["thread_ts"] == parent_ts]

    def calls(self, method: str | None = None) -> list[dict[str, Any]]:
        return [c for c in self.state()["calls"] if method is None or c["method"] == method]
