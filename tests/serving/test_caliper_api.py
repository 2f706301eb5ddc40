"""The Caliper endpoint through the API (SQLite, Redis, Redis Cluster): envelopes as sensors send
them, what is stored and folded, what is skipped, idempotency, conflicts, errors naming the
field, authentication, and no e-mail address or IP stored."""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from configs import load_config
from engine.xapi import account_id

from .conftest import Api, files_after_erasure, make_api
from .test_rosters import ZIP, bundle_zip

DATA = Path(__file__).resolve().parents[1] / "engine" / "data" / "caliper"


def envelope(name: str) -> dict:
    return json.loads((DATA / name).read_text(encoding="utf-8"))


def profile(api, learner: str) -> dict:
    r = api.client.get(f"/v1/learners/{learner}/profile", headers=api.h())
    assert r.status_code == 200, r.text
    return r.json()


def test_a_mixed_envelope_is_stored_skipped_and_reported(any_api) -> None:
    c, h = any_api.client, any_api.h()
    r = c.post("/caliper/events", json=envelope("mixed_v1p2.json"), headers=h)
    assert r.status_code == 200, r.text
    body = r.json()
    assert {k: body[k] for k in ("received", "accepted", "duplicates", "unaligned", "not_evidence")} == {
        "received": 10,
        "accepted": 5,
        "duplicates": 0,
        "unaligned": 1,  # fr-2 names no standard: kept, folded once an admin aligns it
        "not_evidence": 2,  # the answer without its grade, and the grade out of 0
    }
    assert body["skipped"] == [
        {"reason": "an entity (Person), not an event", "count": 1, "data": [0]},
        {"reason": "SessionEvent/LoggedIn is not learning evidence (see [caliper] actions)", "count": 1, "data": [1]},
        {
            "reason": "NavigationEvent/NavigatedTo is not learning evidence (see [caliper] actions)",
            "count": 1,
            "data": [2],
        },
        {
            "reason": "AssessmentItemEvent/Started is not learning evidence (see [caliper] actions)",
            "count": 1,
            "data": [3],
        },
    ]
    warned = {w["field"]: w["message"] for w in body["warnings"]}
    assert set(warned) == {"data[6].generated.scoreGiven", "data[7].generated", "data[8].object"}
    assert "extra credit" in warned["data[6].generated.scoreGiven"]
    assert "not stored" in warned["data[8].object"]
    ana = account_id("https://content.example.com/users/ana", "tenant-a", "caliper")
    seen = profile(any_api, ana)
    assert seen["events"] == 3  # the answer (kept, not evidence) and its two grades
    assert seen["mastery"]["3.NF.A.1"]["evidence"] == 2
    recent = {(e["item_id"], e["kind"], e["correct"]) for e in seen["recent_evidence"]}
    assert recent == {
        ("https://content.example.com/items/fr-1", "exposure", None),
        ("https://content.example.com/items/fr-1", "answer", 0.5),
        ("https://content.example.com/quizzes/q7", "answer", 1.0),
    }
    assert {e["source"] for e in seen["recent_evidence"]} == {"caliper"}
    # the activities were aligned by their learning objectives: a CASE identifier and a CCSS spelling
    assert {tuple(e["standards"]) for e in seen["recent_evidence"]} == {("3.NF.A.1",)}
    own = c.get("/v1/items", params={"own": "true", "limit": 50}, headers=h).json()["items"]
    assert {(i["id"], i["source"]) for i in own} >= {
        ("https://content.example.com/items/fr-1", "caliper"),
        ("https://content.example.com/quizzes/q7", "caliper"),
    }
    # the sensor sends the envelope again: every event a duplicate, nothing changes
    again = c.post("/caliper/events", json=envelope("mixed_v1p2.json"), headers=h).json()
    assert (again["accepted"], again["duplicates"]) == (0, 5)
    assert profile(any_api, ana)["events"] == 3
    metrics = c.get("/metrics").text  # what an operator sees of the skipped entries
    assert 'zpd_caliper_skipped_total{kind="entity"} 2.0' in metrics
    assert 'zpd_caliper_skipped_total{kind="not_evidence"} 6.0' in metrics


def test_a_changed_event_under_a_used_id_is_a_conflict(api) -> None:
    c, h = api.client, api.h()
    first = envelope("canvas_grade_change.json")
    assert c.post("/caliper/events", json=first, headers=h).status_code == 200
    changed = copy.deepcopy(first)
    changed["data"][0]["generated"]["scoreGiven"] = 2.0
    r = c.post("/caliper/events", json=changed, headers=h)
    assert r.status_code == 409 and r.json()["error"]["code"] == "conflicting_event"
    kid = "urn:instructure:canvas:user:21070000000000002"
    assert profile(api, kid)["events"] == 1


