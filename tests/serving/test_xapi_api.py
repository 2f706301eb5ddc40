"""xAPI as Learning Record Stores and content platforms send it, through the API (SQLite and Redis):
actors, activity IRIs, every default verb, raw scores, exposures in a batch, voiding, unaligned
activities aligned later, idempotency per tenant, tenant-owned items, and the statements resource."""

from __future__ import annotations

import base64
import hashlib
import uuid

import orjson

from engine.xapi import ADL, STANDARDS_EXTENSION, VOIDED, learner_id
from models.base import state_to_bytes
from serving.service import unaligned_setting

from .conftest import files_after_erasure

VERSION = {"X-Experience-API-Version": "1.0.3"}
ACTIVITY = "https://content.example.com/activities/fractions/q3"


def statement(
    verb: str,
    result: dict | None = None,
    *,
    actor: dict | None = None,
    activity: str = ACTIVITY,
    standards: list[str] | None = None,
    sid: str | None = None,
    timestamp: str | None = "2026-11-24T10:00:00Z",
    **extra,
) -> dict:
    body: dict = {
        "id": sid or str(uuid.uuid4()),
        "actor": actor or {"objectType": "Agent", "account": {"homePage": "https://lms.example", "name": "ana"}},
        "verb": {"id": verb if verb.startswith("http") else ADL + verb},
        "object": {"objectType": "Activity", "id": activity},
        **extra,
    }
    if standards is not None:
        body["object"]["definition"] = {"extensions": {STANDARDS_EXTENSION: standards}}
    if result is not None:
        body["result"] = result
    if timestamp is not None:
        body["timestamp"] = timestamp
    return body


def profile(api, learner: str = "ana", who: str = "a_all") -> dict:
    r = api.client.get(f"/v1/learners/{learner}/profile", headers=api.h(who))
    assert r.status_code == 200, r.text
    return r.json()


def test_mbox_and_openid_actors_are_pseudonymous_and_no_email_is_stored(any_api, tmp_path) -> None:
    c, h = any_api.client, any_api.h()
    by_mail = statement(
        "answered", {"success": True}, actor={"mbox": "mailto:kid.one@school.example"}, standards=["3.NF.A.1"]
    )
    sha = hashlib.sha1(b"mailto:kid.one@school.example").hexdigest()
    by_sha = statement("answered", {"success": False}, actor={"mbox_sha1sum": sha}, standards=["3.NF.A.1"])
    by_openid = statement(
        "answered", {"success": True}, actor={"openid": "https://id.example/kid2"}, standards=["3.NF.A.1"]
    )
    r = c.post("/v1/events", json=[by_mail, by_sha, by_openid], headers=h)
    assert r.status_code == 200 and r.json()["accepted"] == 3 and r.json()["learners"] == 2
    kid = learner_id({"mbox": "mailto:kid.one@school.example"}, "tenant-a")
    assert profile(any_api, kid)["events"] == 2  # mbox and its sha1 are the same learner
    assert profile(any_api, learner_id({"openid": "https://id.example/kid2"}, "tenant-a"))["events"] == 1
    if any_api.store.url.startswith("sqlite"):
        data = b"".join(p.read_bytes() for p in tmp_path.glob("zpd.db*"))
        assert b"kid.one" not in data and b"school.example" not in data


