"""Hostile and careless input never gets a 5xx: each case answers a 4xx naming the field; a caller
without a key learns nothing about bodies; readiness shows no internal path; deletion leaves no
byte of the learner in the store's files, for many small and large learners."""

from __future__ import annotations

import json

import pytest

from .conftest import files_after_erasure

ITEM = "gen-K.CC.A.1-check"
RAW = {"content-type": "application/json"}


def native(i: int, learner: str = "s1", **extra) -> dict:
    return {"id": f"h{i}", "learner_id": learner, "item_id": ITEM, "correct": True, **extra}


def raw_event(timestamp: str) -> str:
    """A native event with the timestamp written as raw JSON text (NaN, 1e400... are not JSON values)."""
    return '{"id":"e1","learner_id":"s1","item_id":"' + ITEM + '","correct":true,"timestamp":' + timestamp + "}"


BAD_EVENTS = [
    (
        "a 401-digit timestamp",
        raw_event("9" * 401),
        "events[0].timestamp",
    ),
    (
        "NaN",
        raw_event("NaN"),
        "events[0].timestamp",
    ),
    (
        "Infinity",
        raw_event("Infinity"),
        "events[0].timestamp",
    ),
    (
        "1e400",
        raw_event("1e400"),
        "events[0].timestamp",
    ),
    ("before 1970", json.dumps(native(1, timestamp=-1)), "events[0].timestamp"),
    ("year 1", json.dumps(native(1, timestamp="0001-01-01T00:00:00")), "events[0].timestamp"),
    ("after 2100", json.dumps(native(1, timestamp="2999-01-01T00:00:00Z")), "events[0].timestamp"),
    ("a score above 1", json.dumps({**native(1), "correct": None, "score": 1.5}), "events[0].score"),
    ("correct as text", json.dumps({**native(1), "correct": "yes"}), "events[0].correct"),
    ("no learner", json.dumps({"id": "e1", "item_id": ITEM, "correct": True}), "events[0].learner_id"),
    ("an exposure with an answer", json.dumps({**native(1), "kind": "exposure"}), "events[0].correct"),
    ("an unknown kind", json.dumps({**native(1), "kind": "video"}), "events[0].kind"),
    ("an answer without one", json.dumps({**native(1), "correct": None, "kind": "answer"}), "events[0]"),
    (
        "a statement without a verb",
        json.dumps({"id": "x1", "actor": {"mbox": "mailto:a@b.c"}, "object": {"id": "https://a.example/q"}}),
        "events[0].verb.id",
    ),
    (
        "a statement without an actor id",
        json.dumps(
            {
                "id": "x1",
                "actor": {"name": "Ana"},
                "verb": {"id": "http://adlnet.gov/expapi/verbs/answered"},
                "object": {"id": "https://a.example/q"},
                "result": {"success": True},
            }
        ),
        "events[0].actor",
    ),
]


@pytest.mark.parametrize(("case", "body", "field"), BAD_EVENTS, ids=[c for c, _, _ in BAD_EVENTS])
def test_bad_events_are_a_4xx_naming_the_field(api, case, body, field) -> None:
    r = api.client.post("/v1/events", content=body, headers={**api.h(), **RAW})
    assert r.status_code == 422, (case, r.status_code, r.text)
    assert r.json()["error"]["field"] == field, (case, r.json())
    assert api.store.get("tenant-a", "s1") is None


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("PUT", "/v1/learners/s1/goal", {"standards": ["1.OA.A.1"], "date": "0001-01-01"}, "date"),
        ("PUT", "/v1/learners/s1/goal", {"standards": ["1.OA.A.1"], "date": "2100-01-01T00:00:00Z"}, "date"),
        (
            "POST",
            "/v1/learners/s1/playlist",
            {"goal": {"standards": ["1.OA.A.1"], "date": "0001-01-01T00:00:00"}},
            "goal.date",
        ),
        ("POST", "/v1/classes/c1/rotation", {"learners": ["s1"], "capacities": {"library": 3}}, "capacities.library"),
        ("POST", "/v1/learners/s1/playlist", {"session_minutes": "60"}, "session_minutes"),
        # a block of almost no time: a session of 10**101 blocks (no longer a 500, or a worker hung)
        ("POST", "/v1/classes/c1/rotation", {"learners": ["s1"], "block_minutes": 7.9e-102}, "block_minutes"),
        ("POST", "/v1/classes/c1/rotation", {"learners": ["s1"], "block_minutes": 5e-324}, "block_minutes"),
        ("POST", "/v1/classes/c1/rotation", {"learners": ["s1"], "session_minutes": 4}, "session_minutes"),
        ("POST", "/v1/learners/s1/overrides", {"lock_goal": 1}, "lock_goal"),
        ("GET", "/v1/learners/s1/profile?changed_since=1700000000", None, "query.changed_since"),
    ],
)
def test_bad_requests_are_a_4xx_naming_the_field(api, method, path, body, field) -> None:
    api.client.post("/v1/events", json=native(1), headers=api.h())
    r = api.client.request(method, path, json=body, headers=api.h())
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"] == field