def test_no_email_address_or_ip_of_a_canvas_event_is_stored(any_api, tmp_path) -> None:
    r = any_api.client.post("/caliper/events", json=envelope("canvas_grade_change.json"), headers=any_api.h())
    assert r.status_code == 200 and r.json()["accepted"] == 2
    assert profile(any_api, "urn:instructure:canvas:user:21070000000000002")["events"] == 1
    if any_api.store.url.startswith("sqlite"):
        data = b"".join(p.read_bytes() for p in tmp_path.glob("zpd.db*"))
        for secret in (b"school.example", b"kid.two", b"203.0.113.42", b"user_login"):
            assert secret not in data


def test_erasing_a_caliper_learner_leaves_no_trace(any_api, request) -> None:
    c, h, store = any_api.client, any_api.h(), any_api.store
    assert c.post("/caliper/events", json=envelope("canvas_grade_change.json"), headers=h).json()["accepted"] == 2
    kid = "urn:instructure:canvas:user:21070000000000002"
    assert c.delete(f"/v1/learners/{kid}", headers=h).status_code == 200
    assert c.get(f"/v1/learners/{kid}/profile", headers=h).status_code == 404
    left = files_after_erasure(request, store)
    assert kid.encode() not in left
    assert b"urn:uuid:0d3b9d2e-8a6b-4a52-9c1e-5b0f2f7a6a01" not in left  # its event's id claim too
    assert profile(any_api, "urn:instructure:canvas:user:21070000000000003")["events"] == 1  # the other stays


def test_caliper_1p0_is_read(api) -> None:
    r = api.client.post("/caliper/events", json=envelope("v1p0_outcome.json"), headers=api.h())
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["accepted"], body["not_evidence"], body["skipped"]) == (2, 2, [])
    again = api.client.post("/caliper/events", json=envelope("v1p0_outcome.json"), headers=api.h()).json()
    assert again["duplicates"] == 2  # no ids in 1.0: each event is named by its content


@contextmanager
def api_naming_learners_by(identifier: str, folder: Path, engine) -> Iterator[Api]:
    """The API on SQLite in ``folder`` with ``[caliper] learner_identifier = identifier``."""
    from serving.stores import open_store

    config = load_config(env={})
    config = config.model_copy(
        update={
            "caliper": config.caliper.model_copy(update={"learner_identifier": identifier}),
            "serving": config.serving.model_copy(update={"roster_prefetch": []}),
        }
    )
    store = open_store(f"sqlite:///{folder / 'zpd.db'}")
    api = make_api(store, dataclasses.replace(engine, config=config), config)
    with api.client:
        yield api
    store.close()


def test_learners_named_by_their_sis_ids_reach_the_roster_s_students(tmp_path, shared_engine) -> None:
    with api_naming_learners_by("SisSourcedId", tmp_path, shared_engine) as api:
        r = api.client.post("/v1/rosters", content=bundle_zip(), headers={**api.h(), **ZIP})
        assert r.status_code == 200, r.text
        body = api.client.post("/caliper/events", json=envelope("mixed_v1p2.json"), headers=api.h()).json()
        assert body["accepted"] == 1  # cam, named stu-1001 by the SIS
        assert profile(api, "stu-1001")["events"] == 1
        # the student the roster names stu-1001, in her teacher's class
        members = api.client.get("/v1/classes/class-4a", headers=api.h()).json()["members"]
        assert {"learner_id": "stu-1001", "role": "student"}.items() <= next(
            m for m in members if m["learner_id"] == "stu-1001"
        ).items()
        about_no_one = sorted(w["field"] for w in body["warnings"] if "no SisSourcedId" in w["message"])
        assert about_no_one == [
            "data[4].actor.otherIdentifiers",
            *(f"data[{j}].object.assignee.otherIdentifiers" for j in (5, 6, 7)),
        ]


