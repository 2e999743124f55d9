"""Slack delivery benchmark (not a test): alert-to-card latency and a 1,000-alert storm, against the stand-in.

Anchor: a bare one-way ``chat.postMessage`` per alert with slack-sdk, no outbox, no pacing
— what a webhook alerter such as ElastAlert2's Slack alerter does. Ratios are ours / anchor.

Run: ``python -m tests.benchmarks.bench_slack`` (needs ``scripts/services.sh up slack``).
"""

from __future__ import annotations

import itertools
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from soar.config import Settings, load_settings
from soar.notify import Deliverer, notify_alert, notify_run_event, transport_for
from soar.notify.incidents import open_thread
from soar.store import Store, open_store
from tests.integration.notify.standin import Workspace, health

LATENCY_ALERTS = 100
STORM_ALERTS = 1000


def _alert(n: int) -> dict[str, Any]:
    return {
        "id": uuid.uuid4().hex,
        "rule": {"id": f"r{n % 7}", "title": f"Rule {n % 7}", "level": "high", "tags": ["attack.t1110.001"]},
        "host": {"name": f"web-{n % 50}"},
        "user": {"name": "root"},
        "source": {"ip": f"203.0.113.{n % 250}"},
        "events": [{"message": f"Failed password for root from 203.0.113.{n % 250} port 22 ssh2"}],
    }


def _settings(tmp: Path, ws: Workspace, **kw: Any) -> Settings:
    return load_settings(
        state_dir=tmp / uuid.uuid4().hex,
        content_root=tmp,
        celery_eager=True,
        slack_bot_token=ws.token,
        slack_api_url=ws.api_url,
        **kw,
    )


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(round(p / 100 * (len(ordered) - 1)), len(ordered) - 1)]


def latency(tmp: Path) -> dict[str, float]:
    ws = Workspace(["soc-alerts"])
    settings = _settings(tmp, ws, slack_channel_interval=0)
    store = open_store(settings)
    ours = []
    for n in range(LATENCY_ALERTS):
        started = time.perf_counter()
        notify_alert(settings, store, _alert(n))  # stored, routed, rendered, posted, marked sent
        ours.append(time.perf_counter() - started)
    assert len(ws.top_level()) == LATENCY_ALERTS
    anchor_ws = Workspace(["soc-alerts"])
    client = WebClient(token=anchor_ws.token, base_url=anchor_ws.api_url, retry_handlers=[])
    anchor = []
    for n in range(LATENCY_ALERTS):
        started = time.perf_counter()
        client.chat_postMessage(channel="#soc-alerts", text=f"alert {n}: {_alert(n)['rule']['title']}")
        anchor.append(time.perf_counter() - started)
    return {
        "ours_p50": _pct(ours, 50),
        "ours_p95": _pct(ours, 95),
        "anchor_p50": _pct(anchor, 50),
        "anchor_p95": _pct(anchor, 95),
        "ours_mean": statistics.fmean(ours),
    }


def storm(tmp: Path) -> dict[str, Any]:
    """1,000 alerts for one channel whose Slack limit is 1 message/s."""
    ws = Workspace(["soc-alerts"], rate_limit_per_sec=1)
    settings = _settings(tmp, ws, slack_channel_interval=1.0, slack_storm_threshold=20)
    store: Store = open_store(settings)
    started = time.perf_counter()
    for n in range(STORM_ALERTS):
        open_thread(settings, store, _alert(n))
    enqueued = time.perf_counter() - started
    deliverer = Deliverer(settings, store, transport_for(settings))
    while True:
        report = deliverer.deliver("#soc-alerts")
        if report.retry_in is None:
            break
        time.sleep(min(report.retry_in, 2))
    took = time.perf_counter() - started
    state = ws.state()
    posted = [m for m in state["messages"] if not m["thread_ts"]]
    summarised = sum(int(m["text"].split()[2]) for m in posted if "summarised" in m["text"])
    cards = len(posted) - sum(1 for m in posted if "summarised" in m["text"])
    ours = {
        "messages": len(posted),
        "rate_limited": sum(1 for c in state["calls"] if c["method"] == "chat.postMessage") - len(posted),
        "alerts_accounted": cards + summarised,
        "seconds": took,
        "enqueue_seconds": enqueued,
        "msgs_per_s": len(posted) / took,
    }
    anchor_ws = Workspace(["soc-alerts"], rate_limit_per_sec=1)
    client = WebClient(token=anchor_ws.token, base_url=anchor_ws.api_url, retry_handlers=[])
    started = time.perf_counter()
    limited = 0
    for n in range(STORM_ALERTS):
        try:
            client.chat_postMessage(channel="#soc-alerts", text=f"alert {n}")
        except SlackApiError:
            limited += 1  # a one-way alerter without an outbox drops it
    took = time.perf_counter() - started
    delivered = len(anchor_ws.top_level())
    anchor = {
        "messages": delivered,
        "rate_limited": limited,
        "alerts_accounted": delivered,
        "seconds": took,
        "msgs_per_s": delivered / took,
    }
    return {"ours": ours, "anchor": anchor}


