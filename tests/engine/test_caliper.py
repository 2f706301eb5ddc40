"""The Caliper reader: envelopes and events as sensors send them (Canvas-style 1.1, Caliper 1.0's
JSON-LD keywords and IRIs, 1.2's otherIdentifiers), with what real senders get wrong."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from engine.caliper import event_kind, launch_deployment, parse_event, read_envelope, skipped
from engine.xapi import StatementError, account_id

DATA = Path(__file__).parent / "data" / "caliper"


def envelope(name: str) -> dict:
    return json.loads((DATA / name).read_text(encoding="utf-8"))


def test_a_canvas_grade_is_an_answer_of_the_assignee_never_of_the_grader() -> None:
    data = read_envelope(envelope("canvas_grade_change.json"))
    graded = parse_event(data[0], tenant="t", where="data[0]")
    assert graded.learner == "urn:instructure:canvas:user:21070000000000002"  # a plain id: kept
    assert graded.item == "urn:instructure:canvas:assignment:21070000000000371"
    assert (graded.kind, graded.outcome, graded.id) == ("answer", 0.8, "urn:uuid:0d3b9d2e-8a6b-4a52-9c1e-5b0f2f7a6a01")
    assert graded.timestamp == 1795511761.0 and not graded.set_aside
    # a grade taken back (scoreGiven null) is no outcome: kept as an exposure, with why
    removed = parse_event(data[1], tenant="t", where="data[1]")
    assert (removed.kind, removed.outcome) == ("exposure", None)
    assert (
        removed.set_aside[0].field == "data[1].generated"
        and "scoreGiven is not a number" in removed.set_aside[0].message
    )


def test_caliper_1p0_keywords_iris_and_an_event_without_an_id() -> None:
    body = envelope("v1p0_outcome.json")
    data = read_envelope(body)
    outcome = parse_event(data[0], tenant="t", where="data[0]")
    # the Attempt's actor is the learner in 1.0; an IRI is hashed, salted with the tenant
    assert outcome.learner == account_id("https://example.edu/user/554433", "t", "caliper")
    assert outcome.learner.startswith("a-") and "example" not in outcome.learner
    assert outcome.item == "https://example.edu/american-revolution-101/assessment/001"
    assert outcome.kind == "exposure" and "resultScore" in outcome.set_aside[0].message  # 1.0's Result has no maximum
    assert outcome.id.startswith("c-")  # named by its content: a resend is the same event
    assert parse_event(copy.deepcopy(data[0]), tenant="t").id == outcome.id
    assert parse_event(data[0], tenant="u").id != outcome.id
    completed = parse_event(data[1], tenant="t")
    assert (completed.kind, completed.learner) == ("exposure", outcome.learner)
    assert event_kind(data[1]) == "exposure"


def test_a_mixed_envelope_what_is_read_and_what_is_skipped() -> None:
    data = read_envelope(envelope("mixed_v1p2.json"))  # sendTime with a +0000 offset, as moment.js writes it
    reasons = [skipped(entry) for entry in data]
    assert reasons[0] == "an entity (Person), not an event"
    assert reasons[1:4] == [
        f"{kind} is not learning evidence (see [caliper] actions)"
        for kind in ("SessionEvent/LoggedIn", "NavigationEvent/NavigatedTo", "AssessmentItemEvent/Started")
    ]
    assert reasons[4:] == [None] * 6
    read = {j: parse_event(data[j], tenant="t", where=f"data[{j}]") for j in (4, 5, 6, 7, 9)}
    ana = account_id("https://content.example.com/users/ana", "t", "caliper")
    assert {j: (s.learner == ana, s.kind, s.outcome) for j, s in read.items()} == {
        4: (True, "exposure", None),  # the answer; its grade comes in a GradeEvent
        5: (True, "answer", 0.5),  # numbers sent as text
        6: (True, "answer", 1.0),  # extra credit: full marks, with a note
        7: (False, "exposure", None),  # maxScore 0: points without a maximum
        9: (False, "answer", 1.0),
    }
    assert read[4].standards == ("https://case.example.org/uri/2db0815f-5295-5a47-a59b-8f59e6d26032",)
    assert read[6].standards == ("https://content.example.com/objectives/3-nf-a-1", "CCSS.Math.Content.3.NF.A.1")
    assert read[6].clamped and read[6].set_aside[0].field == "data[6].generated.scoreGiven"
    assert "maxScore is 0" in read[7].set_aside[0].message
    with pytest.raises(StatementError) as about:
        parse_event(data[8], tenant="t", where="data[8]")
    assert (about.value.reason, about.value.field) == ("no_learner", "data[8].object")


def test_the_learner_named_by_a_sourced_id_is_the_roster_s_student() -> None:
    data = read_envelope(envelope("mixed_v1p2.json"))
    cam = parse_event(data[9], tenant="t", learner_identifier="SisSourcedId")
    assert cam.learner == "stu-1001"  # what a OneRoster import calls sourcedId stu-1001
    lti = parse_event(data[9], tenant="t", learner_identifier="LtiUserId")
    assert lti.learner == "f81d4fae-7dec-11d0-a765-00a0c91e6bf6"
    with pytest.raises(StatementError) as missing:
        parse_event(data[5], tenant="t", learner_identifier="SisSourcedId", where="data[5]")
    assert missing.value.field == "data[5].object.assignee.otherIdentifiers"
    assert "no SisSourcedId" in missing.value.problem and missing.value.reason == "no_learner"


@pytest.mark.parametrize("given", [float("nan"), float("inf"), "1e999", "ten", None, True])
def test_a_score_that_is_no_finite_number_is_no_outcome(given) -> None:
    event = copy.deepcopy(read_envelope(envelope("mixed_v1p2.json"))[5])
    event["generated"]["scoreGiven"] = given
    read = parse_event(event, where="e")
    assert (read.kind, read.outcome) == ("exposure", None)
    assert read.set_aside[0].field == "e.generated" and "scoreGiven is not a number" in read.set_aside[0].message


def test_the_lti_user_of_the_learner_s_own_launch() -> None:
    """With ``LtiUserId``, the learner is the LTI user id: from otherIdentifiers, or from the
    launch claims of the event's federatedSession when that session is the learner's own (a
    teacher's session on a grade names the teacher)."""
    data = read_envelope(envelope("lti_launch_v1p2.json"))
    sub = "7c1e4b52-9d0b-4c0e-8a7e-2f3b1d6c9a10"
    read = parse_event(data[0], tenant="t", learner_identifier="LtiUserId")
    assert (read.learner, read.kind) == (sub, "exposure")  # LTI 1.3's sub, a plain id: kept
    assert parse_event(data[2], tenant="t", learner_identifier="LtiUserId").learner == sub  # otherIdentifiers
    with pytest.raises(StatementError) as teacher:
        parse_event(data[1], tenant="t", learner_identifier="LtiUserId", where="data[1]")
    assert teacher.value.reason == "no_learner" and teacher.value.field == "data[1].object.assignee.otherIdentifiers"
    assert "federatedSession" in teacher.value.problem
    # LTI 1.1's user_id in Caliper 1.1's launchParameters, the Person named by its IRI alone
    assert parse_event(data[3], learner_identifier="LtiUserId").learner == "0ae836b9-7fc9-4060-006f-27b2066ac545"
    # by default the Person's id, whatever the launch says
    assert parse_event(data[0], tenant="t").learner == account_id("https://lms.example.edu/users/4417", "t", "caliper")


def test_configured_actions_and_a_grader_is_no_learner() -> None:
    data = read_envelope(envelope("mixed_v1p2.json"))
    assert skipped(data[2], {"NavigationEvent/NavigatedTo": "exposure"}) is None
    viewed = parse_event(data[2], tenant="t", actions={"NavigationEvent/NavigatedTo": "exposure"})
    assert (viewed.kind, viewed.item) == ("exposure", "https://content.example.com/units/fractions")
    software = copy.deepcopy(data[4])
    software["actor"] = {"id": "https://content.example.com/bot", "type": "SoftwareApplication"}
    with pytest.raises(StatementError) as bot:
        parse_event(software, where="e")
    assert bot.value.reason == "no_learner" and "not a Person" in bot.value.problem


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        (lambda b: b.pop("sensor"), "body.sensor", "is required"),
        (lambda b: b.update(dataVersion="http://example.com/ctx/v2"), "body.dataVersion", "must be a Caliper context"),
        (lambda b: b.update(sendTime="last tuesday"), "body.sendTime", "ISO-8601"),
        (lambda b: b.update(data={"id": "x"}), "body.data", "must be a list"),
    ],
)
def test_a_bad_envelope_names_its_field(change, field, words) -> None:
    body = envelope("mixed_v1p2.json")
    change(body)
    with pytest.raises(StatementError) as bad:
        read_envelope(body)
    assert bad.value.field == field and words in bad.value.problem


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda e: e.update(eventTime="2026-13-45T00:00:00Z"), "e.eventTime"),
        (lambda e: e["object"].pop("assignable"), "e.object.assignable"),
        (lambda e: e.pop("object"), "e.object"),
    ],
)
def test_a_grade_that_cannot_be_stored_names_its_field(change, field) -> None:
    event = copy.deepcopy(read_envelope(envelope("mixed_v1p2.json"))[5])
    change(event)
    with pytest.raises(StatementError) as bad:
        parse_event(event, where="e")
    assert bad.value.field == field


