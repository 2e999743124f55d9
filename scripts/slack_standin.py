"""A Slack Web API stand-in served on loopback, for tests and the offline demo.

The real ``slack_sdk.WebClient`` talks to it with ``base_url=http://127.0.0.1:8765/api/``.
It implements the methods soar uses — ``chat.postMessage``, ``chat.update``,
``chat.postEphemeral``, ``conversations.history``, ``conversations.info``, ``auth.test`` —
with Slack's answers for a bad token (``invalid_auth``) and an unknown channel
(``channel_not_found``), and an optional per-channel rate limit (429 + Retry-After).

Tests isolate themselves in *workspaces*: each has its own bot token, channels,
messages and injected faults, so several test runs share one stand-in safely.

Control endpoints (JSON):

    GET  /_standin/health                       liveness (scripts/services.sh waits for it)
    POST /_standin/workspaces                   {"channels": [...], "rate_limit_per_sec": n} -> {"token", "channels"}
    POST /_standin/faults                       {"token", "method": "chat.postMessage"|"*", "kind":
                                                 "rate_limit"|"error"|"accept_then_error", "count", "retry_after",
                                                 "status"}
    POST /_standin/outage                       {"token", "on": true|false}  every API call answers 503
    POST /_standin/channels                     {"token", "name"} create a channel later (recovery tests)
    GET  /_standin/state?token=...              every message (with its replies and edit history),
                                                ephemerals and the call log

Incoming webhooks: ``POST /services/<workspace token>/<channel name>`` (JSON ``text``/``blocks``),
answered ``ok`` / ``no_service`` / ``channel_not_found`` / 429 like Slack's.

Run: ``python scripts/slack_standin.py --port 8765``. Standard library only.
"""

from __future__ import annotations

import argparse
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

DEFAULT_TOKEN = "xoxb-standin-default"  # noqa: S105 (the stand-in's public demo token)
DEFAULT_CHANNELS = ("soc-alerts", "soc-critical", "soc-oncall")


@dataclass
class Fault:
    method: str
    kind: str  # rate_limit | error | accept_then_error
    count: int
    retry_after: int = 1
    status: int = 500


@dataclass
class Workspace:
    token: str
    channels: dict[str, str]  # id -> name
    rate_limit_per_sec: float | None = None
    messages: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)  # (channel, ts) -> message
    order: list[tuple[str, str]] = field(default_factory=list)
    ephemerals: list[dict[str, Any]] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    outage: bool = False
    recent_posts: dict[str, list[float]] = field(default_factory=dict)  # channel -> monotonic times
    counter: int = 0

    def resolve(self, channel: str) -> str | None:
        if channel in self.channels:
            return channel
        name = channel.lstrip("#")
        for cid, cname in self.channels.items():
            if cname == name:
                return cid
        return None

    def next_ts(self) -> str:
        self.counter += 1
        return f"{int(time.time())}.{self.counter:06d}"


class State:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.workspaces: dict[str, Workspace] = {}
        self.add_workspace(list(DEFAULT_CHANNELS), token=DEFAULT_TOKEN)

    def add_workspace(self, channels: list[str], token: str | None = None, rate: float | None = None) -> Workspace:
        token = token or f"xoxb-{secrets.token_hex(12)}"
        ids = {f"C{secrets.token_hex(5).upper()}": name.lstrip("#") for name in channels}
        ws = Workspace(token=token, channels=ids, rate_limit_per_sec=rate)
        self.workspaces[token] = ws
        return ws


STATE = State()


class ApiError(Exception):
    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        super().__init__(body.get("error", ""))
        self.status = status
        self.body = body
        self.headers = headers or {}


def _slack_error(code: str) -> ApiError:
    return ApiError(200, {"ok": False, "error": code})


def _take_fault(ws: Workspace, method: str) -> Fault | None:
    for fault in ws.faults:
        if fault.method in (method, "*") and fault.count > 0:
            fault.count -= 1
            if fault.count == 0:
                ws.faults.remove(fault)
            return fault
    return None


def _rate_limited(ws: Workspace, channel: str) -> bool:
    if not ws.rate_limit_per_sec:
        return False
    now = time.monotonic()
    window = [t for t in ws.recent_posts.get(channel, []) if now - t < 1.0]
    ws.recent_posts[channel] = window
    if len(window) >= ws.rate_limit_per_sec:
        return True
    window.append(now)
    return False


