"""``soar demo``: the whole detect → respond → review loop on the embedded default.

A bundled 40-minute intrusion across four Linux hosts is replayed on a simulated
clock: the events go into the embedded SQLite event store, the production
Detector runs every shipped rule (compiled for the embedded engine) cycle by
cycle, new alerts start the shipped playbooks through the same engine (Celery
in-process), host actions run in dry run and record the exact commands they
would run, the on-call's approval is given as the on-call would, notifications
go to the console (or Slack when a token is configured), and the post-incident
report is written. The clock is simulated so that detection, response and the
metrics measured from them keep their real proportions; the code is the code
production runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import statistics
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from soar.config import Settings, get_settings
from soar.errors import InputError
from soar.private import private_dir
from soar.scaffold import SHIPPED_ROOT

SCENARIO = Path(__file__).resolve().parent / "data" / "scenarios" / "intrusion.jsonl"
MARKER = ".soar-demo"
CYCLE_SECONDS = 60.0
APPROVAL_DELAY = 45.0  # simulated seconds between an approval request and the on-call's click
DEMO_APPROVERS = ("oncall-alice", "oncall-bob")

# The scenario's hosts as the inventory knows them (labels drive the policy's approvals).
DEMO_INVENTORY: dict[str, Any] = {
    "defaults": {
        "user": "soar-responder",
        "key": "keys/soar_responder_ed25519",
        "sudo": True,
        "bastion": "bastion-01",
        "management": ["10.0.0.2"],
        "log_endpoints": ["10.0.0.9:9200"],
        "protected_accounts": ["soar-responder"],
    },
    "hosts": {
        "bastion-01": {
            "address": "10.0.0.5",
            "bastion": None,
            "labels": {"env": "prod", "role": "bastion", "criticality": "high", "owner": "secops"},
        },
        "web-01": {
            "address": "10.0.1.10",
            "labels": {"env": "prod", "role": "web", "criticality": "medium", "owner": "team-web"},
        },
        "db-01": {
            "address": "10.0.2.20",
            "labels": {"env": "prod", "role": "database", "criticality": "high", "owner": "team-data"},
        },
        "ci-01": {
            "address": "10.0.3.30",
            "labels": {"env": "staging", "role": "ci", "criticality": "low", "owner": "team-build"},
        },
    },
}

Progress = Callable[[str, float], None]  # (what is happening, fraction done 0..1)


@dataclass
class DemoResult:
    workdir: Path
    events: int
    cycles: int
    alerts_by_rule: dict[str, int] = field(default_factory=dict)
    runs: list[dict[str, Any]] = field(default_factory=list)
    approvals: list[str] = field(default_factory=list)
    actions: list[dict[str, Any]] = field(default_factory=list)
    mttd_seconds: float | None = None
    mttc_seconds: float | None = None
    report_path: Path | None = None
    notifications: Path | None = None
    reports: list[Path] = field(default_factory=list)
    dry_run: bool = True
    incidents: list[dict[str, Any]] = field(default_factory=list)  # id, key, alerts, level, report


def load_scenario(path: Path = SCENARIO) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}:{n}: not a JSON object: {exc.msg}") from exc
    return events


def _ts(event: dict[str, Any]) -> float:
    return datetime.fromisoformat(str(event["@timestamp"]).replace("Z", "+00:00")).timestamp()


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def shift(events: list[dict[str, Any]], end: float) -> list[dict[str, Any]]:
    """The scenario moved in time so its last event is at ``end`` (intervals unchanged)."""
    offset = end - max(_ts(e) for e in events)
    return [{**e, "@timestamp": _iso(_ts(e) + offset)} for e in events]


def prepare_workdir(workdir: Path) -> None:
    """A fresh folder for this demo; only a folder an earlier demo made is ever removed."""
    if workdir.exists():
        if not (workdir / MARKER).is_file():
            raise InputError(f"{workdir}: exists and was not made by 'soar demo'; choose another --workdir")
        shutil.rmtree(workdir)
    private_dir(workdir)  # its store and reports are soar's records: 0700, wherever --workdir puts it
    (workdir / MARKER).write_text("made by soar demo; removed by the next run\n", encoding="utf-8")


def demo_environment(base: Settings, workdir: Path, *, lab_inventory: Path | None) -> dict[str, str]:
    """The settings the demo runs with, as SOAR_* variables (tasks read settings themselves)."""
    content_root = base.content_root if (base.content_root / "rules").is_dir() else SHIPPED_ROOT
    env = {
        "SOAR_CONTENT_ROOT": str(content_root.resolve()),
        "SOAR_STATE_DIR": str(workdir / "state"),
        "SOAR_STORE": "sqlite",
        "SOAR_CELERY_EAGER": "true",
        "SOAR_RESPONSE_DRY_RUN": "false" if lab_inventory else "true",
        "SOAR_DETECTION_INTERVAL": str(CYCLE_SECONDS),
        "SOAR_DETECTION_LOOKBACK": str(CYCLE_SECONDS),
        "SOAR_SLACK_CHANNEL_INTERVAL": "0",
    }
    if lab_inventory is not None:
        env["SOAR_INVENTORY_FILE"] = str(lab_inventory)
        env["SOAR_SSH_KNOWN_HOSTS"] = str(lab_inventory.parent / "known_hosts")
    else:
        inventory = workdir / "inventory.yml"
        inventory.write_text(yaml.safe_dump(DEMO_INVENTORY, sort_keys=False), encoding="utf-8")
        env["SOAR_INVENTORY_FILE"] = str(inventory)
    return env


@contextmanager
def environment(values: dict[str, str]) -> Iterator[Settings]:
    """Run with these settings in this process (and its eager tasks), then restore the old ones."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    get_settings.cache_clear()
    try:
        settings = get_settings()
        from soar.dispatch import configure

        configure(settings)
        yield settings
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        get_settings.cache_clear()