def test_a_launch_from_another_platform_deployment_is_refused() -> None:
    """LTI: a tenant is an issuer and a deployment id. Given the tenant's deployments, an LTI 1.3
    launch from another is refused naming where it says so; an LTI 1.1 launch (which has no
    deployment id) and an event without a launch name none, and are read."""
    data = read_envelope(envelope("lti_launch_v1p2.json"))
    ours = {("https://lms.example.edu", "dep-2291")}
    assert launch_deployment(data[0]) == ("https://lms.example.edu", "dep-2291")
    assert launch_deployment(data[1]) is None  # its launch names no deployment
    assert launch_deployment(data[3]) is None  # LTI 1.1
    assert parse_event(data[0], tenant="t", deployments=ours).item == "https://tool.example.com/items/ratio-3"
    with pytest.raises(StatementError) as refused:
        parse_event(data[0], tenant="t", deployments={("https://lms.example.edu", "dep-1")}, where="data[0]")
    assert refused.value.reason == "other_deployment"
    assert refused.value.field == "data[0].federatedSession.messageParameters"
    assert "'dep-2291'" in refused.value.problem and "'https://lms.example.edu'" in refused.value.problem
    other_platform = {("https://canvas.example.com", "dep-2291")}  # the same id from another platform is not it
    with pytest.raises(StatementError, match="none of this tenant's LTI deployments"):
        parse_event(data[0], tenant="t", deployments=other_platform)
    for j in (2, 3):
        assert parse_event(data[j], tenant="t", deployments=other_platform).learner