def test_a_caller_without_a_key_learns_nothing_about_bodies(api) -> None:
    for path in ("/v1/events", "/xapi/statements"):
        r = api.client.post(path, content=b"{not json", headers=RAW)
        assert r.status_code == 401, (path, r.status_code)
        wrong = api.client.post(path, content=b"{not json", headers={**RAW, "Authorization": "Bearer nope"})
        assert wrong.status_code == 401
    assert api.client.post("/v1/events", content=b"{not json", headers={**api.h(), **RAW}).status_code == 422


LONE = "\\ud800"  # JSON text for half of a UTF-16 surrogate pair, alone: no character
PAIR = "\\ud83d\\ude00"  # both halves (an emoji, as ensure_ascii writers send it)
STATEMENT = (
    '{"id": "6fbd6b1b-5a53-4b63-9b5e-2c1f3b0d2a11", "actor": {"account": {"homePage": "https://lms.example", '
    '"name": "u1"}}, "verb": {"id": "http://adlnet.gov/expapi/verbs/answered"}, "object": {"id": '
    '"https://q.example/q%s"}, "result": {"success": true}}'
)
NOT_TEXT = [
    (
        "POST",
        "/v1/events",
        '[{"id": "e1", "learner_id": "s1", "item_id": "https://x.example/%s", "correct": true}]',
        "body[0].item_id",
        422,
    ),
    ("POST", "/xapi/statements", "[" + STATEMENT + "]", "body[0].object.id", 400),
    (
        "PUT",
        "/v1/items",
        '[{"id": "x1", "title": "a%s", "standards": ["3.NF.A.1"], "modality": "video", "duration_minutes": 5}]',
        "body[0].title",
        422,
    ),
    ("POST", "/v1/learners/s1", '{"interests": ["a%s"]}', "body.interests[0]", 422),
    (
        "POST",
        "/caliper/events",
        '{"sensor": "s%s", "sendTime": "2026-11-24T10:00:00Z", "dataVersion": "v", "data": []}',
        "body.sensor",
        400,
    ),
]


@pytest.mark.parametrize(("method", "path", "body", "where", "status"), NOT_TEXT, ids=[c[1] for c in NOT_TEXT])
def test_a_body_with_half_a_surrogate_pair_is_refused_naming_where(api, method, path, body, where, status) -> None:
    """JSON can escape half of a UTF-16 surrogate pair alone, which is no character and which no
    store can write: refused as the body is read (it was a 500 deep in a write), naming where;
    both halves (an escaped emoji) are a character like any other."""
    h = {**api.h(), **RAW}
    for headers in (h, api.h()):  # (the Caliper endpoint reads a body without a content type too)
        if headers is not h and path != "/caliper/events":
            continue
        r = api.client.request(method, path, content=body % LONE, headers=headers)
        assert r.status_code == status, r.text
        error = r.json()["error"]
        assert error["field"] == "body" and f"is not text: {where} holds half of a UTF-16" in error["message"]
    assert api.store.get("tenant-a", "s1") is None
    kept = api.client.request(method, path, content=body % PAIR, headers=h)
    assert kept.status_code < 500 and "is not text" not in kept.text, kept.text


def test_every_route_reads_its_body_as_text(api) -> None:
    """Every router the app includes is made by ``api_router``: its routes read bodies as text."""
    from fastapi.routing import APIRoute

    from serving.jsonbody import JsonRoute

    included = [r.original_router for r in api.client.app.router.routes if hasattr(r, "original_router")]
    routes = [r for router in included for r in router.routes if isinstance(r, APIRoute)]
    assert len(included) > 10 and len(routes) > 40
    assert all(isinstance(r, JsonRoute) for r in routes), [r.path for r in routes if not isinstance(r, JsonRoute)]
    # the app's own routes are the docs' pages, which read no body
    own = [r for r in api.client.app.router.routes if isinstance(r, APIRoute)]
    assert not [r.path for r in own if r.dependant.body_params]


