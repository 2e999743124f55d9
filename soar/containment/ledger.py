"""Which containments are in force: recorded when a step's verification succeeds, released when its revert's does.

The engine calls :func:`on_step_verified` where an attempt is recorded (``soar/playbooks/execute.py``). A
containment is keyed by its action and what it contains — the parameters it shares with its revert
(``host``, ``ip``, ``user``), the host by its inventory name — so a second run isolating the same host
finds the same record (one watcher per containment), and ``release_host`` of that host ends it whichever
run releases it. Nothing here connects anywhere; a failure is logged, never raised into the run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
from collections.abc import Mapping
from typing import Any

from soar.actions.model import ActionResult, ActionSpec
from soar.actions.registry import ActionRegistry
from soar.alerts import utcnow_iso
from soar.config import Settings
from soar.records import Instance
from soar.records.containment import KIND, Check, Containment
from soar.store import Store

log = logging.getLogger("soar.containment")


def watchable(spec: ActionSpec) -> bool:
    """A containment the watch can prove again: it declares a ``verify`` (and is undone by its ``revert``)."""
    return spec.impact == "contain" and spec.verify is not None


def interval_for(settings: Settings, action: str) -> float:
    return float(settings.containment_watch_intervals.get(action, settings.containment_watch_interval))


def next_check(settings: Settings, interval: float, now: float, rng: random.Random | None = None) -> float:
    """Now plus the interval, moved by up to ``containment_watch_jitter`` of it: checks of containments applied
    together (a for_each over a fleet) spread out instead of arriving at once."""
    spread = settings.containment_watch_jitter * interval
    return now + interval + (rng or random).uniform(-spread, spread)


def _host_name(output: Mapping[str, Any]) -> str | None:
    host = output.get("host")
    if isinstance(host, Mapping):
        return str(host.get("name")) if host.get("name") else None
    return str(host) if host else None


def identity(registry: ActionRegistry, spec: ActionSpec, params: Mapping[str, Any], host: str | None) -> dict[str, Any]:
    """What a containment contains: its parameters that its revert takes too, the host as the inventory names it."""
    own = set(registry.get(spec.name).params.model_fields)
    revert = spec.revert
    shared = own & set(registry.get(revert).params.model_fields) if revert and revert in registry else own
    out = {k: params.get(k) for k in sorted(shared)}
    if host is not None and "host" in out:
        out["host"] = host
    return out


def containment_id(action: str, ident: Mapping[str, Any]) -> str:
    payload = json.dumps([action, dict(ident)], sort_keys=True, default=str, separators=(",", ":"))
    return "ctn-" + hashlib.sha256(payload.encode()).hexdigest()[:24]


def on_step_verified(
    store: Store,
    settings: Settings,
    registry: ActionRegistry,
    run_id: str,
    inst: Instance,
    spec: ActionSpec,
    result: ActionResult,
    dry_run: bool,
) -> str | None:
    """Record a verified containment, or release the ones a verified revert ended; the containment id, if any."""
    if dry_run or not result.ok or result.verified is not True:
        return None
    try:
        params = dict(inst.call_params if inst.call_params is not None else inst.params)
        host = _host_name(result.output)
        if watchable(spec):
            ident = identity(registry, spec, params, host)
            return applied(store, settings, spec, containment_id(spec.name, ident), run_id, inst, params, result)
        for watched in registry.specs():
            if watchable(watched) and watched.revert == spec.name:
                ident = identity(registry, watched, params, host)
                released(store, settings, containment_id(watched.name, ident), f"run {run_id} ({inst.key})")
    except Exception as exc:  # the watch must never fail a containment step
        log.error("run %s: could not record containment of %s: %s", run_id, spec.name, exc)
    return None


def applied(
    store: Store,
    settings: Settings,
    spec: ActionSpec,
    cid: str,
    run_id: str,
    inst: Instance,
    params: Mapping[str, Any],
    result: ActionResult,
    now: float | None = None,
) -> str:
    """A verified apply: a new containment in force, or one in force again (a re-apply after a drift is a repair)."""
    now = time.time() if now is None else now
    interval = interval_for(settings, spec.name)
    lasts = params.get(spec.lasts) if spec.lasts else None
    expires = (
        now + float(lasts) if isinstance(lasts, int | float) and not isinstance(lasts, bool) and lasts > 0 else None
    )
    boot = result.output.get("boot_id") or (result.verification.get("state") or {}).get("boot_id")
    assert spec.verify is not None

    def fresh() -> dict[str, Any]:
        return Containment(
            id=cid,
            run_id=run_id,
            step=inst.key,
            action=spec.name,
            verify=spec.verify or "",
            host=_host_name(result.output),
            params=dict(inst.params),
            applied_at=utcnow_iso(),
            applied_ts=now,
            interval=interval,
            next_check=next_check(settings, interval, now),
            expires_ts=expires,
            boot_id=str(boot) if boot else None,
        ).to_doc()

    def change(doc: dict[str, Any]) -> dict[str, Any]:
        rec = Containment.from_doc(doc, cid)
        if rec.state == "released":
            return fresh()
        if rec.last_outcome in ("drifted", "repair_failed") or rec.escalated:
            rec.add(Check(at=utcnow_iso(), outcome="repaired", found=[f"re-applied by run {run_id} ({inst.key})"]))
            rec.escalated = False
        rec.boot_id = str(boot) if boot else rec.boot_id
        rec.expires_ts = expires
        return rec.to_doc()

    store.mutate(KIND, cid, change, create=fresh)
    return cid


def released(store: Store, settings: Settings, cid: str, by: str) -> bool:
    """A verified revert (or the containment's own expiry) ended it: no longer watched."""
    done = [False]

    def change(doc: dict[str, Any]) -> dict[str, Any] | None:
        rec = Containment.from_doc(doc, cid)
        if rec.state == "released":
            return None
        rec.state, rec.released_at, rec.released_by, rec.lease = "released", utcnow_iso(), by, None
        done[0] = True
        return rec.to_doc()

    rec = store.mutate(KIND, cid, change)
    if done[0] and rec is not None:  # the card's line for the step no longer speaks of a watch
        publish(settings, store, Containment.from_doc(rec.doc, cid), "containment_released", f"by {by}")
    if done[0]:
        from soar.audit import record

        record(
            store,
            actor="automation:containment-watch",
            action="containment.released",
            target=cid,
            details={"by": by},
            settings=settings,
        )
    return done[0]


def publish(settings: Settings, store: Store, rec: Containment, kind: Any, summary: str) -> None:
    """A run event about a containment, on its run (the Slack thread: a reply, the card's line for its step)."""
    from soar.playbooks.events import make_event
    from soar.playbooks.events import publish as publish_event

    got = store.get("runs", rec.run_id)
    if got is None:
        return
    step = {"id": rec.step, "uses": rec.action, "summary": summary}
    brief = {"id": rec.id, "action": rec.action, "host": rec.host, "checks": rec.checks, "drifts": rec.drifts}
    event = make_event(kind, dict(got.doc), step=step, containment={**brief, "repairs": rec.repairs})
    publish_event(settings, rec.run_id, event)


def for_run(store: Store, run_id: str) -> list[Containment]:
    """The containments a run applied, oldest first."""
    return sorted(
        (Containment.from_doc(r.doc, r.id) for r in store.find(KIND, {"run_id": run_id}, limit=1000)),
        key=lambda c: c.applied_ts,
    )
