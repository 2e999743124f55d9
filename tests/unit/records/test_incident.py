"""The incident record: round trip, errors naming kind, id and field, transitions that say when they change
nothing, merges that fold the other incident's notes, owner and triage."""

from __future__ import annotations

import pytest

from soar.errors import RecordError
from soar.records.incident import Incident, Note, public, scope_source

KEY = {"field": "host.name", "value": "web1"}


def _incident(**extra: object) -> Incident:
    inc = Incident.new("inc-1", KEY, "2026-12-01T10:00:00.000Z", "2026-12-01T10:05:00.000Z")
    for name, value in extra.items():
        setattr(inc, name, value)
    return inc


def test_round_trip_keeps_unknown_fields_and_nulls() -> None:
    doc = {**_incident(owner="ana").to_doc(), "from_the_future": {"x": 1}, "closed_by": None}
    again = Incident.from_doc(doc).to_doc()
    assert again == doc


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("status", "pending", "field status: expected one of 'open', 'acknowledged', 'closed'"),
        ("notes", [{"id": "n", "at": "t", "by": 3, "text": "x"}], "field notes[0].by: expected a string, got int"),
        ("schema_version", 9, "field schema_version: version 9 was written by a newer soar"),
        ("scope_sources", ["web1"], "field scope_sources[0]: expected an object, got str"),
    ],
)
def test_a_malformed_document_names_kind_id_and_field(field: str, value: object, problem: str) -> None:
    with pytest.raises(RecordError, match=r"incidents/inc-1: " + problem.replace("[", r"\[").replace("]", r"\]")):
        Incident.from_doc({**_incident().to_doc(), field: value})


def test_transitions_change_once_and_keep_the_first_time() -> None:
    inc = _incident()
    assert inc.triage("acknowledged", "ana", "t1") and not inc.triage("acknowledged", "bo", "t2")
    assert (inc.status, inc.acknowledged_by, inc.acknowledged_at) == ("acknowledged", "ana", "t1")
    assert inc.triage("closed", "bo", "t3") and not inc.triage("closed", "bo", "t4")
    assert inc.reopen("cy", "t5") and (inc.status, inc.closed_at, inc.reopened_by) == ("acknowledged", None, "cy")
    assert not inc.reopen("cy", "t6")
    assert inc.assign("ana", "bo", "t7") and not inc.assign("ana", "bo", "t8")
    note = Note.new("ana", "<b>seen</b>", "t9")
    assert inc.add_note(note) and not inc.add_note(note)  # a retried note is added once


def test_a_merge_folds_the_other_incident() -> None:
    mine = _incident(scope_sources=[{"host": {"name": "web1"}}], severity="low")
    other = _incident(
        id="inc-0", status="closed", owner="ana", severity="critical", first_at="2026-12-01T09:00:00.000Z",
        notes=[Note.new("ana", "first", "t0")], scope_sources=[{"host": {"name": "web2"}}],
    )  # fmt: skip
    mine.take_over(other)
    assert (mine.first_at, mine.severity, mine.owner, mine.status) == (
        "2026-12-01T09:00:00.000Z",
        "critical",
        "ana",
        "open",
    )
    assert [n.text for n in mine.notes] == ["first"] and len(mine.scope_sources) == 2
    mark = Incident.new("inc-2", KEY, "2026-12-06T20:00:00.000Z", "2026-12-06T20:00:00.000Z")  # no alert joined it
    mine.take_over(mark)
    assert mine.last_at == "2026-12-01T10:00:00.000Z"  # a merge mark's write time is no alert's time


def test_the_scope_source_is_the_host_and_the_rules_attributes_only() -> None:
    alert = {
        "host": {"name": "web1", "ip": ["10.0.0.1"], "os": {"x": 1}},
        "user": {"name": "bob"},
        "inventory": {"rule": {"attributes": {"team": "web"}}, "hosts": []},
        "attributes": {"env": "dev"},  # the alert's own claims: never a scope
    }
    assert scope_source(alert) == {
        "host": {"ip": ["10.0.0.1"], "name": "web1"},
        "inventory": {"rule": {"attributes": {"team": "web"}}},
    }
    assert "scope_sources" not in public(_incident().to_doc()) and "schema_version" not in public(_incident().to_doc())