def test_every_default_verb_in_one_batch(any_api) -> None:
    """Answers are folded, exposures (launched, experienced...) and ignored statements are kept
    without failing the batch; raw scores become a share of the points."""
    c, h = any_api.client, any_api.h()
    on = {"standards": ["3.NF.A.1"]}
    batch = [
        statement("launched", **on),
        statement("answered", {"success": True}, **on),
        statement("answered", {"score": {"raw": 3, "min": 0, "max": 4}}, **on),
        statement("attempted", {"score": {"scaled": 0.2}}, **on),
        statement("passed", None, **on),
        statement("failed", {"score": {"scaled": 0.95}}, **on),
        statement("completed", None, **on),
        statement("mastered", {"success": True}, **on),
        statement("experienced", None, **on),
        statement("progressed", None, **on),
        statement("initialized", None, **on),
        statement("terminated", None, **on),
        # xAPI makes a score's min and max optional: points from 0, and points out of nothing known
        # say nothing about success (the statement counts as seen; the batch is not refused)
        statement("answered", {"score": {"raw": 7, "max": 10}}, **on),
        statement("answered", {"score": {"raw": 7}}, **on),
    ]
    r = c.post("/v1/events", json=batch, headers=h)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["accepted"] == 14 and body["not_evidence"] == 7 and body["unaligned"] == 0
    stored = any_api.store.events("tenant-a", "ana")
    answers = [(e.correct, e.kind) for e in stored if e.kind == "answer"]
    assert [a for a, _ in answers] == [1.0, 0.75, 0.2, 1.0, 0.0, 1.0, 0.7]
    assert profile(any_api)["mastery"]["3.NF.A.1"]["evidence"] == 7  # only answers are evidence
    # a result that contradicts its verb is kept, as not evidence, and named (an LRS that forwards
    # drops a batch that is refused, with the good statements in it)
    contradiction = statement("failed", {"success": True}, **on)
    r = c.post("/v1/events", json=[statement("answered", {"success": True}, **on), contradiction], headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == 2 and r.json()["not_evidence"] == 1
    assert [(w["id"], w["field"]) for w in r.json()["warnings"]] == [(contradiction["id"], "events[1].result.success")]
    assert profile(any_api)["mastery"]["3.NF.A.1"]["evidence"] == 8
    assert [e.kind for e in any_api.store.events("tenant-a", "ana")][-1] == "ignored"
    beyond = c.post("/v1/events", json=statement("answered", {"score": {"raw": 11, "max": 10}}, **on), headers=h)
    assert beyond.status_code == 422 and beyond.json()["error"]["field"] == "events[0].result.score.raw"


def test_voiding_removes_the_answer_from_the_learner(any_api) -> None:
    c, h = any_api.client, any_api.h()
    wrong = statement("answered", {"success": False}, standards=["3.NF.A.1"])
    right = statement("answered", {"success": True}, standards=["3.NF.A.1"])
    c.post("/v1/events", json=[right, wrong], headers=h)
    before = profile(any_api)["mastery"]["3.NF.A.1"]
    void = statement(VOIDED, actor={"account": {"homePage": "https://lrs.example", "name": "admin"}})
    void["object"] = {"objectType": "StatementRef", "id": wrong["id"]}
    r = c.post("/v1/events", json=void, headers=h)
    assert r.status_code == 200 and r.json()["accepted"] == 1
    after = profile(any_api)["mastery"]["3.NF.A.1"]
    assert after["p"] > before["p"]  # the failure no longer counts
    # the voided statement itself, sent again, changes nothing; a void that arrives before its
    # target voids it on arrival
    early = statement(VOIDED, actor={"account": {"homePage": "https://lrs.example", "name": "admin"}})
    late = statement("answered", {"success": False}, standards=["3.NF.A.1"])
    early["object"] = {"objectType": "StatementRef", "id": late["id"]}
    assert c.post("/v1/events", json=early, headers=h).json()["voided"] == 1
    r = c.post("/v1/events", json=late, headers=h)
    assert r.status_code == 200 and r.json()["voided"] == 1 and r.json()["accepted"] == 0
    assert profile(any_api)["mastery"]["3.NF.A.1"] == after


def test_an_unaligned_activity_is_kept_listed_and_folded_once_aligned(any_api) -> None:
    c, h = any_api.client, any_api.h()
    activity = "https://content.example.com/activities/new-thing"
    r = c.post(
        "/v1/events",
        json=[
            statement("answered", {"success": True}, activity=activity),
            statement("answered", {"success": True}, activity=activity),
        ],
        headers=h,
    )
    assert r.status_code == 200 and r.json()["accepted"] == 2 and r.json()["unaligned"] == 2
    sent = r.request.content
    again = c.post("/v1/events", content=sent, headers={**h, "content-type": "application/json"}).json()
    assert again["duplicates"] == 2 and again["unaligned"] == 0  # a resend is not counted again
    listed = c.get("/v1/events/unaligned", headers=h).json()
    assert listed["activities"][0]["item_id"] == activity and listed["activities"][0]["events"] == 2
    assert listed["activities"][0]["learners"] == 1
    assert profile(any_api)["mastery"]["4.NF.B.3.a"]["evidence"] == 0
    item = {
        "id": activity,
        "title": "New thing",
        "standards": ["4.NF.B.3.a"],
        "modality": "online_practice",
        "duration_minutes": 5,
    }
    r = c.put("/v1/items", json=[item], headers=h)
    assert r.status_code == 200 and r.json()["learners_rebuilt"] == 1
    aligned = profile(any_api)["mastery"]["4.NF.B.3.a"]
    assert aligned["evidence"] == 2
    assert c.get("/v1/events/unaligned", headers=h).json()["total"] == 0
    # a late answer elsewhere refolds the learner from the log: the two still count, with the
    # catalog's standards (the log keeps them as received, without)
    late = statement("answered", {"success": False}, standards=["3.NF.A.1"], timestamp="2026-11-23T09:00:00Z")
    assert c.post("/v1/events", json=late, headers=h).json()["accepted"] == 1
    after = profile(any_api)["mastery"]["4.NF.B.3.a"]  # not the prior again (0.22)
    assert after["evidence"] == 2 and abs(after["p"] - aligned["p"]) < 0.05, (aligned, after)
    service = c.app.state.service
    view = service.load("tenant-a", "ana")
    assert view.record.state == state_to_bytes(service.rebuild(view.core, view.record).state)


def test_an_unaligned_list_kept_as_one_setting_is_moved_to_entries(any_api) -> None:
    """Stores written before per-activity entries kept the list as one JSON setting: it is moved
    (each learner's events counted from their log) and still folds the answers once aligned."""
    c, h, store = any_api.client, any_api.h(), any_api.store
    activity = "https://content.example.com/activities/older"
    for name in ("ana", "bob"):
        actor = {"objectType": "Agent", "account": {"homePage": "https://lms.example", "name": name}}
        sent = [statement("answered", {"success": True}, activity=activity, actor=actor) for _ in range(2)]
        assert c.post("/v1/events", json=sent, headers=h).json()["unaligned"] == 2
    learners = store.unaligned_learners("tenant-a", [activity])
    store.drop_unaligned("tenant-a", [activity])  # as such a store holds it
    first = 1795428000.0  # 2026-11-23T10:00:00Z
    legacy = {activity: {"events": 4, "learners": learners, "first_seen": first}}
    store.put_setting(unaligned_setting("tenant-a"), orjson.dumps(legacy).decode())
    c.app.state.service._unaligned_migrated.clear()  # a worker started on such a store
    listed = c.get("/v1/events/unaligned", headers=h).json()["activities"]
    assert listed == [{"item_id": activity, "events": 4, "learners": 2, "first_seen": "2026-11-23T10:00:00Z"}]
    assert store.get_setting(unaligned_setting("tenant-a"))[1] == "{}"
    item = {"id": activity, "title": "Older", "standards": ["4.NF.B.3.a"], "modality": "reading"}
    assert c.put("/v1/items", json=[{**item, "duration_minutes": 5}], headers=h).json()["learners_rebuilt"] == 2
    assert c.get("/v1/events/unaligned", headers=h).json()["total"] == 0


def test_idempotency_per_tenant(any_api) -> None:
    c, h = any_api.client, any_api.h()
    native = {"id": "n-1", "learner_id": "ana", "item_id": "gen-K.CC.A.1-check", "correct": True}
    assert c.post("/v1/events", json=native, headers=h).json()["accepted"] == 1
    retry = c.post("/v1/events", json=native, headers=h)  # no timestamp: the receive time is not content
    assert retry.status_code == 200 and retry.json()["duplicates"] == 1 and retry.json()["accepted"] == 0
    other = c.post("/v1/events", json={**native, "learner_id": "bob"}, headers=h)
    assert other.status_code == 409 and other.json()["error"]["code"] == "conflicting_event"
    assert any_api.store.get("tenant-a", "bob") is None  # refused whole
    again = statement("answered", {"success": True}, standards=["3.NF.A.1"])
    c.post("/v1/events", json=again, headers=h)
    redelivered = {**again, "stored": "2026-11-24T10:00:05Z", "authority": {"mbox": "mailto:lrs@x.example"}}
    assert c.post("/v1/events", json=redelivered, headers=h).json()["duplicates"] == 1
    assert c.post("/v1/events", json=native, headers=any_api.h("b_all")).json()["accepted"] == 1  # other tenant


def test_tenant_items_are_invisible_to_other_tenants(any_api) -> None:
    c = any_api.client
    item = {
        "id": "https://a.example/activity/7",
        "title": "A's own",
        "standards": ["3.NF.A.1"],
        "modality": "online_practice",
        "duration_minutes": 5,
    }
    assert c.put("/v1/items", json=[item], headers=any_api.h("a_all")).json()["created"] == 1
    mine = c.get("/v1/items?standard=3.NF.A.1&own=true", headers=any_api.h("a_all")).json()
    assert [i["id"] for i in mine["items"]] == [item["id"]]
    theirs = c.get("/v1/items?standard=3.NF.A.1", headers=any_api.h("b_all")).json()
    assert item["id"] not in {i["id"] for i in theirs["items"]}
    answer = {"id": "x-1", "learner_id": "bob", "item_id": item["id"], "correct": True}
    assert c.post("/v1/events", json=answer, headers=any_api.h("b_all")).json()["unaligned"] == 1
    assert (
        c.post("/v1/events", json={**answer, "learner_id": "ana"}, headers=any_api.h("a_all")).json()["unaligned"] == 0
    )
    # a statement that names its standard registers its activity in the sender's catalog only
    named = statement("answered", {"success": True}, activity="https://b.example/act/1", standards=["4.NF.B.3.a"])
    assert c.post("/v1/events", json=named, headers=any_api.h("b_all")).json()["unaligned"] == 0
    assert "https://b.example/act/1" in {
        i["id"] for i in c.get("/v1/items?own=true", headers=any_api.h("b_all")).json()["items"]
    }
    assert "https://b.example/act/1" not in {
        i["id"] for i in c.get("/v1/items?own=true", headers=any_api.h("a_all")).json()["items"]
    }


def test_the_statements_resource_speaks_xapi(any_api) -> None:
    c = any_api.client
    key = any_api.keys["a_ingest"]
    basic = {"Authorization": "Basic " + base64.b64encode(f"lrs:{key}".encode()).decode(), **VERSION}
    one = statement("answered", {"success": True}, standards=["3.NF.A.1"])
    r = c.post("/xapi/statements", json=[one], headers=basic)
    assert r.status_code == 200 and r.json() == [one["id"]] and r.headers["X-Experience-API-Version"] == "1.0.3"
    no_id = statement("answered", {"success": True}, standards=["3.NF.A.1"])
    del no_id["id"]
    r = c.post("/xapi/statements", json=no_id, headers=basic)
    assert r.status_code == 200 and uuid.UUID(r.json()[0])  # the id an LRS would assign
    unversioned = c.post("/xapi/statements", json=one, headers={"Authorization": basic["Authorization"]})
    assert unversioned.status_code == 200  # an LRS forwarding may not say its version (Ralph does not)
    bad = c.post("/xapi/statements", json=one, headers={**basic, "X-Experience-API-Version": "0.95"})
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "header.X-Experience-API-Version"
    # what xAPI refuses is refused (400); what it allows is kept, a contradiction as not evidence
    invalid = c.post("/xapi/statements", json=statement("answered", {"score": {"scaled": 1.5}}), headers=basic)
    assert invalid.status_code == 400 and invalid.json()["error"]["field"] == "events[0].result.score.scaled"
    odd = statement("failed", {"success": True})
    assert c.post("/xapi/statements", json=odd, headers=basic).json() == [odd["id"]]
    conflicting = c.post("/xapi/statements", json={**one, "result": {"success": False}}, headers=basic)
    assert conflicting.status_code == 409
    sid = str(uuid.uuid4())
    put = c.put(
        f"/xapi/statements?statementId={sid}", json=statement("answered", {"success": False}, sid=sid), headers=basic
    )
    assert put.status_code == 204
    other_id = c.put(f"/xapi/statements?statementId={uuid.uuid4()}", json=one, headers=basic)
    assert other_id.status_code == 409  # the body's id is not the statementId
    wrong_key = {"Authorization": "Basic " + base64.b64encode(b"lrs:nope").decode(), **VERSION}
    denied = c.post("/xapi/statements", json=one, headers=wrong_key)
    assert denied.status_code == 401 and "Basic" in denied.headers["WWW-Authenticate"]
    assert c.get("/xapi/about").json() == {"version": ["1.0.3", "2.0.0"]}


def test_a_batch_longer_than_max_batch_events_is_stored_in_parts(tmp_path, shared_engine) -> None:
    """An LRS forwards what a platform posted in one request (a backfill of thousands) and drops
    it when it is refused: the statements resource stores any batch within the body limit,
    ``max_batch_events`` at a time. A part refused names the index in the whole batch and says
    which parts were stored; the corrected batch sent again stores the rest, the stored part
    counting as duplicates."""
    from configs import load_config
    from serving.stores import open_store
    from tests.serving.conftest import make_api

    config = load_config(env={})
    config = config.model_copy(update={"serving": config.serving.model_copy(update={"max_batch_events": 3})})
    store = open_store(f"sqlite:///{tmp_path / 'zpd.db'}")
    api = make_api(store, shared_engine, config)
    on = {"standards": ["3.NF.A.1"]}
    with api.client as c:
        basic = {
            **VERSION,
            "Authorization": "Basic " + base64.b64encode(f"lrs:{api.keys['a_ingest']}".encode()).decode(),
        }
        batch = [statement("answered", {"success": k % 2 == 0}, **on) for k in range(8)]
        assert c.post("/v1/events", json=batch, headers=api.h()).status_code == 413  # the native API keeps its limit
        broken = [*batch[:5], statement("answered", {"score": {"scaled": 9}}, **on), *batch[6:]]
        r = c.post("/xapi/statements", json=broken, headers=basic)
        assert r.status_code == 400, r.text
        error = r.json()["error"]
        assert error["field"] == "events[5].result.score.scaled" and "statements 0-2 were stored" in error["message"]
        assert store.get("tenant-a", "ana").event_count == 3
        r = c.post("/xapi/statements", json=batch, headers=basic)
        assert r.status_code == 200 and r.json() == [s["id"] for s in batch]
        assert store.get("tenant-a", "ana").event_count == 8
        assert [e.correct for e in store.events("tenant-a", "ana")] == [1.0, 0.0] * 4
    store.close()


def test_an_anonymous_group_statement_is_kept_for_each_member(any_api) -> None:
    """xAPI allows a group as the actor (group work). It is no one learner's answer: each member
    gets it as an exposure (the activity was seen), under an id of its own derived from the
    statement's, so the batch is not refused and a resend is a duplicate."""
    c, h = any_api.client, any_api.h()
    on = {"standards": ["3.NF.A.1"]}
    members = [
        {"mbox": "mailto:kid.one@school.example"},
        {"account": {"homePage": "https://lms.example", "name": "s-2"}},
    ]
    group = statement("answered", {"success": True}, actor={"objectType": "Group", "member": members}, **on)
    alone = statement("answered", {"success": True}, **on)
    r = c.post("/v1/events", json=[group, alone], headers=h)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["accepted"], body["learners"], body["not_evidence"]) == (3, 3, 2)
    assert [w["field"] for w in body["warnings"]] == ["events[0].actor"]
    kid = learner_id(members[0], "tenant-a")
    for learner in (kid, "s-2"):
        stored = any_api.store.events("tenant-a", learner)
        assert [(e.kind, e.id.split(":")[0]) for e in stored] == [("exposure", group["id"])]
    assert any_api.store.events("tenant-a", "ana")[0].kind == "answer"
    again = c.post("/v1/events", json=[group, alone], headers=h)
    assert again.status_code == 200 and (again.json()["accepted"], again.json()["duplicates"]) == (0, 3)