BIG = "31728859216013886360303312044032"  # valid JSON, beyond a 64-bit integer


def test_an_integer_beyond_64_bits_in_a_stored_body_is_kept(api) -> None:
    """Items and CASE packages are stored as sent: an integer orjson cannot write (in a field zpd
    does not read, or one it reads as a number) is stored all the same, and read back."""
    c, h = api.client, {**api.h(), **RAW}
    item = '{"id":"big-1","title":"Big","standards":["3.NF.A.1"],"modality":"video","duration_minutes":5,"x":@BIG@}'
    r = c.put("/v1/items", content="[" + item.replace("@BIG@", BIG) + "]", headers=h)
    assert r.status_code == 200 and r.json()["created"] == 1, r.text
    listed = c.get("/v1/items?standard=3.NF.A.1&modality=video", headers=api.h()).json()["items"]
    assert "big-1" in [i["id"] for i in listed]
    package = (
        '{"CFDocument":{"identifier":"d-big","title":"Big","extensions":{"n":@BIG@}},'
        '"CFItems":[{"identifier":"i-1","humanCodingScheme":"3.NF.A.1","fullStatement":"Fractions","n":@BIG@}],'
        '"CFAssociations":[]}'
    ).replace("@BIG@", BIG)
    r = c.post("/v1/standards/import", content=package, headers=h)
    assert r.status_code == 200, r.text
    assert c.get("/v1/standards/3.NF.A.1", headers=api.h()).json()["code"] == "3.NF.A.1"
    assert api.store.get_setting("framework@tenant-a")[1].count(BIG) == 2  # as it was sent


def test_readiness_shows_no_internal_path(api) -> None:
    ready = api.client.get("/readyz").json()
    assert ready["status"] == "ready" and ready["store"] == "sqlite" and "/" not in json.dumps(ready)


def test_405_lists_every_method_of_the_path(api) -> None:
    r = api.client.request("PATCH", "/v1/items", headers=api.h())
    assert r.status_code == 405 and set(r.headers["Allow"].split(", ")) == {"GET", "PUT"}
    # a literal path is its own resource, even where a template (/v1/standards/{code}) also matches it
    r = api.client.request("OPTIONS", "/v1/standards/import", headers=api.h())
    assert r.status_code == 405 and r.headers["Allow"] == "POST"


def test_deletion_leaves_no_byte_of_many_learners(any_api, request) -> None:
    """30 learners with 1-3 events and 5 with 200 each; half of them erased (one at a time and in
    one request); after the store is closed, none of the erased learners' ids or event ids is anywhere in its files."""
    c, h, store = any_api.client, any_api.h(), any_api.store
    learners = {f"kid-{k:02d}-x9q": (1 + k % 3) for k in range(30)} | {f"big-{k}-x9q": 200 for k in range(5)}
    for learner, n in learners.items():
        events = [
            {
                "id": f"ev-{learner}-{i}",
                "learner_id": learner,
                "item_id": ITEM if i else "https://apps.example/not-in-the-catalog",  # listed as unaligned
                "correct": i % 2 == 0,
                "timestamp": 1790000000 + i,
            }
            for i in range(n)
        ]
        for start in range(0, n, 100):
            assert c.post("/v1/events", json=events[start : start + 100], headers=h).status_code == 200
    erased = [learner for k, learner in enumerate(learners) if k % 2 == 0]
    for learner in erased[::2]:  # one at a time, and the others in one request
        assert c.delete(f"/v1/learners/{learner}", headers=h).status_code == 200
    r = c.post("/v1/erasures", json={"learner_ids": [*erased[1::2], "never-seen"]}, headers=h)
    assert r.status_code == 200 and r.json() == {"erased": erased[1::2], "unknown": ["never-seen"]}
    data = files_after_erasure(request, store)
    kept = [learner for learner in learners if learner not in erased]
    assert all(store.get("tenant-a", learner) is not None for learner in kept)
    for learner in erased:
        assert learner.encode() not in data, learner
        assert f"ev-{learner}-0".encode() not in data, learner
    assert kept[0].encode() in data  # the check sees what is there
    listed = c.get("/v1/events/unaligned", headers=h).json()["activities"]
    assert [(a["events"], a["learners"]) for a in listed] == [(len(kept), len(kept))]