def lab_inventory(root: Path = SHIPPED_ROOT) -> Path:
    """The lab's inventory with the scenario's host names as aliases of the lab hosts."""
    lab = root / ".cache" / "lab" / "inventory.yml"
    if os.geteuid() != 0 or not lab.is_file():
        raise InputError("--lab needs root and the lab hosts: run 'scripts/lab.sh up' (iproute2, sshd) first")
    data = yaml.safe_load(lab.read_text(encoding="utf-8"))
    mapping = {"web1": "web-01", "db1": "db-01", "app1": "ci-01", "bastion": "bastion-01"}
    for name, alias in mapping.items():
        host = data.get("hosts", {}).get(name)
        if isinstance(host, dict):
            host["aliases"] = sorted({*host.get("aliases", []), alias})
    out = lab.parent / "demo-inventory.yml"
    out.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return out


def run_demo(base: Settings, workdir: Path, *, lab: bool = False, progress: Progress | None = None) -> DemoResult:
    import time_machine

    # Registered task modules: the eager hand-off finds the playbook engine and the notifier by name.
    import soar.tasks.notify
    import soar.tasks.playbooks  # noqa: F401
    from soar.detection import compile_rules, load_rules
    from soar.detection.embedded import EventStore
    from soar.scheduler.cycle import Detector
    from soar.scheduler.loading import load_scheduled_rules
    from soar.scheduler.runtime import alert_handoff
    from soar.scheduler.sources import EmbeddedSource
    from soar.store import open_store

    say = progress or (lambda _what, _done: None)
    workdir = workdir.resolve()  # settings resolve relative paths against the content root, not the cwd
    inventory = lab_inventory() if lab else None
    prepare_workdir(workdir)
    events = shift(load_scenario(), end=datetime.now(UTC).timestamp() - 5 * CYCLE_SECONDS)
    first, last = min(_ts(e) for e in events), max(_ts(e) for e in events)

    with environment(demo_environment(base, workdir, lab_inventory=inventory)) as settings:
        say("loading the scenario into the embedded event store", 0.02)
        event_store = EventStore(workdir / "events.sqlite3")
        event_store.insert(events)
        say("compiling the shipped rules for the embedded engine", 0.05)
        scheduled, errors = load_scheduled_rules(settings)
        if errors:
            raise errors[0]
        compiled, compile_errors = compile_rules(load_rules([settings.content_root / "rules"]), target="embedded")
        if compile_errors:
            raise compile_errors[0]
        source = EmbeddedSource(event_store, {c.rule_id: c for c in compiled})
        store = open_store(settings)
        detector = Detector(settings, store, source, alert_handoff(settings, store))

        start = first - CYCLE_SECONDS  # the first cycle sets every rule's checkpoint before the attack
        ticks = [start + i * CYCLE_SECONDS for i in range(int((last - start) // CYCLE_SECONDS) + 3)]
        approved: list[str] = []
        notifications = workdir / "notifications.log"
        # Without a Slack token the notifier writes to stderr; keep that in a file and summarise it.
        with notifications.open("w", encoding="utf-8") as log, contextlib.redirect_stderr(log):
            for n, tick in enumerate(ticks):
                with time_machine.travel(tick, tick=True):
                    report = detector.run(scheduled)
                if report.created:
                    titles = sorted({_title(store, a) for a in report.created})
                    say(f"{_clock(tick)}  alert: {'; '.join(titles)}", 0.1 + 0.75 * n / len(ticks))
                with time_machine.travel(tick + APPROVAL_DELAY, tick=True):
                    approved += _approve_pending(settings, store)
            if inventory is not None:  # the lab is shared: release what the demo contained
                with time_machine.travel(ticks[-1] + 2 * CYCLE_SECONDS, tick=True):
                    released = _release_lab(settings, store)
                say(f"released on the lab: {', '.join(released) or 'nothing'}", 0.88)
        say("writing the post-incident reports", 0.9)
        result = _summarise(settings, store, workdir, len(events), len(ticks), approved)
        result.dry_run = settings.response_dry_run
        result.notifications = notifications
        say("done", 1.0)
        event_store.close()
        store.close()
    return result


def _title(store: Any, alert_id: str) -> str:
    rec = store.get("alerts", alert_id)
    if rec is None:
        return alert_id
    host = (rec.doc.get("host") or {}).get("name")
    return f"{rec.doc['rule']['title']}{f' on {host}' if host else ''}"


def notification_digest(path: Path) -> dict[str, int]:
    """How many cards, thread replies and in-place updates the on-call's channel received."""
    counts = {"cards": 0, "replies": 0, "updates": 0}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("[slack→console] "):
            continue
        if " update " in line:
            counts["updates"] += 1
        elif "(thread " in line:
            counts["replies"] += 1
        elif " post to " in line:
            counts["cards"] += 1
    return counts


def _release_lab(settings: Settings, store: Any) -> list[str]:
    """Roll back every run that contained something, the way `soar runs rollback` does."""
    from soar.playbooks import dispatch
    from soar.playbooks.rollback import request_rollback

    rt = dispatch.runtime_for(settings, store)
    released = []
    for rec in store.find("runs", limit=10_000):
        if rec.doc.get("contained_targets") and rec.doc.get("status") != "rolled_back":
            request_rollback(rt, rec.id, actor="soar-demo", reason="the demo ends: release the lab hosts")
            dispatch.kick(settings, rec.id, store=store, runtime=rt)
            released += list(rec.doc["contained_targets"])
    return sorted(set(released))


def _clock(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%H:%M:%S")


def _approve_pending(settings: Settings, store: Any) -> list[str]:
    """The on-call answers every pending approval request (as many approvers as it needs)."""
    from soar.playbooks.approvals import decide
    from soar.records import Approval

    out = []
    for rec in store.find("approvals", {"status": "pending"}, limit=1000):
        request = Approval.from_doc(rec.doc, rec.id)
        role = request.roles[0] if request.roles else "approver"
        for approver in DEMO_APPROVERS[: request.required]:
            outcome = decide(
                settings,
                store,
                request.run_id,
                request.step,
                approver=approver,
                role=role,
                decision="approve",
                via="cli",
            )
            out.append(f"{request.run_id} {request.step}: {approver} approved ({outcome.status})")
    return out


def _summarise(
    settings: Settings, store: Any, workdir: Path, n_events: int, n_cycles: int, approved: list[str]
) -> DemoResult:
    from soar.playbooks.outcomes import run_is_dry, shown_status
    from soar.records import Approval
    from soar.review.metrics import incident_metrics
    from soar.review.render import write_atomic
    from soar.review.report import build_report, report_html

    alerts = [r.doc for r in store.find("alerts", limit=10_000)]
    runs = [r.doc for r in store.find("runs", limit=10_000)]
    approvals = [Approval.from_doc(r.doc, r.id) for r in store.find("approvals", limit=10_000)]
    result = DemoResult(workdir=workdir, events=n_events, cycles=n_cycles, approvals=approved)
    result.alerts_by_rule = dict(Counter(a["rule"]["title"] for a in alerts).most_common())
    by_alert: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        by_alert.setdefault(str(run.get("alert_id")), []).append(run)
    mttd, mttc = [], []
    for alert in alerts:
        m = incident_metrics(alert, by_alert.get(alert["id"], []), approvals)
        if m.get("mttd") is not None:
            mttd.append(float(m["mttd"]))
        if m.get("mttc") is not None:
            mttc.append(float(m["mttc"]))
    result.mttd_seconds = statistics.median(mttd) if mttd else None
    result.mttc_seconds = statistics.median(mttc) if mttc else None
    reports_dir = workdir / "reports"
    reports_dir.mkdir()
    for run in sorted(runs, key=lambda r: str(r.get("created_at"))):
        dry = run_is_dry(run)
        result.runs.append(
            {
                "id": run["id"],
                "playbook": run["playbook"]["name"],
                "status": run["status"],
                "dry_run": dry,
                "shown": shown_status(run["status"], dry),
                "host": _host(run),
            }
        )
        result.actions.extend(_actions(run))
        path = reports_dir / f"{run['id']}.html"
        write_atomic(path, report_html(build_report(store, settings, run["id"])))
        result.reports.append(path)
    severity = {"critical": 4, "high": 3, "medium": 2, "low": 1}
    worst = max(
        runs,
        key=lambda r: (severity.get(str(r.get("alert", {}).get("rule", {}).get("level")), 0), _contain(r)),
        default=None,
    )
    if worst is not None:
        result.report_path = reports_dir / f"{worst['id']}.html"
    result.incidents = _incidents(settings, store, reports_dir)
    return result


def _incidents(settings: Settings, store: Any, reports_dir: Path) -> list[dict[str, Any]]:
    """The live incidents the alerts grouped into, oldest first, each with its report written."""
    from soar.incidents import KIND
    from soar.incidents.report import build_report, report_html
    from soar.review.render import write_atomic

    out = []
    for rec in store.find(KIND, {"merged_into": None}, order_by="first_at", limit=1000):
        path = reports_dir / f"incident-{rec.id}.html"
        write_atomic(path, report_html(build_report(store, settings, rec.id)))
        key = rec.doc["key"]
        out.append({"id": rec.id, "key": f"{key['field']}={key['value']}", "alerts": rec.doc["alert_count"],
                    "severity": rec.doc["severity"], "report": path})  # fmt: skip
    return out


def _host(run: dict[str, Any]) -> str:
    return str((run.get("alert") or {}).get("host", {}).get("name") or "-")


def _contain(run: dict[str, Any]) -> int:
    return sum(1 for s in (run.get("steps") or {}).values() if str(s.get("uses", "")).startswith("hosts.isolate"))


def _command(cmd: dict[str, Any]) -> str:
    """``host: argv < script`` — what runs where (the script is piped to ``sh -s`` over SSH)."""
    line = f"{cmd.get('host')}: {' '.join(cmd.get('argv') or [])}"
    return line + (f" < {cmd['stdin_script']}" if cmd.get("stdin_script") else "")


def _actions(run: dict[str, Any]) -> list[dict[str, Any]]:
    """Each host action of a run: what it did (or would do), where, and the policy's word."""
    from soar.playbooks.outcomes import planned_only, shown_status

    out = []
    for step_id, step in (run.get("steps") or {}).items():
        uses = str(step.get("uses", ""))
        if not uses.startswith("hosts."):
            continue
        for inst in step.get("instances") or []:
            result = inst.get("result") or {}
            decision = inst.get("decision") or {}
            out.append(
                {
                    "run": run["id"],
                    "host": _host(run),
                    "step": step_id,
                    "uses": uses,
                    "status": inst.get("status"),
                    "dry_run": planned_only(inst),
                    "shown": shown_status(str(inst.get("status")), planned_only(inst)),
                    "policy": decision.get("outcome"),
                    "reasons": decision.get("reasons") or [],
                    "commands": [_command(c) for c in result.get("commands") or []],
                    "verified": result.get("verified"),
                }
            )
    return out