def _group_statement(members: list[dict]) -> dict:
    return statement(
        "answered", {"success": True}, actor={"objectType": "Group", "member": members}, standards=["3.NF.A.1"]
    )


def _void(target: str) -> dict:
    void = statement(VOIDED, actor={"account": {"homePage": "https://lrs.example", "name": "admin"}})
    void["object"] = {"objectType": "StatementRef", "id": target}
    return void


MEMBERS = [{"mbox": "mailto:kid.one@school.example"}, {"account": {"homePage": "https://lms.example", "name": "s-2"}}]


def test_a_void_of_a_group_statement_reaches_every_member(any_api) -> None:
    """A voiding statement names the group statement's id, which no member's copy has: it is
    stored with each member as a void of their copy, whichever arrives first."""
    c, h, store = any_api.client, any_api.h(), any_api.store
    kid = learner_id(MEMBERS[0], "tenant-a")
    group = _group_statement(MEMBERS)
    assert c.post("/v1/events", json=group, headers=h).json()["accepted"] == 2
    void = _void(group["id"])
    r = c.post("/xapi/statements", json=void, headers={**h, **VERSION})
    assert r.status_code == 200, r.text
    for member in (kid, "s-2"):
        log = store.events("tenant-a", member)
        assert [e.kind for e in log] == ["exposure", "void"]
        assert log[1].voids == log[0].id and log[0].id.startswith(group["id"] + ":")
    again = c.post("/v1/events", json=void, headers=h).json()
    assert (again["accepted"], again["duplicates"], again["voided"]) == (0, 2, 0)

    # the void first: the members' copies are voided on arrival, and nothing of them is stored
    later = _group_statement(MEMBERS)
    early = _void(later["id"])
    assert c.post("/v1/events", json=early, headers=h).json()["voided"] == 1
    r = c.post("/v1/events", json=later, headers=h)
    assert r.status_code == 200 and (r.json()["accepted"], r.json()["voided"]) == (0, 2)
    assert [e.kind for e in store.events("tenant-a", "s-2")] == ["exposure", "void"]

    # a group statement's id is an event id like any other: unique per tenant
    taken = {"id": "taken-1", "learner_id": "ana", "item_id": "3.NF.A.1-p1", "correct": True}
    assert c.post("/v1/events", json=taken, headers=h).status_code == 200
    clash = _group_statement(MEMBERS)
    clash["id"] = "taken-1"
    r = c.post("/v1/events", json=clash, headers=h)
    assert r.status_code == 409 and "taken-1" in r.json()["error"]["message"]


