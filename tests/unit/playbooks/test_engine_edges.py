"""The engine's edges without services: the dry-run plan, bad alerts and inputs, unreadable records left out of
recovery, playbooks named by path, decisions by an authenticated person, and the Redis target locks."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from soar.access import Principal
from soar.config import Settings
from soar.errors import ContentError, InputError, NotFound
from soar.playbooks import dispatch, engine
from soar.playbooks.approvals import APPROVALS, NotAllowed, decide, decide_as
from soar.playbooks.locks import PREFIX, RedisLocks
from soar.playbooks.records import RUNS
from soar.records import Run
from tests.playbook_kit import Content, alert
from tests.playbook_kit.testkit import calls
from tests.unit.playbooks.test_engine import CONTAIN, _run, _start

PLANNED = """\
name: planned
trigger: {rules: [rule-contain]}
inputs: {reason: "suspicious login"}
steps:
  - id: contain
    uses: testkit.contain
    with: {host: "{{ alert.host.name }}", note: "{{ inputs.reason }}"}
  - id: after
    uses: testkit.note
    with: {text: "{{ steps.contain.result.output.host }}"}
  - id: never
    uses: testkit.note
    when: "{{ alert.host.name == 'nowhere' }}"
    with: {text: "x"}
  - id: broken
    uses: testkit.note
    with: {text: "{{ alert.missing.deeper }}"}
"""


def test_the_plan_shows_each_step_its_policy_and_commands_and_touches_nothing(
    content: Content, pb_settings: Settings
) -> None:
    content.playbook("planned", PLANNED)
    rt = dispatch.runtime_for(pb_settings)
    pb = rt.playbook("planned")
    out = engine.plan(rt, pb, alert(host="web2"), inputs={"reason": "drill"})
    steps = {s["id"]: s for s in out["steps"]}
    contain = steps["contain"]
    assert (contain["status"], contain["impact"], contain["revert"]) == ("planned", "contain", "testkit.release")
    [inst] = contain["instances"]
    assert inst["params"] == {"host": "web2", "note": "drill"}
    assert inst["policy"]["outcome"] == "approve" and inst["policy"]["approvals"] == 2  # web2: prod, high criticality
    assert inst["commands"] == [{"host": "web2", "argv": ["testkit-contain", "web2"], "stdin_script": None, "note": ""}]
    assert steps["never"]["status"] == "skipped" and steps["never"]["reason"]
    assert steps["broken"]["status"] == "error" and "missing" in steps["broken"]["error"]
    assert out["matches_trigger"] and out["alert"] == {"id": "alert-1", "rule": "rule-contain"}
    assert calls(content.state) == []  # a plan runs every action dry
    with pytest.raises(InputError, match=r"input 'nope' is not declared by playbook planned \(declared: reason\)"):
        engine.plan(rt, pb, alert(), inputs={"nope": 1})


def test_an_alert_the_engine_cannot_use_is_refused_naming_the_field() -> None:
    with pytest.raises(InputError, match="an alert must be a JSON object"):
        engine.validate_alert(["not", "an", "alert"])
    with pytest.raises(InputError, match=r"^webhook: field rule: "):
        engine.validate_alert({**alert(), "rule": "not an object"}, "webhook")
    assert engine.validate_alert(alert())["id"] == "alert-1"


def test_an_unreadable_run_or_approval_does_not_keep_the_others_from_being_resumed(
    content: Content, pb_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    content.playbook("contain", CONTAIN.replace("{on_failure}", "abort"))
    rt, [waiting] = _start(pb_settings, alert(host="web1"))  # prod: waits for an approval
    rt.store.create(RUNS, "run-broken", {"id": "run-broken", "status": "running", "playbook": "not an object"})
    rt.store.create(APPROVALS, "appr-broken", {"id": "appr-broken", "status": "pending", "run_id": 7})
    with caplog.at_level(logging.ERROR, logger="soar.playbooks"):
        resumable = dict(engine.resumable_runs(rt))
    assert waiting in resumable and 0 < resumable[waiting] <= 600  # its approval's deadline
    assert "run-broken" not in resumable
    assert sum("not resuming" in r.getMessage() for r in caplog.records) == 2


def test_a_playbook_is_named_by_name_or_path_and_a_broken_one_says_what_is_wrong(
    content: Content, pb_settings: Settings
) -> None:
    path = content.playbook("contain", CONTAIN.replace("{on_failure}", "abort"))
    content.playbook("broken", "name: broken\nsteps: not-a-list\n")
    rt = dispatch.runtime_for(pb_settings)
    assert rt.playbook("contain").name == rt.playbook(str(path)).name == "contain"
    with pytest.raises(InputError, match=r"unknown playbook 'nothing' \(known: contain\)"):
        rt.playbook("nothing")
    with pytest.raises(ContentError, match="broken"):
        rt.playbook("broken")


def _person(name: str, *roles: str, **attributes: tuple[str, ...]) -> Principal:
    return Principal(name, frozenset(roles), attributes=dict(attributes))


def test_a_decision_is_taken_as_the_authenticated_person_in_scope_and_never_by_who_asked(
    content: Content, pb_settings: Settings
) -> None:
    content.playbook("contain", CONTAIN.replace("{on_failure}", "abort"))
    rt = dispatch.runtime_for(pb_settings)
    run_id, _ = engine.start_run(rt, rt.playbook("contain"), alert(host="web1"), requested_by="rita")
    dispatch.kick(pb_settings, run_id, runtime=rt)
    assert _run(rt, run_id)["status"] == "waiting_approval"

    def as_(who: Principal) -> Any:
        return decide_as(
            pb_settings, rt.store, run_id, "contain", principal=who, decision="approve", via="api", resume=True
        )

    with pytest.raises(NotFound, match=f"no run '{run_id}'"):  # out of scope reads as unknown
        as_(_person("dana", "approver", env=("dev",)))
    with pytest.raises(NotFound):
        decide_as(
            pb_settings,
            rt.store,
            "run-nope",
            "contain",
            principal=_person("carol", "admin"),
            decision="deny",
            via="cli",
        )
    with pytest.raises(NotAllowed, match="rita asked for this run, so someone else must decide"):
        as_(_person("rita", "approver"))
    with pytest.raises(NotAllowed, match="may not decide step contain"):
        as_(_person("vic", "viewer"))
    outcome = as_(_person("carol", "approver", "responder"))
    assert (outcome.status, outcome.changed, outcome.approvers[0]["approver"]) == ("approved", True, "carol")
    assert outcome.approvers[0]["role"] == "approver"  # the role the request allows, of those carol holds
    assert _run(rt, run_id)["status"] == "succeeded"  # the decision resumed the run
    refused = [r.doc for r in rt.store.find("audit", {"action": "approval.refused"}, limit=10)]
    assert {e["details"]["approver"] for e in refused} == {"rita", "vic"} and all(
        e["actor"] != "automation:playbooks" for e in refused
    )


class FakeRedis:
    """The four commands RedisLocks uses, with their semantics (SET NX PX, GET, PEXPIRE, the release script)."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.ttl: dict[str, int] = {}

    def set(self, name: str, value: str, nx: bool = False, px: int = 0) -> bool:
        if nx and name in self.data:
            return False
        self.data[name], self.ttl[name] = value.encode(), px
        return True

    def get(self, name: str) -> bytes | None:
        return self.data.get(name)

    def pexpire(self, name: str, px: int) -> None:
        self.ttl[name] = px

    def eval(self, script: str, numkeys: int, key: str, owner: str) -> int:
        if self.data.get(key) == owner.encode():  # the script: delete only the owner's lock
            del self.data[key]
            return 1
        return 0


