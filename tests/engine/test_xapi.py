"""The one xAPI reader: actors, verbs, outcomes, standards and voiding, as real LRSs send them."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest

from engine.xapi import ADL, STANDARDS_EXTENSION, VOIDED, StatementError, comparable, learner_id, parse_statement


def st(verb: str = "answered", result: dict | None = None, actor: dict | None = None, **extra) -> dict:
    body = {
        "id": "6690e6c9-3ef0-4ed3-8b37-7f3964730bee",
        "actor": actor or {"objectType": "Agent", "account": {"homePage": "https://lms.example", "name": "s-1"}},
        "verb": {"id": verb if verb.startswith("http") else ADL + verb, "display": {"en-US": verb}},
        "object": {"objectType": "Activity", "id": "https://content.example.com/activities/q3"},
        "timestamp": "2026-11-24T10:00:00.123Z",
        **extra,
    }
    if result is not None:
        body["result"] = result
    return body


def test_actors_become_pseudonymous_ids_salted_by_tenant() -> None:
    assert learner_id({"account": {"homePage": "https://lms.example", "name": " s-1 "}}) == "s-1"
    emailish = learner_id({"account": {"homePage": "https://lms.example", "name": "ana@school.org"}}, "t")
    assert emailish.startswith("a-") and "ana" not in emailish
    mail = learner_id({"mbox": "mailto:ana@school.org"}, "t")
    sha = hashlib.sha1(b"mailto:ana@school.org").hexdigest()
    assert mail == learner_id({"mbox_sha1sum": sha.upper()}, "t") != learner_id({"mbox": "mailto:ana@school.org"}, "u")
    assert learner_id({"openid": "https://id.example/ana"}, "t").startswith("o-")
    for actor, field in (
        ({"mbox": "ana@school.org"}, "actor.mbox"),
        ({"mbox_sha1sum": "xyz"}, "actor.mbox_sha1sum"),
        ({"name": "Ana"}, "actor"),
        ({"account": {"homePage": "h"}}, "actor.account.name"),
    ):
        with pytest.raises(StatementError) as err:
            learner_id(actor)
        assert err.value.field == field


@pytest.mark.parametrize(
    ("verb", "result", "kind", "outcome"),
    [
        ("answered", {"success": True}, "answer", 1.0),
        ("answered", {"score": {"scaled": 0.4}}, "answer", 0.4),
        ("answered", None, "exposure", None),
        ("attempted", {"score": {"raw": 3, "min": 0, "max": 4}}, "answer", 0.75),
        ("answered", {"score": {"raw": 7, "max": 10}}, "answer", 0.7),  # min left out: points from 0
        ("answered", {"score": {"raw": 6, "min": 2, "max": 10}}, "answer", 0.5),
        ("answered", {"score": {"raw": 3}}, "exposure", None),  # points out of nothing known: no outcome
        ("answered", {"success": True, "score": {"raw": 3}}, "answer", 1.0),
        ("answered", {"success": False, "score": {"raw": 12, "min": 10}}, "answer", 0.0),
        ("answered", {"score": {"raw": -2, "max": 10}}, "exposure", None),  # below 0 with no min
        ("completed", None, "exposure", None),
        ("completed", {"success": False}, "answer", 0.0),
        ("passed", None, "answer", 1.0),
        ("passed", {"score": {"scaled": 0.8}}, "answer", 1.0),
        ("mastered", {"success": True}, "answer", 1.0),
        ("failed", {"score": {"scaled": 0.95}}, "answer", 0.0),
        ("experienced", None, "exposure", None),
        ("launched", None, "exposure", None),
        ("progressed", {"extensions": {}}, "exposure", None),
        ("initialized", None, "ignored", None),
        ("terminated", None, "ignored", None),
        ("http://example.com/verbs/solved", {"success": True}, "answer", 1.0),
        ("http://example.com/verbs/viewed", None, "exposure", None),
    ],
)
def test_each_verb_is_the_evidence_it_says(verb, result, kind, outcome) -> None:
    parsed = parse_statement(st(verb, result), tenant="t")
    assert (parsed.kind, parsed.outcome) == (kind, outcome)
    assert parsed.item == "https://content.example.com/activities/q3" and parsed.learner == "s-1"
    assert parsed.timestamp == pytest.approx(1795514400.123)


def test_a_result_that_contradicts_the_verb_is_an_error() -> None:
    with pytest.raises(StatementError) as err:
        parse_statement(st("failed", {"success": True}))
    assert err.value.field == "result.success" and err.value.reason == "contradiction"
    # a score that breaks xAPI's rules is refused, naming the field
    for score, field, text in (
        ({"raw": 5, "min": 0, "max": 4}, "result.score.raw", "must be within min 0 and max 4, got 5"),
        ({"raw": 5, "max": 4}, "result.score.raw", "must be within max 4, got 5"),
        ({"raw": 1, "min": 2}, "result.score.raw", "must be within min 2, got 1"),
        ({"raw": 1, "min": 4, "max": 4}, "result.score.max", "must be greater than min 4"),
        ({"raw": "7", "max": 10}, "result.score.raw", "must be a number"),
        ({"raw": 7, "max": "10"}, "result.score.max", "must be a number"),
    ):
        with pytest.raises(StatementError, match=text) as err:
            parse_statement(st("answered", {"score": score}))
        assert err.value.field == field
    with pytest.raises(StatementError, match=r"statements\[3\].result.score.scaled: must be a number in \[-1, 1\]"):
        parse_statement(st("answered", {"score": {"scaled": 2}}), where="statements[3]")


def test_read_leniently_what_xapi_allows_is_set_aside_and_named() -> None:
    """How the API reads what an LRS forwards: the LRS accepted the statement and drops a refused
    batch, so a part this reader cannot use is set aside and named instead of raising."""
    contradicting = parse_statement(st("failed", {"success": True}), where="events[2]", lenient=True)
    assert contradicting.kind == "ignored" and contradicting.outcome is None
    assert contradicting.problem is not None and contradicting.problem[0] == "events[2].result.success"
    assert "says the learner failed" in contradicting.problem[1]
    body = st("answered", {"success": True})
    body["object"]["definition"] = {"extensions": {STANDARDS_EXTENSION: 42}}
    body["context"] = {"contextActivities": {"grouping": [{"id": "3.OA.A.1"}]}}
    with pytest.raises(StatementError, match="must be a standard code"):
        parse_statement(body)
    kept = parse_statement(body, lenient=True)
    assert (kept.kind, kept.outcome, kept.standards) == ("answer", 1.0, ("3.OA.A.1",))
    assert kept.problem is not None and kept.problem[0] == f"extensions[{STANDARDS_EXTENSION}]"
    assert parse_statement(st("answered", {"success": True}), lenient=True).problem is None
    # an anonymous group: about each member, as an exposure (a group's answer is not one learner's)
    group = st("answered", {"success": True})
    group["actor"] = {
        "objectType": "Group",
        "member": [{"mbox": "mailto:kid.one@school.example"}, {"account": {"homePage": "https://x", "name": "s-2"}}],
    }
    with pytest.raises(StatementError, match="anonymous group"):
        parse_statement(group, tenant="t")
    seen = parse_statement(group, tenant="t", lenient=True, where="events[0]")
    one = learner_id({"mbox": "mailto:kid.one@school.example"}, "t")
    assert (seen.kind, seen.outcome, seen.members, seen.learner) == ("exposure", None, (one, "s-2"), one)
    assert seen.problem is not None and seen.problem[0] == "events[0].actor" and "group of 2" in seen.problem[1]
    group["actor"]["member"].append({"name": "no identifier"})
    with pytest.raises(StatementError) as err:
        parse_statement(group, tenant="t", lenient=True)
    assert err.value.field == "actor.member[2]"
    with pytest.raises(StatementError, match="lists its members"):
        parse_statement({**group, "actor": {"objectType": "Group", "member": "everyone"}}, lenient=True)
    with pytest.raises(StatementError, match="about no learner") as err:  # the API names it, not stored
        parse_statement({**group, "actor": {"objectType": "Group", "member": []}}, lenient=True)
    assert err.value.reason == "no_learner"
    # what xAPI itself refuses is still refused
    with pytest.raises(StatementError, match="scaled"):
        parse_statement(st("answered", {"score": {"scaled": 2}}), lenient=True)


def test_voiding_names_its_target_and_times_may_be_missing() -> None:
    void = st(VOIDED)
    void["object"] = {"objectType": "StatementRef", "id": "e05aa883-acaf-40ad-bf54-02c8ce485fb0"}
    del void["timestamp"]
    parsed = parse_statement(void)
    assert parsed.kind == "void" and parsed.voids == "e05aa883-acaf-40ad-bf54-02c8ce485fb0" and parsed.timestamp is None
    with pytest.raises(StatementError, match="StatementRef"):
        parse_statement({**void, "object": {"id": "x"}})


@pytest.mark.parametrize(
    "obj",
    [
        {"objectType": "Agent", "mbox": "mailto:kid@school.example"},
        {"objectType": "Group", "member": [{"mbox": "mailto:kid@school.example"}]},
        {
            "objectType": "SubStatement",
            "actor": {"mbox": "mailto:kid@school.example"},
            "verb": {"id": ADL + "answered"},
            "object": {"id": "https://content.example.com/activities/q3"},
        },
        {"objectType": "StatementRef", "id": "e05aa883-acaf-40ad-bf54-02c8ce485fb0"},
    ],
)
def test_a_statement_about_a_person_or_a_statement_is_kept_not_evidence(obj) -> None:
    """xAPI allows them (a mentor's note about a learner, a comment on a statement): refusing one
    would make an LRS drop the batch it came in. No e-mail address becomes an item id."""
    parsed = parse_statement(st("answered", {"success": True}, object=obj))
    assert parsed.kind == "ignored" and parsed.outcome is None
    assert "@" not in parsed.item and parsed.item in (obj.get("id"), obj["objectType"])


@pytest.mark.parametrize(
    ("written", "meant"),
    [
        ("2026-11-24T24:00:00Z", "2026-11-25T00:00:00+00:00"),  # the end of a day
        ("2026-11-24T24:00+02:00", "2026-11-24T22:00:00+00:00"),
        ("2026-12-31T23:59:60Z", "2027-01-01T00:00:00+00:00"),  # a leap second
        ("2026-12-31T23:59:60.250Z", "2027-01-01T00:00:00.250000+00:00"),
    ],
)
def test_times_an_lrs_takes_that_a_datetime_cannot_hold(written, meant) -> None:
    """ISO-8601 allows 24:00 and a 60th second, and Ralph takes them: refusing one would make
    the LRS drop the batch it forwards. Hour 24 with minutes, or minute 60, stays an error."""
    parsed = parse_statement(st("answered", {"success": True}, timestamp=written))
    assert datetime.fromtimestamp(parsed.timestamp, UTC).isoformat() == meant
    for wrong in ("2026-11-24T24:30:00Z", "2026-11-24T09:60:00Z"):
        with pytest.raises(StatementError, match="ISO-8601"):
            parse_statement(st("answered", {"success": True}, timestamp=wrong))


def test_standards_from_the_extension_and_context_activities() -> None:
    body = st("answered", {"success": True})
    body["object"]["definition"] = {"extensions": {STANDARDS_EXTENSION: "4.NF.B.3"}}
    body["context"] = {
        "contextActivities": {"parent": [{"id": "https://case.example/uuid-1"}], "category": {"id": "3.OA.A.1"}}
    }
    assert parse_statement(body).standards == ("4.NF.B.3", "https://case.example/uuid-1", "3.OA.A.1")
    assert parse_statement(body, context_activities=False).standards == ("4.NF.B.3",)


def test_the_lrs_fields_are_not_content() -> None:
    body = st("answered", {"success": True})
    assert comparable(body) == comparable({**body, "stored": "2026-11-24T10:00:01Z", "authority": {"mbox": "x"}})
    assert comparable(body) != comparable({**body, "result": {"success": False}})