RACE_EVENTS = 15  # the card lists 15 steps: each event shows one more
RACE_INCIDENTS = 10


def _race_events(run: dict[str, Any]) -> list[dict[str, Any]]:
    from soar.playbooks.events import make_event

    return [
        make_event("step_finished", run, step={"id": f"s{n:02d}", "uses": "x.y", "status": "succeeded"})
        for n in range(RACE_EVENTS)
    ]


def _race_result(ws: Workspace, seconds: float) -> dict[str, float]:
    """Per incident, the steps each version of its card showed: they only grow unless a card went backwards."""
    updates = backwards = current = 0
    for card in ws.top_level():
        shown = [str(v["blocks"]).count("`s") for v in [*card["edits"], card]]
        updates += len(shown) - 1
        backwards += sum(1 for a, b in itertools.pairwise(shown) if b < a)
        current += shown[-1] == RACE_EVENTS
    return {"updates": updates, "backwards": backwards, "final_current": current, "seconds": seconds}


def race(tmp: Path) -> dict[str, dict[str, float]]:
    """Two workers publish one run's events at once: does the card ever go backwards, does it end current?

    Anchor: each worker renders the card from the state it just wrote and calls ``chat.update``
    itself (no outbox, no revision check) — the obvious way to keep a card "updated in place".
    """
    import threading

    from soar.notify import cards
    from soar.notify.incidents import apply_event
    from soar.records import Thread

    def run_of() -> dict[str, Any]:
        return {"id": f"run-{uuid.uuid4().hex[:8]}", "playbook": {"name": "p"}, "alert": _alert(0)}  # new alert id

    def in_two_threads(work: Any, events: list[dict[str, Any]]) -> float:
        started = time.perf_counter()
        threads = [threading.Thread(target=work, args=(events[i::2],)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return time.perf_counter() - started

    ws = Workspace(["soc-alerts"])
    settings = _settings(tmp, ws, slack_channel_interval=0)
    store = open_store(settings)

    def ours(events: list[dict[str, Any]]) -> None:
        own = open_store(settings)
        for event in events:
            notify_run_event(settings, own, event)
        own.close()

    ours_seconds = sum(in_two_threads(ours, _race_events(run_of())) for _ in range(RACE_INCIDENTS))
    Deliverer(settings, store, transport_for(settings)).deliver("#soc-alerts")  # a busy channel's leftovers

    anchor_ws = Workspace(["soc-alerts"])
    client = WebClient(token=anchor_ws.token, base_url=anchor_ws.api_url, retry_handlers=[])
    lock = threading.Lock()

    def anchor_incident() -> float:
        run = run_of()
        summary = cards.alert_summary(run["alert"])
        posted = client.chat_postMessage(channel="#soc-alerts", text="card", blocks=cards.incident_card(summary))
        state = Thread(id=summary["id"], channel="#soc-alerts", card="anchor")

        def anchor(events: list[dict[str, Any]]) -> None:
            for event in events:
                with lock:  # the state itself is written atomically, like the thread document
                    snapshot = apply_event(state, event)
                    blocks = cards.incident_card(summary, status=snapshot.status, runs=snapshot.runs)
                client.chat_update(channel=str(posted["channel"]), ts=str(posted["ts"]), text="card", blocks=blocks)

        return in_two_threads(anchor, _race_events(run))

    anchor_seconds = sum(anchor_incident() for _ in range(RACE_INCIDENTS))
    return {"ours": _race_result(ws, ours_seconds), "anchor": _race_result(anchor_ws, anchor_seconds)}


def ack_latency(tmp: Path, clicks: int = 50) -> list[float]:
    """How fast `soar api` answers a signed click (Slack allows 3 s); the decision itself runs afterwards."""
    import httpx

    from tests.integration.notify.apiserver import api_env, payload, post, serve_api
    from tests.integration.notify.content import write_content

    root = write_content(tmp / "ack")
    ws = Workspace(["soc-alerts"])
    times = []
    with serve_api(root, ws, api_env(root, ws, eager=True)) as api:
        httpx.get(f"{api.url}/health")
        for n in range(clicks):
            resp, _ = post(api, payload(f"run-{n}", "contain", "UNOBODY", channel=ws.channels["soc-alerts"]))
            assert resp.status_code == 200
            times.append(resp.elapsed.total_seconds())
    return times


def _table(title: str, result: dict[str, Any], rows: tuple[tuple[str, str], ...]) -> None:
    """One comparison table: soar, the anchor, and their ratio per row."""
    o, a = result["ours"], result["anchor"]
    print(f"\n{title}")
    print(f"{'':28}{'soar':>16}{'anchor':>20}{'ratio':>8}")
    for label, key in rows:
        ratio = f"{o[key] / a[key]:.2f}" if a[key] else "-"
        print(f"{label:28}{o[key]:>16.2f}{a[key]:>20.2f}{ratio:>8}")


def main() -> int:
    try:
        health()
    except OSError as exc:
        print(f"Slack stand-in not reachable ({exc}); start it with: scripts/services.sh up slack", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        lat = latency(Path(tmp))
        st = storm(Path(tmp))
        rc = race(Path(tmp))
        ack = ack_latency(Path(tmp))
    print(f"\nAlert → Slack card latency ({LATENCY_ALERTS} alerts, stand-in on loopback, no pacing)")
    print(f"{'':28}{'soar (outbox)':>16}{'anchor (bare post)':>20}{'ratio':>8}")
    for p in ("p50", "p95"):
        ours, anchor = lat[f"ours_{p}"] * 1000, lat[f"anchor_{p}"] * 1000
        print(f"{p + ' ms':28}{ours:>16.1f}{anchor:>20.1f}{ours / anchor:>8.2f}")
    _table(
        f"{STORM_ALERTS}-alert storm into one channel limited to 1 message/s (soar paces at 1/s, folds at 20)",
        st,
        (
            ("messages in the channel", "messages"),
            ("429 answers", "rate_limited"),
            ("alerts accounted for", "alerts_accounted"),
            ("seconds to drain", "seconds"),
            ("messages/s in the channel", "msgs_per_s"),
        ),
    )
    print(f"{'enqueue 1,000 alerts (s)':28}{st['ours']['enqueue_seconds']:>16.2f}")
    _table(
        f"{RACE_INCIDENTS} cards, {RACE_EVENTS} run events each published by two threads at once (eager)",
        rc,
        (
            ("chat.update calls", "updates"),
            ("card went backwards", "backwards"),
            ("cards ending current", "final_current"),
            ("seconds", "seconds"),
        ),
    )
    print(f"\nInteractivity acknowledgement ({len(ack)} signed clicks to `soar api`; anchor: Slack's 3 s limit)")
    print(f"{'':28}{'soar':>16}{'limit':>20}{'ratio':>8}")
    for p in ("p50", "p95"):
        value = _pct(ack, 50 if p == "p50" else 95) * 1000
        print(f"{p + ' ms':28}{value:>16.1f}{3000.0:>20.1f}{value / 3000:>8.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
