"""The thread state machine: events applied in any repetition give the same card."""

from __future__ import annotations

from soar.notify.incidents import apply_event, decision_of
from soar.records import Thread


def _thread() -> Thread:
    return Thread(id="a1", channel="#soc", card="card:a1")


def _event(kind: str, **kw: object) -> dict[str, object]:
    return {"type": kind, "run_id": "run-1", "playbook": "contain", **kw}


def test_applying_an_event_twice_changes_nothing_more() -> None:
    events = [
        _event("run_started"),
        _event("step_finished", step={"id": "block", "uses": "hosts.block_ip", "status": "succeeded"}),
        _event("approval_requested", approval={"step": "isolate", "required": 2, "approvers": []}),
    ]
    once, twice = _thread(), _thread()
    for e in events:
        apply_event(once, e)
        apply_event(twice, e)
        apply_event(twice, e)
    assert once == twice
    assert once.status == "awaiting approval"
    assert once.runs["run-1"].steps["block"].status == "succeeded"
    assert once.to_doc() == twice.to_doc()


def test_n_of_m_is_final_only_with_enough_approvers_and_a_denial_is_final_at_once() -> None:
    assert decision_of({"status": "pending", "approvers": ["a"], "required": 2}) == ("pending", False)
    assert decision_of({"status": "approved", "approvers": ["a", "b"], "required": 2}) == ("approved", True)
    assert decision_of({"status": "denied", "approvers": [], "required": 2}) == ("denied", True)
    assert decision_of({"status": "expired", "approvers": [], "required": 1}) == ("expired", True)
    thread = apply_event(
        _thread(), _event("approval_decided", approval={"status": "denied", "approvers": [], "required": 2})
    )
    assert thread.status == "approval denied"


def test_events_handled_out_of_order_leave_the_state_of_the_newest() -> None:
    """Workers handle a run's events concurrently: the card must end on the last event, whatever the arrival order."""
    import itertools

    from soar.playbooks.events import make_event

    run = {"id": "run-1", "playbook": {"name": "reverse-shell"}, "alert": {"id": "a1"}}
    step = {"id": "isolate", "uses": "hosts.isolate_host"}
    events = [
        make_event("run_started", run),
        make_event("step_started", run, step={**step, "status": "running"}),
        make_event("approval_requested", run, step=step, approval={"step": "isolate", "required": 1}),
    ]
    assert [e["seq"] for e in events] == sorted({e["seq"] for e in events}), "seq strictly increases"
    states = set()
    for order in itertools.permutations(events):
        thread = _thread()
        for e in order:
            apply_event(thread, e)
        run_state = thread.runs["run-1"]
        states.add((thread.status, run_state.status, run_state.steps["isolate"].status))
    assert states == {("awaiting approval", "awaiting_approval", "running")}

    finished = make_event("run_finished", {**run, "status": "succeeded"})
    late = dict(events[0])  # a redelivered run_started after the run finished
    thread = _thread()
    for e in [*events, finished, late]:
        apply_event(thread, e)
    assert thread.status == "succeeded"
    assert thread.runs["run-1"].status == "succeeded"


def test_a_run_moved_to_a_worker_whose_clock_is_behind_keeps_its_events_in_order() -> None:
    """The run record carries its last event's seq: the next event is later even if this clock says otherwise."""
    from soar.playbooks.events import make_event

    ahead = 10**9 * 3600  # the previous worker's clock was an hour ahead
    run = {"id": "run-1", "playbook": {"name": "contain"}, "alert": {"id": "a1"}}
    waiting = make_event("approval_requested", run, approval={"step": "isolate", "required": 1})
    run["event_seq"] = waiting["seq"] = waiting["seq"] + ahead  # as that worker saved it
    finished = make_event("run_finished", {**run, "status": "succeeded"})
    assert finished["seq"] > waiting["seq"]
    thread = _thread()
    for e in (finished, waiting):  # handled in the wrong order
        apply_event(thread, e)
    assert thread.status == "succeeded"