def test_erasing_a_member_takes_them_out_of_the_group_record(any_api, request) -> None:
    from serving.groups import group_setting

    c, h, store = any_api.client, any_api.h(), any_api.store
    members = [MEMBERS[0], {"account": {"homePage": "https://lms.example", "name": "erased-member-77"}}]
    kid = learner_id(members[0], "tenant-a")
    group = _group_statement(members)
    c.post("/v1/events", json=group, headers=h).raise_for_status()
    name = group_setting("tenant-a", group["id"])
    assert sorted(orjson.loads(store.get_setting(name)[1])["members"]) == sorted([kid, "erased-member-77"])
    assert c.delete("/v1/learners/erased-member-77", headers=h).status_code == 200
    assert orjson.loads(store.get_setting(name)[1])["members"] == [kid]
    assert b"erased-member-77" not in files_after_erasure(request, store)  # the record's older bytes too
    r = c.post("/v1/events", json=_void(group["id"]), headers=h).json()
    assert (r["accepted"], r["voided"]) == (1, 0)
    assert store.events("tenant-a", "erased-member-77") == []
    assert c.delete(f"/v1/learners/{kid}", headers=h).status_code == 200
    assert store.get_setting(name) is None
    # the statement's members are all gone: a void of it is acknowledged, with nothing to void
    r = c.post("/v1/events", json=_void(group["id"]), headers=h).json()
    assert (r["accepted"], r["voided"]) == (0, 1)