def _blocks(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def _post_message(ws: Workspace, args: dict[str, Any]) -> dict[str, Any]:
    cid = ws.resolve(str(args.get("channel", "")))
    if cid is None:
        raise _slack_error("channel_not_found")
    if not args.get("text") and not args.get("blocks"):
        raise _slack_error("no_text")
    if _rate_limited(ws, cid):
        raise ApiError(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "1"})
    thread_ts = args.get("thread_ts")
    if thread_ts and (cid, thread_ts) not in ws.messages:
        raise _slack_error("thread_not_found")
    ts = ws.next_ts()
    message = {
        "channel": cid,
        "channel_name": ws.channels[cid],
        "ts": ts,
        "text": args.get("text", ""),
        "blocks": _blocks(args.get("blocks")) or [],
        "thread_ts": thread_ts,
        "metadata": _blocks(args.get("metadata")),
        "replies": [],
        "edits": [],
    }
    ws.messages[(cid, ts)] = message
    ws.order.append((cid, ts))
    if thread_ts:
        ws.messages[(cid, thread_ts)]["replies"].append(ts)
    return {"ok": True, "channel": cid, "ts": ts, "message": {"ts": ts, "text": message["text"]}}


def _update(ws: Workspace, args: dict[str, Any]) -> dict[str, Any]:
    cid = ws.resolve(str(args.get("channel", "")))
    if cid is None:
        raise _slack_error("channel_not_found")
    message = ws.messages.get((cid, str(args.get("ts", ""))))
    if message is None:
        raise _slack_error("message_not_found")
    message["edits"].append({"text": message["text"], "blocks": message["blocks"]})
    if "text" in args:
        message["text"] = args["text"]
    if "blocks" in args:
        message["blocks"] = _blocks(args["blocks"]) or []
    return {"ok": True, "channel": cid, "ts": message["ts"], "text": message["text"]}


def _ephemeral(ws: Workspace, args: dict[str, Any]) -> dict[str, Any]:
    cid = ws.resolve(str(args.get("channel", "")))
    if cid is None:
        raise _slack_error("channel_not_found")
    if not args.get("user"):
        raise _slack_error("user_not_found")
    ts = ws.next_ts()
    ws.ephemerals.append(
        {
            "channel": cid,
            "user": args["user"],
            "text": args.get("text", ""),
            "blocks": _blocks(args.get("blocks")) or [],
            "thread_ts": args.get("thread_ts"),
            "ts": ts,
        }
    )
    return {"ok": True, "message_ts": ts}


def _history(ws: Workspace, args: dict[str, Any]) -> dict[str, Any]:
    cid = ws.resolve(str(args.get("channel", "")))
    if cid is None:
        raise _slack_error("channel_not_found")
    oldest = float(args.get("oldest") or 0)
    limit = int(args.get("limit") or 100)
    found = [
        {"ts": m["ts"], "text": m["text"], "metadata": m["metadata"], "thread_ts": m["thread_ts"]}
        for (c, _), m in reversed(ws.messages.items())
        if c == cid and float(m["ts"]) >= oldest
    ]
    return {"ok": True, "messages": found[:limit], "has_more": len(found) > limit}


def _info(ws: Workspace, args: dict[str, Any]) -> dict[str, Any]:
    cid = ws.resolve(str(args.get("channel", "")))
    if cid is None:
        raise _slack_error("channel_not_found")
    return {"ok": True, "channel": {"id": cid, "name": ws.channels[cid]}}


METHODS = {
    "chat.postMessage": _post_message,
    "chat.update": _update,
    "chat.postEphemeral": _ephemeral,
    "conversations.history": _history,
    "conversations.info": _info,
    "auth.test": lambda ws, args: {"ok": True, "team": "standin", "user": "soar", "bot_id": "B0SOAR"},
}