def test_learners_named_by_their_lti_launch_and_no_claim_is_stored(tmp_path, shared_engine) -> None:
    with api_naming_learners_by("LtiUserId", tmp_path, shared_engine) as api:
        body = api.client.post("/caliper/events", json=envelope("lti_launch_v1p2.json"), headers=api.h()).json()
        assert (body["accepted"], body["not_evidence"]) == (3, 2)
        assert [w["field"] for w in body["warnings"]] == ["data[1].object.assignee.otherIdentifiers"]
        mia = profile(api, "7c1e4b52-9d0b-4c0e-8a7e-2f3b1d6c9a10")  # her answer and her autograded item
        assert [(e["item_id"], e["kind"]) for e in mia["recent_evidence"]] == [
            ("https://tool.example.com/items/ratio-4", "answer"),
            ("https://tool.example.com/items/ratio-3", "exposure"),
        ]
        # LTI's user id is unique within its issuer only: a second platform is refused, named
        one = {"issuer": "https://lms.example.edu", "deployment_id": "dep-2291"}
        other = {"issuer": "https://moodle.example.org", "deployment_id": "1"}
        two = api.client.put("/v1/lti/deployments", json={"deployments": [one, other]}, headers=api.h())
        assert two.status_code == 422 and two.json()["error"]["field"] == "deployments[1].issuer", two.text
        assert "unique only within its issuer" in two.json()["error"]["message"]
        assert api.client.get("/v1/lti/deployments", headers=api.h()).json() == {"deployments": []}
        same = api.client.put(
            "/v1/lti/deployments", json={"deployments": [one, {**one, "deployment_id": "7"}]}, headers=api.h()
        )
        assert same.status_code == 200, same.text
    data = b"".join(p.read_bytes() for p in tmp_path.glob("zpd.db*"))
    for claim in (b"mia.tanaka", b"Tanaka", b"Okoro", b"stu-4417", b"teacher-0b9e"):
        assert claim not in data


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ([1, 2], 400, "body"),
        (
            {
                "sensor": "s",
                "sendTime": "2026-11-24T10:00:00Z",
                "dataVersion": "http://purl.imsglobal.org/ctx/caliper/v1p1",
                "data": [],
            },
            400,
            "body.data",
        ),
        (
            {
                "sendTime": "2026-11-24T10:00:00Z",
                "dataVersion": "http://purl.imsglobal.org/ctx/caliper/v1p1",
                "data": [],
            },
            400,
            "body.sensor",
        ),
    ],
)
def test_a_bad_envelope_is_a_400_naming_its_field(api, body, status, field) -> None:
    r = api.client.post("/caliper/events", json=body, headers=api.h())
    assert r.status_code == status and r.json()["error"]["field"] == field, r.text


def test_a_bad_event_is_a_400_naming_its_place_in_data_and_nothing_is_stored(api) -> None:
    body = envelope("mixed_v1p2.json")
    body["data"][9]["eventTime"] = "soon"
    r = api.client.post("/caliper/events", json=body, headers=api.h())
    assert r.status_code == 400
    assert r.json()["error"]["field"] == "data[9].eventTime" and "data[9].eventTime" in r.json()["error"]["message"]
    ana = account_id("https://content.example.com/users/ana", "tenant-a", "caliper")
    assert api.client.get(f"/v1/learners/{ana}/profile", headers=api.h()).status_code == 404


def test_an_item_id_that_is_no_iri_names_the_assignable(api) -> None:
    body = envelope("mixed_v1p2.json")
    body["data"][9]["object"]["assignable"]["id"] = "not an iri"
    r = api.client.post("/caliper/events", json=body, headers=api.h())
    assert r.status_code == 400 and r.json()["error"]["field"] == "data[9].object.assignable.id"