def test_a_target_claimed_while_its_void_looks_is_voided(any_api, monkeypatch) -> None:
    """A void that finds no holder of its target claims it; when the target's own batch claimed
    it in between, the void goes to the target's learner instead of waiting for it forever."""
    c, h, store = any_api.client, any_api.h(), any_api.store
    wrong = statement("answered", {"success": False}, standards=["3.NF.A.1"])
    c.post("/v1/events", json=wrong, headers=h).raise_for_status()
    real, looks = store.event_owners, []

    def first_look_misses(tenant: str, ids: list[str]) -> dict[str, str]:
        looks.append(ids)
        return {i: o for i, o in real(tenant, ids).items() if len(looks) > 1 or i != wrong["id"]}

    monkeypatch.setattr(store, "event_owners", first_look_misses)
    r = c.post("/v1/events", json=_void(wrong["id"]), headers=h).json()
    assert (r["accepted"], r["voided"]) == (1, 0)
    monkeypatch.undo()
    assert [e.kind for e in store.events("tenant-a", "ana")] == ["answer", "void"]
    assert profile(any_api)["mastery"]["3.NF.A.1"]["evidence"] == 0


def test_two_batches_adding_members_to_one_group_record_both_count(any_api, monkeypatch) -> None:
    """The same group statement sent twice at once with other members (two LRSs, a retry with a
    corrected group): each batch adds its members to the record, neither write loses the other's."""
    from serving.groups import group_members, record_groups

    store, looks = any_api.store, []
    real = store.get_setting

    def interleaved(name: str):
        found = real(name)
        looks.append(name)
        if len(looks) == 1:  # the other batch writes between this one's read and its write
            record_groups(store, "tenant-a", {"g-1": ["ben"]})
        return found

    monkeypatch.setattr(store, "get_setting", interleaved)
    record_groups(store, "tenant-a", {"g-1": ["ana"]})
    monkeypatch.undo()
    assert group_members(store, "tenant-a", "g-1") == ["ana", "ben"]