class Handler(BaseHTTPRequestHandler):
    server_version = "slack-standin/1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read state, not logs
        return

    def _send(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _read_args(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        ctype = self.headers.get("Content-Type", "")
        args: dict[str, Any] = {}
        query = parse_qs(urlparse(self.path).query)
        args.update({k: v[0] for k, v in query.items()})
        if raw and "json" in ctype:
            loaded = json.loads(raw)
            if isinstance(loaded, dict):
                args.update(loaded)
        elif raw:
            args.update({k: v[0] for k, v in parse_qs(raw.decode()).items()})
        return args

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        path = urlparse(self.path).path
        try:
            args = self._read_args()
        except (ValueError, UnicodeDecodeError):
            self._send(400, {"ok": False, "error": "invalid_form_data"})
            return
        if path.startswith("/_standin/"):
            self._control(path.removeprefix("/_standin/"), args)
        elif path.startswith("/api/"):
            self._api(path.removeprefix("/api/"), args)
        elif path.startswith("/services/"):
            self._webhook(path.removeprefix("/services/"), args)
        else:
            self._send(404, {"ok": False, "error": "unknown_path"})

    def _api(self, method: str, args: dict[str, Any]) -> None:
        auth = self.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else str(args.pop("token", ""))
        with STATE.lock:
            ws = STATE.workspaces.get(token)
            if ws is None:
                self._send(200, {"ok": False, "error": "invalid_auth"})
                return
            ws.calls.append({"method": method, "args": args, "at": time.time()})
            if ws.outage:
                self._send(503, {"ok": False, "error": "service_unavailable"})
                return
            handler = METHODS.get(method)
            if handler is None:
                self._send(200, {"ok": False, "error": "unknown_method"})
                return
            fault = _take_fault(ws, method)
            try:
                if fault is not None and fault.kind == "rate_limit":
                    raise ApiError(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(fault.retry_after)})
                if fault is not None and fault.kind == "error":
                    raise ApiError(fault.status, {"ok": False, "error": "internal_error"})
                body = handler(ws, args)
                if fault is not None and fault.kind == "accept_then_error":
                    # Slack did the work but the answer was lost: the client cannot know.
                    raise ApiError(fault.status, {"ok": False, "error": "internal_error"})
            except ApiError as exc:
                self._send(exc.status, exc.body, exc.headers)
                return
        self._send(200, body)

    def _send_text(self, status: int, text: str, headers: dict[str, str] | None = None) -> None:
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _webhook(self, rest: str, args: dict[str, Any]) -> None:
        """An incoming webhook ``/services/<workspace token>/<channel>``: posts to that one channel, answers text."""
        token, _, channel = rest.partition("/")
        with STATE.lock:
            ws = STATE.workspaces.get(token)
            if ws is None:
                self._send_text(404, "no_service")
                return
            ws.calls.append({"method": "webhook", "args": args, "at": time.time()})
            if ws.outage:
                self._send_text(503, "service_unavailable")
                return
            fault = _take_fault(ws, "webhook")
            if fault is not None and fault.kind == "rate_limit":
                self._send_text(429, "rate_limited", {"Retry-After": str(fault.retry_after)})
                return
            if fault is not None and fault.kind == "error":
                self._send_text(fault.status, "internal_error")
                return
            try:
                _post_message(ws, {"channel": channel, "text": args.get("text"), "blocks": args.get("blocks")})
            except ApiError as exc:
                status = 404 if exc.body.get("error") == "channel_not_found" else exc.status
                self._send_text(status if status != 200 else 400, str(exc.body.get("error")), exc.headers)
                return
        self._send_text(200, "ok")

    def _control(self, name: str, args: dict[str, Any]) -> None:
        if name == "health":
            self._send(200, {"ok": True})
            return
        with STATE.lock:
            if name == "workspaces":
                rate = args.get("rate_limit_per_sec")
                ws = STATE.add_workspace(list(args.get("channels") or DEFAULT_CHANNELS), rate=rate)
                self._send(200, {"ok": True, "token": ws.token, "channels": {n: c for c, n in ws.channels.items()}})
                return
            ws_or_none = STATE.workspaces.get(str(args.get("token", "")))
            if ws_or_none is None:
                self._send(404, {"ok": False, "error": "unknown workspace token"})
                return
            ws = ws_or_none
            if name == "faults":
                ws.faults.append(
                    Fault(
                        method=str(args.get("method", "*")),
                        kind=str(args.get("kind", "error")),
                        count=int(args.get("count", 1)),
                        retry_after=int(args.get("retry_after", 1)),
                        status=int(args.get("status", 500)),
                    )
                )
                self._send(200, {"ok": True})
            elif name == "outage":
                ws.outage = bool(args.get("on", True))
                self._send(200, {"ok": True, "outage": ws.outage})
            elif name == "channels":
                cid = f"C{secrets.token_hex(5).upper()}"
                ws.channels[cid] = str(args["name"]).lstrip("#")
                self._send(200, {"ok": True, "id": cid})
            elif name == "state":
                self._send(200, _snapshot(ws))
            else:
                self._send(404, {"ok": False, "error": f"unknown control endpoint {name}"})


def _snapshot(ws: Workspace) -> dict[str, Any]:
    messages = [dict(ws.messages[key]) for key in ws.order]
    return {
        "ok": True,
        "channels": {n: c for c, n in ws.channels.items()},
        "messages": messages,
        "ephemerals": list(ws.ephemerals),
        "calls": [{"method": c["method"], "at": c["at"]} for c in ws.calls],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    opts = parser.parse_args()
    ThreadingHTTPServer.request_queue_size = 128  # storms and parallel test runs connect at once
    server = ThreadingHTTPServer((opts.host, opts.port), Handler)
    server.daemon_threads = True
    print(f"slack stand-in on http://{opts.host}:{opts.port}/api/", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