def test_redis_target_locks_are_all_or_nothing_and_reentrant_for_their_run() -> None:
    redis = FakeRedis()
    locks = RedisLocks(redis)
    assert locks.acquire(["host:web1", "account:alice"], "run-1", ttl=30)
    assert locks.acquire(["host:web1"], "run-1", ttl=90)  # the same run re-enters (a resumed run), renewing it
    assert redis.ttl[PREFIX + "host:web1"] == 90_000
    assert not locks.acquire(["host:web2", "host:web1"], "run-2", ttl=30)
    assert PREFIX + "host:web2" not in redis.data  # what run-2 had taken before the busy one is given back
    locks.release(["host:web1", "account:alice"], "run-2")  # not its locks: nothing happens
    assert set(redis.data) == {PREFIX + "host:web1", PREFIX + "account:alice"}
    locks.release(["host:web1", "account:alice"], "run-1")
    assert redis.data == {}


def test_what_the_engine_writes_now_reads_back_typed_and_writes_back_identically(
    content: Content, pb_settings: Settings
) -> None:
    """engine_runs.json (tests/unit/records) holds runs of an earlier engine; these are this engine's own."""
    content.playbook("contain", CONTAIN.replace("{on_failure}", "rollback"))
    rt, _ = _start(pb_settings, alert("a-dev", host="dev1"))  # allowed, contained
    _start(pb_settings, alert("a-bastion", host="bastion-1"))  # refused by policy, then rolled back
    _, [waiting] = _start(pb_settings, alert("a-prod", host="web1"))  # waits for an approval, then denied
    deny = {"approver": "bob", "role": "approver", "decision": "deny", "via": "slack", "slack_user": "UBOB"}
    decide(pb_settings, rt.store, waiting, "contain", **deny)  # type: ignore[arg-type]
    docs = [r.doc for r in rt.store.find(RUNS, limit=10)]
    assert len(docs) == 3
    for doc in docs:
        run = Run.from_doc(doc)
        assert run.to_doc() == doc
        for step in run.steps.values():
            for inst in step.instances:
                assert [t.extra for t in inst.targets] == [{}] * len(inst.targets)
                assert inst.decision is not None and inst.decision.extra == {}
                assert inst.result is None or (inst.result.extra == {} and inst.result.absent == frozenset())
    denied = Run.from_doc(next(d for d in docs if d["id"] == waiting))
    assert denied.status == "rolled_back"
    [vote] = denied.steps["contain"].denied_by or []
    assert (vote.approver, vote.slack_user, "attributes" in vote.to_doc()) == ("bob", "UBOB", False)