def test_a_batch_with_statements_about_people_is_stored_whole(any_api) -> None:
    """A mentor's note about a learner (an Agent object) and a statement about a statement (a
    SubStatement) are valid xAPI: the batch an LRS forwards with them is stored, they are kept as
    not evidence, and the answer beside them counts."""
    c, h = any_api.client, {**any_api.h(), **VERSION}
    mentor = {"account": {"homePage": "https://lms.example", "name": "t-9"}}
    note = statement("http://id.tincanapi.com/verb/mentored", actor=mentor)
    note["object"] = {"objectType": "Agent", "mbox": "mailto:kid.one@school.example"}
    sub = statement("answered", {"success": True})
    sub["object"] = {
        "objectType": "SubStatement",
        "actor": mentor,
        "verb": {"id": ADL + "answered"},
        "object": {"id": ACTIVITY},
    }
    answer = statement("answered", {"success": True}, standards=["3.NF.A.1"])
    r = c.post("/xapi/statements", json=[note, sub, answer], headers=h)
    assert r.status_code == 200, r.text
    assert [e.kind for e in any_api.store.events("tenant-a", "t-9")] == ["ignored"]
    assert [e.kind for e in any_api.store.events("tenant-a", "ana")] == ["ignored", "answer"]
    assert profile(any_api)["mastery"]["3.NF.A.1"]["evidence"] == 1