def test_keys_and_scopes(api) -> None:
    c = api.client
    r = c.post("/caliper/events", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 401  # no key: nothing is said about the body
    r = c.post("/caliper/events", json=envelope("mixed_v1p2.json"), headers=api.h("a_read"))
    assert r.status_code == 403
    r = c.post(
        "/caliper/events", content=b"{not json", headers={**api.h("a_ingest"), "Content-Type": "application/json"}
    )
    assert r.status_code == 400
    r = c.post("/caliper/events", json=envelope("mixed_v1p2.json"), headers=api.h("a_ingest"))
    assert r.status_code == 200 and r.json()["accepted"] == 5


def test_content_types(api) -> None:
    """JSON and JSON-LD are read, a body without a content type too when it is JSON; another
    content type is a 415, as the Caliper endpoint contract says."""
    body = json.dumps(envelope("canvas_grade_change.json")).encode()
    answers = []
    for kind in ("application/ld+json", None, "text/plain"):
        headers = {**api.h(), **({"Content-Type": kind} if kind else {})}
        answers.append(api.client.post("/caliper/events", content=body, headers=headers))
    assert [r.status_code for r in answers] == [200, 200, 415]
    assert (answers[0].json()["accepted"], answers[1].json()["duplicates"]) == (2, 2)
    assert answers[2].json()["error"]["field"] == "Content-Type"
    r = api.client.post("/caliper/events", content=b"sensor=1", headers=api.h())
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_envelope"


def test_v1_events_take_a_caliper_grade_and_refuse_what_is_not_evidence(api) -> None:
    data = envelope("mixed_v1p2.json")["data"]
    r = api.client.post("/v1/events", json=[data[5]], headers=api.h())
    assert r.status_code == 200 and r.json()["accepted"] == 1
    r = api.client.post("/v1/events", json=[data[2]], headers=api.h())
    assert r.status_code == 422 and r.json()["error"]["field"] == "events[0]"
    assert "NavigationEvent/NavigatedTo is not learning evidence" in r.json()["error"]["message"]


def test_a_large_envelope_is_stored_in_parts(api) -> None:
    """An envelope longer than max_batch_events (a sensor's backlog): stored in parts."""
    template = envelope("mixed_v1p2.json")["data"][9]
    data = []
    for k in range(2300):
        event = copy.deepcopy(template)
        event["id"] = f"urn:uuid:00000000-0000-4000-8000-{k:012d}"
        event["object"]["assignee"]["id"] = f"https://content.example.com/users/u{k % 40}"
        data.append(event)
        if k % 100 == 0:
            data.append({"id": f"https://content.example.com/users/u{k}", "type": "Person"})
    body = {**envelope("mixed_v1p2.json"), "data": data}
    r = api.client.post("/caliper/events", json=body, headers=api.h())
    assert r.status_code == 200, r.text
    assert (r.json()["received"], r.json()["accepted"], r.json()["skipped"][0]["count"]) == (2323, 2300, 23)


def test_a_tenant_s_lti_deployments_refuse_launches_from_any_other(any_api) -> None:
    """Registered LTI deployments: an envelope with a launch from another deployment is refused
    whole (403 naming where), nothing of it stored; registered, it is read. No list: no check."""
    c, h = any_api.client, any_api.h()
    assert c.get("/v1/lti/deployments", headers=h).json() == {"deployments": []}
    school = {"issuer": "https://lms.example.edu", "deployment_id": "dep-9999", "label": "Lincoln Middle"}
    assert c.put("/v1/lti/deployments", json={"deployments": [school]}, headers=h).status_code == 200
    refused = c.post("/caliper/events", json=envelope("lti_launch_v1p2.json"), headers=h)
    assert refused.status_code == 403, refused.text
    error = refused.json()["error"]
    assert error["code"] == "foreign_deployment" and error["field"] == "data[0].federatedSession.messageParameters"
    assert "'dep-2291'" in error["message"] and "PUT /v1/lti/deployments" in error["message"]
    assert c.get("/v1/learners", headers=h).json()["learners"] == []  # nothing of the envelope was stored
    ours = {"issuer": "https://lms.example.edu", "deployment_id": "dep-2291"}
    listed = c.put("/v1/lti/deployments", json={"deployments": [school, ours, ours]}, headers=h)
    assert [d["deployment_id"] for d in listed.json()["deployments"]] == ["dep-9999", "dep-2291"]  # once each
    assert c.get("/v1/lti/deployments", headers=h).json() == listed.json()
    accepted = c.post("/caliper/events", json=envelope("lti_launch_v1p2.json"), headers=h)
    assert accepted.status_code == 200 and accepted.json()["accepted"] == 4, accepted.text
    for issuer in ("http://lms.example.edu", "https://[lms", "https://lms.example.edu/a b", "https://lms\u0085.edu"):
        bad = c.put("/v1/lti/deployments", json={"deployments": [{**ours, "issuer": issuer}]}, headers=h)
        assert bad.status_code == 422 and "issuer" in bad.json()["error"]["field"], bad.text
    assert c.put("/v1/lti/deployments", json={"deployments": []}, headers=h).json() == {"deployments": []}
    wrong = envelope("lti_launch_v1p2.json")
    wrong["data"][0]["federatedSession"]["messageParameters"][
        "https://purl.imsglobal.org/spec/lti/claim/deployment_id"
    ] = "x"
    wrong["data"][0]["id"] = "urn:uuid:0b3e7c1a-5a4e-4f0e-9a51-7d4b2f7e0c11"
    assert c.post("/caliper/events", json=wrong, headers=h).status_code == 200  # no list: not checked