def test_a_long_activity_iri_is_an_item_id_like_any_other(any_api) -> None:
    """Players put their parameters in the activity IRI (726 characters here): the statement is
    stored, its activity listed as unaligned, aligned and withdrawn by that id."""
    from urllib.parse import quote

    c, h = any_api.client, any_api.h()
    iri = "https://player.example.com/h5p/embed?" + "&".join(f"p{i}=v{i:04d}" for i in range(70))
    assert 700 < len(iri) <= 8192
    r = c.post(
        "/xapi/statements", json=statement("answered", {"success": True}, activity=iri), headers={**h, **VERSION}
    )
    assert r.status_code == 200, r.text
    assert c.get("/v1/events/unaligned", headers=h).json()["activities"][0]["item_id"] == iri
    item = {"id": iri, "title": "Long", "standards": ["3.NF.A.1"], "modality": "online_practice", "duration_minutes": 5}
    assert c.put("/v1/items", json=[item], headers=h).json()["learners_rebuilt"] == 1
    assert profile(any_api)["mastery"]["3.NF.A.1"]["evidence"] == 1
    assert c.delete(f"/v1/items/{quote(iri, safe='')}", headers=h).json()["withdrawn"] == iri


def test_a_group_statement_without_members_is_named_not_stored(any_api) -> None:
    """An anonymous group with an empty member list is valid for an LRS (Ralph takes it) but about
    no learner: the batch it came in is stored, and the answer names it in its warnings."""
    c, h = any_api.client, any_api.h()
    nobody = statement("answered", {"success": True}, actor={"objectType": "Group", "member": []})
    answer = statement("answered", {"success": True}, standards=["3.NF.A.1"])
    r = c.post("/v1/events", json=[nobody, answer], headers=h)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["accepted"], body["learners"]) == (1, 1)
    assert [(w["id"], w["field"]) for w in body["warnings"]] == [(nobody["id"], "events[0].actor.member")]
    assert "about no learner" in body["warnings"][0]["message"]
    r = c.post("/xapi/statements", json=[nobody], headers={**h, **VERSION})
    assert r.status_code == 200 and r.json() == [nobody["id"]]
