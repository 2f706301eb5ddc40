"""Tenant B never sees or changes tenant A's data, through any operation of the API.

Tenant A gets data of every kind: its own framework (with a standard of its own), its own items,
a roster (an organization, a class, a teacher, students), learners with grade, interests, goal,
overrides, a placement, native events, xAPI statements and an answer on an activity it has not
aligned. Then every operation of the OpenAPI document is called with a key of tenant B (an admin
key, and a teacher key linked to the roster id of A's teacher), with A's ids in its path, query
and body:

* B's reads answer exactly what they answered before A had any data;
* A's learners, classes, standards and items are unknown to B (404, from the route: not a
  missing route);
* B's writes under A's ids make B's own records (an event id of A's is no duplicate for B);
* no answer to B holds an id, name or title of A's that B did not send itself;
* A's records, event logs, event-id claims, settings and API views are the same afterwards.

The operations are read from ``app.openapi()``: a new route without a case below fails the sweep
until it gets one (or an entry in ``EXEMPT`` with the reason it cannot leak).
"""

from __future__ import annotations

import copy
import enum
import io
import json
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import FastAPI

from configs import load_config
from engine.case import graph_to_case
from serving.app import create_app
from serving.auth import create_key
from serving.content import catalog_setting, framework_setting, lti_setting
from serving.model_provider import ModelHolder
from serving.rosters import roster_setting
from serving.service import Engine
from serving.stores import open_store
from serving.stores.base import LearnerStore

from .conftest import Api, make_api

A, B = "tenant-a", "tenant-b"
A_DEPLOYMENT = {"issuer": "https://lms.a-district.example", "deployment_id": "a-dep-1", "label": "A's LMS"}

# Tenant A's ids, names and titles: none may reach tenant B unless B sent it itself.
A_LEARNER, A_LEARNER2, A_TEACHER = "a-ana-7f3", "a-ben-9c1", "a-teacher-6d"
A_CLASS, A_ORG = "a-class-4b", "a-org-9e"
A_PLAN_DATE = "2026-12-04"
A_ITEM, A_ITEM2 = "a-item-2e8", "a-item-5d1"
A_STANDARD = "3.NF.A.9"  # a standard only A's framework has
A_ACTIVITY = "https://a.example/activities/a-act-5c"  # answered, not aligned
A_EVENTS = tuple(f"a-ev-{n}" for n in range(5))
A_STATEMENTS = tuple(f"a5a5a5a5-0000-4000-8000-00000000000{n}" for n in range(3))
A_CALIPER = "urn:uuid:ca11ca11-0000-4000-8000-000000000001"
A_PLACEMENT_EVENT = "a-placement-7b"
A_FRAMEWORK, A_STANDARD_TEXT = "Acme secret framework", "Zanzibar fractions"
A_SCHOOL, A_CLASS_TITLE, A_INTEREST = "Lighthouse Academy", "Lantern room maths", "kites-and-clouds"
A_NAMES = {A_TEACHER: ("Zelda", "Quasimodo"), A_LEARNER: ("Anaxa", "Secretson"), A_LEARNER2: ("Bodil", "Vexley")}
A_WORDS = (
    A_FRAMEWORK,
    A_STANDARD_TEXT,
    A_SCHOOL,
    A_CLASS_TITLE,
    A_INTEREST,
    *(name for names in A_NAMES.values() for name in names),
)
SECRETS = (
    A_LEARNER,
    A_LEARNER2,
    A_TEACHER,
    A_CLASS,
    A_ORG,
    A_ITEM,
    A_ITEM2,
    A_STANDARD,
    A_ACTIVITY,
    *A_EVENTS,
    *A_STATEMENTS,
    A_PLACEMENT_EVENT,
    *A_WORDS,
)

ITEM = "gen-K.CC.A.1-check"  # a shared item
SHARED_STANDARD = "3.NF.A.2"  # the standard of A's item A_ITEM
T0 = 1_800_000_000
ZIP = {"content-type": "application/zip"}


# ---------------------------------------------------------------------------- bodies
def native(event_id: str, learner: str, item: str, correct: bool, offset: int = 0) -> dict[str, Any]:
    return {"id": event_id, "learner_id": learner, "item_id": item, "correct": correct, "timestamp": T0 + offset}


def statement(statement_id: str, learner: str, item: str, success: bool) -> dict[str, Any]:
    return {
        "id": statement_id,
        "actor": {"objectType": "Agent", "account": {"homePage": "https://lms.example", "name": learner}},
        "verb": {"id": "http://adlnet.gov/expapi/verbs/answered"},
        "object": {"objectType": "Activity", "id": item},
        "result": {"success": success},
        "timestamp": "2027-01-15T09:00:00Z",
    }


def caliper(event_id: str, learner: str, item: str, score: float) -> dict[str, Any]:
    """An envelope with one Caliper grade of ``learner`` on ``item``."""
    return {
        "sensor": "https://lms.example/sensor",
        "sendTime": "2027-01-15T09:00:05Z",
        "dataVersion": "http://purl.imsglobal.org/ctx/caliper/v1p1",
        "data": [
            {
                "id": event_id,
                "type": "GradeEvent",
                "actor": {"id": "https://lms.example/autograder", "type": "SoftwareApplication"},
                "action": "Graded",
                "object": {
                    "id": f"{item}/attempts/1",
                    "type": "Attempt",
                    "assignee": {"id": learner, "type": "Person"},
                    "assignable": {"id": item, "type": "AssessmentItem"},
                },
                "eventTime": "2027-01-15T09:00:00Z",
                "generated": {"type": "Score", "scoreGiven": score, "maxScore": 1},
            }
        ],
    }


def void(statement_id: str, target: str) -> dict[str, Any]:
    return {
        "id": statement_id,
        "actor": {"objectType": "Agent", "account": {"homePage": "https://lms.example", "name": "b-lrs"}},
        "verb": {"id": "http://adlnet.gov/expapi/verbs/voided"},
        "object": {"objectType": "StatementRef", "id": target},
    }


def item(item_id: str, standard: str, title: str) -> dict[str, Any]:
    return {
        "id": item_id,
        "title": title,
        "standards": [standard],
        "modality": "online_practice",
        "duration_minutes": 10,
    }


def roster_zip(names: dict[str, tuple[str, str]], school: str, class_title: str) -> bytes:
    """A OneRoster 1.1 bundle of one school and one class (A's ids), with the given names
    (sourcedId -> given and family name). Stored, not compressed: the ids stay readable."""
    users = ["sourcedId,role,givenName,familyName,grades"]
    users.append(f"{A_TEACHER},teacher,{names[A_TEACHER][0]},{names[A_TEACHER][1]},")
    users += [f"{s},student,{names[s][0]},{names[s][1]},03" for s in (A_LEARNER, A_LEARNER2)]
    files = {
        "orgs.csv": f"sourcedId,name,type\n{A_ORG},{school},school\n",
        "users.csv": "\n".join(users) + "\n",
        "classes.csv": f"sourcedId,title,schoolSourcedId,grades\n{A_CLASS},{class_title},{A_ORG},03\n",
        "enrollments.csv": "sourcedId,classSourcedId,userSourcedId,role\n"
        + "".join(
            f"enr-{n},{A_CLASS},{user},{role}\n"
            for n, (user, role) in enumerate([(A_TEACHER, "teacher"), (A_LEARNER, "student"), (A_LEARNER2, "student")])
        ),
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


def framework(graph: Any, title: str, extra: tuple[str, str] | None = None) -> dict[str, Any]:
    """The shared framework as a CASE package under another title, with one more standard
    (code, statement) next to 3.NF.A.2 when ``extra`` is given."""
    package = graph_to_case(graph)
    package["CFDocument"]["title"] = title
    if extra is not None:
        code, text = extra
        source = next(i for i in package["CFItems"] if i.get("humanCodingScheme") == SHARED_STANDARD)
        ident = str(uuid.uuid5(uuid.NAMESPACE_URL, f"zpd-test/{code}"))
        added = copy.deepcopy(source)
        added.update(identifier=ident, uri=f"urn:uuid:{ident}", humanCodingScheme=code, fullStatement=text)
        added.get("extensions", {}).get("zpd", {})["description"] = text
        package["CFItems"].append(added)
        parent = next(
            a
            for a in package["CFAssociations"]
            if a["associationType"] == "isChildOf" and a["originNodeURI"]["identifier"] == source["identifier"]
        )
        link = copy.deepcopy(parent)
        link_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"zpd-test/{code}/parent"))
        link.update(identifier=link_id, uri=f"urn:uuid:{link_id}")
        link["originNodeURI"] = {"title": code, "identifier": ident, "uri": f"urn:uuid:{ident}"}
        package["CFAssociations"].append(link)
    return package


# ---------------------------------------------------------------------------- the world
@pytest.fixture(params=["sqlite", "redis"])
def world(request, tmp_path, shared_engine) -> Iterator[Api]:
    """Tenants A and B on one store, with the keys of :func:`make_api` and a teacher key of B
    whose roster id is the one A's teacher has in A's roster. The engine's model holder is
    private: the sweep reloads the model (the session's engine stays as it is)."""
    url = f"sqlite:///{tmp_path / 'zpd.db'}" if request.param == "sqlite" else request.getfixturevalue("redis_url")
    store = open_store(url)
    e = shared_engine
    holder = ModelHolder(e.graph, e.catalog, "sqlite:///" + str(tmp_path / "mlflow.db"))
    holder.load_first(["bkt"])
    api = make_api(store, Engine(e.config, e.graph, e.catalog, e.index, holder))
    api.keys["b_teacher"] = create_key(store, B, ["ingest", "read", "teacher"], user=A_TEACHER)
    with api.client:
        yield api
    store.close()


def give_tenant_a_data(w: Api) -> None:
    c, h = w.client, w.h("a_all")
    graph = c.app.state.engine.graph
    # A is served a model of its own (as `PUT /v1/model/tenant` of a version in its registry does)
    c.app.state.deployment.set_tenant_model(A, "bundled")
    steps: list[tuple[str, str, dict[str, Any]]] = [
        ("POST", "/v1/standards/import", {"json": framework(graph, A_FRAMEWORK, (A_STANDARD, A_STANDARD_TEXT))}),
        (
            "PUT",
            "/v1/items",
            {"json": [item(A_ITEM, SHARED_STANDARD, "A's number line"), item(A_ITEM2, A_STANDARD, "A's own")]},
        ),
        (
            "POST",
            "/v1/rosters",
            {
                "content": roster_zip(A_NAMES, A_SCHOOL, A_CLASS_TITLE),
                "headers": ZIP,
            },
        ),
        ("POST", f"/v1/learners/{A_LEARNER}", {"json": {"interests": [A_INTEREST], "grade": "3"}}),
        (
            "POST",
            "/v1/events",
            {
                "json": [
                    native(A_EVENTS[0], A_LEARNER, ITEM, True),
                    native(A_EVENTS[1], A_LEARNER, A_ITEM, False, 60),
                    native(A_EVENTS[2], A_LEARNER2, A_ITEM2, True, 120),
                    native(A_EVENTS[3], A_LEARNER2, ITEM, True, 180),
                    native(A_EVENTS[4], A_LEARNER, A_ACTIVITY, True, 240),
                ]
            },
        ),
        (
            "POST",
            "/xapi/statements",
            {
                "json": [
                    statement(A_STATEMENTS[0], A_LEARNER, ITEM, True),
                    statement(A_STATEMENTS[2], A_LEARNER, A_ITEM, True),
                ]
            },
        ),
        (
            "PUT",
            "/xapi/statements",
            {"params": {"statementId": A_STATEMENTS[1]}, "json": statement(A_STATEMENTS[1], A_LEARNER2, ITEM, False)},
        ),
        ("POST", "/caliper/events", {"json": caliper(A_CALIPER, A_LEARNER, ITEM, 1.0)}),
        ("PUT", f"/v1/learners/{A_LEARNER}/goal", {"json": {"standards": [A_STANDARD]}}),
        ("PUT", "/v1/lti/deployments", {"json": {"deployments": [A_DEPLOYMENT]}}),
        ("POST", f"/v1/learners/{A_LEARNER}/overrides", {"json": {"pin_items": [A_ITEM], "exclude_items": [A_ITEM2]}}),
        ("POST", f"/v1/learners/{A_LEARNER2}/placement", {}),
        ("PUT", f"/v1/classes/{A_CLASS}/goal", {"json": {"standards": [SHARED_STANDARD]}}),
    ]
    for method, path, kwargs in steps:
        r = c.request(method, path, headers={**h, **kwargs.pop("headers", {})}, **kwargs)
        assert r.status_code in (200, 204), (method, path, r.status_code, r.text[:500])
    # a nightly plan of A's class, as `zpd plan-batch` stores it (Ray is not needed for the sweep)
    from serving.plans import plan_setting

    plan = c.post(f"/v1/classes/{A_CLASS}/rotation", headers=h, json={}).json()
    w.store.put_setting(
        plan_setting(A, A_CLASS, A_PLAN_DATE),
        json.dumps(
            {
                **plan,
                "date": A_PLAN_DATE,
                "planned_at": "2026-12-03T22:00:00+00:00",
                "learners": list(plan["playlists"]),
                "gps": {},
            }
        ),
    )
    # A's measure of the GPS route overhead, as `zpd plan-batch` stores it
    from serving.calibration import tenant_setting

    measured = {"route_overhead": 2.2, "quartiles": [1.7, 3.1], "samples": 31, "needed": 20}
    w.store.put_setting(tenant_setting(A), json.dumps({**measured, "measured_at": "2026-12-03T22:00:00+00:00"}))
    # written by another process, so the worker takes it in within ``[serving] sync_s``: wait for
    # that, or what A reads would change during the sweep for a reason of its own
    deadline = time.monotonic() + 30
    while c.get("/v1/gps", headers=h).json()["route_overhead"] != measured["route_overhead"]:
        assert time.monotonic() < deadline, "the worker never took in A's GPS measure"
        time.sleep(0.1)
    question = c.post(f"/v1/learners/{A_LEARNER2}/placement", headers=h).json()["question"]
    r = c.post(
        f"/v1/learners/{A_LEARNER2}/placement/answers",
        headers=h,
        json={"standard": question["standard"], "correct": True, "event_id": A_PLACEMENT_EVENT},
    )
    assert r.status_code == 200, r.text


def tenant_a_as_stored(store: LearnerStore) -> dict[str, Any]:
    """Every record, event log, claim and setting of tenant A, as the store holds them."""
    learners = sorted({A_LEARNER, A_LEARNER2} | {learner for _, learner in store.learners(A)})
    records = {}
    for learner in learners:
        record = store.get(A, learner)
        assert record is not None, learner
        records[learner] = (
            record.version,
            record.model_version,
            record.state,
            record.meta,
            record.event_count,
            record.updated,
            [e.to_json() for e in store.events(A, learner)],
        )
    settings = [catalog_setting(A), framework_setting(A), roster_setting(A), lti_setting(A)]
    unaligned = store.unaligned(A)
    roster = store.roster_changes(A, 0)
    return {
        "roster": (roster.version, sorted(roster.written, key=lambda r: r[0])),
        "unaligned": (unaligned, store.unaligned_learners(A, [a.item_id for a in unaligned])),
        "learners": records,
        "listed": sorted(store.learners(A)),
        "claims": store.event_owners(A, [*A_EVENTS, *A_STATEMENTS, A_PLACEMENT_EVENT]),
        "settings": {name: store.get_setting(name) for name in settings},
    }


def tenant_a_as_served(w: Api) -> dict[str, Any]:
    """What tenant A's admin reads of its own data."""
    c, h = w.client, w.h("a_all")
    paths = [
        "/v1/model",
        "/v1/learners",
        "/v1/items?own=true",
        "/v1/events/unaligned",
        "/v1/classes",
        f"/v1/classes/{A_CLASS}",
        f"/v1/standards/{A_STANDARD}",
        f"/v1/standards/{SHARED_STANDARD}",
    ]
    for learner in (A_LEARNER, A_LEARNER2):
        paths += [f"/v1/learners/{learner}/profile?recent=200", f"/v1/learners/{learner}/next?n=3"]
    seen = {}
    for path in paths:
        r = c.get(path, headers=h)
        assert r.status_code == 200, (path, r.text[:300])
        seen[path] = r.json()
    return seen


# ---------------------------------------------------------------------------- the cases
class Kind(enum.IntEnum):
    """When a case runs, and what is asked of it."""

    READ = 1  # before anything else: the same answer as before A had data
    UNKNOWN = 2  # next: A's ids are unknown to B (B has no record under them yet)
    WRITE = 3  # last: B writes its own records under A's ids


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    json: Any = None
    content: bytes | None = None
    params: dict[str, Any] | None = None
    headers: dict[str, str] | None = None
    status: int = 200
    code: str | None = None  # the error code of a 4xx answer
    check: Callable[[Any], bool] | None = None  # on the JSON of a 2xx answer
    same_as_before: bool = True  # READ: compare with the answer before A had data

    def sent(self) -> str:
        text = json.dumps([self.path, self.params, self.json])
        return text + (self.content.decode("utf-8", "replace") if self.content else "")


@dataclass(frozen=True)
class Case:
    scope: str | None  # the scope the route needs (admin has every tenant scope, not operator); None: no key
    kind: Kind
    calls: tuple[Call, ...]


def b_roster() -> bytes:
    return roster_zip(
        {A_TEACHER: ("Tove", "Lind"), A_LEARNER: ("Ines", "Park"), A_LEARNER2: ("Omar", "Diaz")}, "B school", "B class"
    )


def cases(graph: Any) -> dict[tuple[str, str], Case]:
    L, L2 = A_LEARNER, A_LEARNER2
    return {
        ("POST", "/v1/events"): Case(
            "ingest",
            Kind.WRITE,
            (
                Call(
                    "POST",
                    "/v1/events",
                    json=[
                        native(A_EVENTS[0], L, ITEM, False),  # A's id and learner, other content: no conflict in B
                        native(A_EVENTS[1], "b-own-1", ITEM, True),
                        native(A_EVENTS[2], L, A_ITEM, True),  # A's item is an unknown activity to B
                    ],
                    check=lambda a: (a["accepted"], a["duplicates"], a["unaligned"], a["retry"]) == (3, 0, 1, []),
                ),
            ),
        ),
        ("POST", "/xapi/statements"): Case(
            "ingest",
            Kind.WRITE,
            (
                Call(
                    "POST",
                    "/xapi/statements",
                    json=[
                        statement(A_STATEMENTS[0], L, ITEM, False),
                        void("b5b5b5b5-0000-4000-8000-000000000001", A_STATEMENTS[1]),
                    ],
                    check=lambda a: a == [A_STATEMENTS[0], "b5b5b5b5-0000-4000-8000-000000000001"],
                ),
            ),
        ),
        ("PUT", "/xapi/statements"): Case(
            "ingest",
            Kind.WRITE,
            (
                Call(
                    "PUT",
                    "/xapi/statements",
                    params={"statementId": A_STATEMENTS[2]},
                    json=statement(A_STATEMENTS[2], L2, ITEM, False),
                    status=204,
                ),
            ),
        ),
        ("GET", "/xapi/about"): Case(None, Kind.READ, (Call("GET", "/xapi/about"),)),
        ("POST", "/caliper/events"): Case(
            "ingest",
            Kind.WRITE,
            (
                Call(
                    "POST",
                    "/caliper/events",
                    json=caliper(A_CALIPER, L, ITEM, 0.0),  # A's event id and learner, other content
                    check=lambda a: (a["accepted"], a["duplicates"], a["skipped"]) == (1, 0, []),
                ),
            ),
        ),
        ("POST", "/v1/learners/{learner_id}"): Case(
            "ingest",
            Kind.WRITE,
            (
                Call(
                    "POST",
                    f"/v1/learners/{L}",
                    json={"interests": ["b-likes-chess"]},
                    check=lambda a: a == {"learner_id": L, "interests": ["b-likes-chess"], "grade": None},
                ),
            ),
        ),
        ("DELETE", "/v1/learners/{learner_id}"): Case(
            "admin", Kind.UNKNOWN, (Call("DELETE", f"/v1/learners/{L2}", status=404, code="unknown_learner"),)
        ),
        ("POST", "/v1/erasures"): Case(
            "admin",
            Kind.UNKNOWN,
            (
                Call(
                    "POST",
                    "/v1/erasures",
                    json={"learner_ids": [L2, A_LEARNER]},
                    check=lambda a: a == {"erased": [], "unknown": [L2, A_LEARNER]},
                ),
            ),
        ),
        ("GET", "/v1/learners/{learner_id}/next"): Case(
            "read", Kind.READ, (Call("GET", f"/v1/learners/{L}/next", params={"n": 3}),)
        ),
        ("POST", "/v1/learners/{learner_id}/playlist"): Case(
            "read",
            Kind.READ,
            (
                Call("POST", f"/v1/learners/{L}/playlist", json={"session_minutes": 30}),
                Call(
                    "POST",
                    f"/v1/learners/{L}/playlist",
                    json={"goal": {"standards": [A_STANDARD]}},
                    status=404,
                    code="unknown_standard",
                ),
            ),
        ),
        ("GET", "/v1/learners/{learner_id}/profile"): Case(
            "read", Kind.READ, (Call("GET", f"/v1/learners/{L}/profile", status=404, code="unknown_learner"),)
        ),
        ("GET", "/v1/learners"): Case("read", Kind.READ, (Call("GET", "/v1/learners"),)),
        ("PUT", "/v1/learners/{learner_id}/goal"): Case(
            "teacher",
            Kind.WRITE,
            (
                Call(
                    "PUT",
                    f"/v1/learners/{L}/goal",
                    json={"standards": [A_STANDARD]},
                    status=404,
                    code="unknown_standard",
                ),
                Call("PUT", f"/v1/learners/{L2}/goal", json={"standards": [SHARED_STANDARD]}),
            ),
        ),
        ("POST", "/v1/learners/{learner_id}/overrides"): Case(
            "teacher",
            Kind.WRITE,
            (
                Call(
                    "POST",
                    f"/v1/learners/{L2}/overrides",
                    json={"exclude_items": [A_ITEM]},
                    status=404,
                    code="unknown_item",
                ),
                Call("POST", f"/v1/learners/{L2}/overrides", json={"pin_items": [ITEM]}),
            ),
        ),
        ("DELETE", "/v1/learners/{learner_id}/overrides"): Case(
            "teacher",
            Kind.UNKNOWN,
            (Call("DELETE", f"/v1/learners/{L2}/overrides", status=404, code="unknown_learner"),),
        ),
        ("POST", "/v1/learners/{learner_id}/placement"): Case(
            "ingest", Kind.WRITE, (Call("POST", f"/v1/learners/{L}/placement", check=lambda a: a["asked"] == 0),)
        ),
        ("POST", "/v1/learners/{learner_id}/placement/answers"): Case(
            "ingest",
            Kind.UNKNOWN,
            (
                Call(
                    "POST",
                    f"/v1/learners/{L2}/placement/answers",
                    json={"standard": "K.CC.A.1", "correct": True},
                    status=404,
                    code="unknown_learner",
                ),
            ),
        ),
        ("POST", "/v1/rosters"): Case(
            "admin",
            Kind.WRITE,
            (
                Call(
                    "POST",
                    "/v1/rosters",
                    content=b_roster(),
                    headers=ZIP,
                    check=lambda a: a["counts"]["students"] == 2 and a["changes"]["classes"]["added"] == 1,
                ),
            ),
        ),
        ("GET", "/v1/rosters/imports"): Case("admin", Kind.READ, (Call("GET", "/v1/rosters/imports"),)),
        # an import's id is random and its record is kept under its tenant (A's own id: test_rosters)
        ("GET", "/v1/rosters/imports/{import_id}"): Case(
            "admin",
            Kind.READ,
            (Call("GET", "/v1/rosters/imports/0123456789abcdef", status=404, code="unknown_import"),),
        ),
        ("GET", "/v1/classes"): Case("teacher", Kind.READ, (Call("GET", "/v1/classes"),)),
        ("GET", "/v1/classes/{class_id}"): Case(
            "teacher", Kind.READ, (Call("GET", f"/v1/classes/{A_CLASS}", status=404, code="unknown_class"),)
        ),
        ("GET", "/v1/classes/{class_id}/rotation"): Case(
            "teacher",
            Kind.READ,
            (Call("GET", f"/v1/classes/{A_CLASS}/rotation?date={A_PLAN_DATE}", status=404, code="unknown_class"),),
        ),
        ("PUT", "/v1/classes/{class_id}/goal"): Case(
            "teacher",
            Kind.UNKNOWN,
            (
                Call(
                    "PUT",
                    f"/v1/classes/{A_CLASS}/goal",
                    json={"standards": [SHARED_STANDARD]},
                    status=404,
                    code="unknown_class",
                ),
            ),
        ),
        ("POST", "/v1/classes/{class_id}/rotation"): Case(
            "read",
            Kind.UNKNOWN,
            (
                Call("POST", f"/v1/classes/{A_CLASS}/rotation", json={}, status=404, code="unknown_class"),
                Call(
                    "POST",
                    f"/v1/classes/{A_CLASS}/rotation",
                    json={"learners": [L2]},
                    status=404,
                    code="unknown_learner",
                ),
            ),
        ),
        ("GET", "/v1/standards/{code}"): Case(
            "read",
            Kind.READ,
            (
                Call("GET", f"/v1/standards/{SHARED_STANDARD}"),
                Call("GET", f"/v1/standards/{A_STANDARD}", status=404, code="unknown_standard"),
            ),
        ),
        ("GET", "/v1/items"): Case(
            "read",
            Kind.READ,
            (
                Call("GET", "/v1/items", params={"own": "true"}),
                Call("GET", "/v1/items", params={"standard": SHARED_STANDARD, "limit": 1000}),
            ),
        ),
        ("DELETE", "/v1/items/{item_id}"): Case(
            "admin",
            Kind.UNKNOWN,
            (
                Call("DELETE", f"/v1/items/{A_ITEM}", status=404, code="unknown_item"),
                Call("DELETE", f"/v1/items/{A_ITEM2}", status=404, code="unknown_item"),
            ),
        ),
        ("PUT", "/v1/items"): Case(
            "admin",
            Kind.WRITE,
            (
                Call(
                    "PUT",
                    "/v1/items",
                    json=[item(A_ITEM, SHARED_STANDARD, "B's take")],
                    check=lambda a: (a["created"], a["updated"]) == (1, 0),  # A's item is not B's
                ),
                Call("PUT", "/v1/items", json=[item("b-item-1", A_STANDARD, "B's")], status=404, code="invalid_item"),
            ),
        ),
        ("GET", "/v1/events/unaligned"): Case("read", Kind.READ, (Call("GET", "/v1/events/unaligned"),)),
        ("POST", "/v1/standards/import"): Case(
            "admin",
            Kind.WRITE,
            (Call("POST", "/v1/standards/import", json=framework(graph, "B district framework")),),
        ),
        ("GET", "/v1/model"): Case("read", Kind.READ, (Call("GET", "/v1/model"),)),
        ("GET", "/v1/gps"): Case("read", Kind.READ, (Call("GET", "/v1/gps"),)),
        # the model is the deployment's: swapping it takes the operator scope, which B's admin lacks
        ("POST", "/v1/model/reload"): Case(
            "operator", Kind.WRITE, (Call("POST", "/v1/model/reload", json={"uri": "bkt"}),)
        ),
        # a tenant's own model: B's admin names versions of B's registered model only
        ("PUT", "/v1/model/tenant"): Case(
            "admin",
            Kind.WRITE,
            (
                Call("PUT", "/v1/model/tenant", json={"uri": f"models:/zpd-learner-{A}@champion"}, status=403),
                Call("PUT", "/v1/model/tenant", json={"uri": f"models:/zpd-learner-{B}/1"}, status=409),
            ),
        ),
        ("DELETE", "/v1/model/tenant"): Case(
            "admin",
            Kind.WRITE,
            (Call("DELETE", "/v1/model/tenant", check=lambda a: a["scope"] == "deployment"),),
        ),
        ("GET", "/v1/lti/deployments"): Case("admin", Kind.READ, (Call("GET", "/v1/lti/deployments"),)),
        ("PUT", "/v1/lti/deployments"): Case(
            "admin",
            Kind.WRITE,
            (
                Call(
                    "PUT",
                    "/v1/lti/deployments",
                    json={"deployments": [A_DEPLOYMENT]},  # A's own: B may name it, and it stays A's too
                    check=lambda a: a["deployments"][0]["deployment_id"] == A_DEPLOYMENT["deployment_id"],
                ),
            ),
        ),
        ("GET", "/healthz"): Case(None, Kind.READ, (Call("GET", "/healthz"),)),
        ("GET", "/readyz"): Case(None, Kind.READ, (Call("GET", "/readyz"),)),
        ("GET", "/metrics"): Case(None, Kind.READ, (Call("GET", "/metrics", same_as_before=False),)),
    }


#: operations of the API description the sweep does not call, with the reason they cannot leak
EXEMPT: dict[tuple[str, str], str] = {}


def operations(app: FastAPI) -> list[tuple[str, str]]:
    """(METHOD, path template) of every operation of the app's API description, in its order."""
    return [(method.upper(), path) for path, item in app.openapi()["paths"].items() for method in item]


def test_every_operation_of_the_api_is_swept(shared_engine) -> None:
    """A new route fails here until it has a case (or an exemption with its reason)."""
    ops = operations(create_app(load_config(env={}), engine=shared_engine))  # no lifespan needed
    known = cases(shared_engine.graph)
    missing = [op for op in ops if op not in known and op not in EXEMPT]
    assert not missing, f"operations without a cross-tenant case in {__name__}: {missing}"
    stale = [op for op in [*known, *EXEMPT] if op not in ops]
    assert not stale, f"cases for operations the API no longer has: {stale}"
    assert not set(known) & set(EXEMPT)
    assert all(reason.strip() for reason in EXEMPT.values())


# ---------------------------------------------------------------------------- the sweep
def answer(r: Any) -> Any:
    try:
        return r.json()
    except ValueError:
        return r.text


def run(w: Api, who: str, call: Call) -> Any:
    return w.client.request(
        call.method,
        call.path,
        json=call.json,
        content=call.content,
        params=call.params,
        headers={**w.h(who), **(call.headers or {})},
    )


@pytest.mark.parametrize("who", ["b_all", "b_teacher"])
def test_tenant_b_never_sees_or_changes_tenant_a(world: Api, who: str) -> None:
    w = world
    ops = operations(w.client.app)
    known = cases(w.client.app.state.engine.graph)
    key = w.store.get_key(w.keys[who].split("_")[1])
    assert key is not None
    scopes = set(key.scopes)

    def allowed(case: Case) -> bool:
        return case.scope is None or case.scope in scopes or ("admin" in scopes and case.scope != "operator")

    def sweep_reads() -> dict[tuple[str, str, int], tuple[int, Any]]:
        seen = {}
        for op in ops:
            case = known.get(op)
            if case is not None and case.kind is Kind.READ:
                for n, call in enumerate(case.calls):
                    r = run(w, who, call)
                    seen[(*op, n)] = (r.status_code, answer(r))
        return seen

    before = sweep_reads()
    give_tenant_a_data(w)
    a_served, a_stored = tenant_a_as_served(w), tenant_a_as_stored(w.store)
    assert a_stored["learners"][A_LEARNER][4] >= 5 and a_served[f"/v1/classes/{A_CLASS}"]["students"] == 2

    problems: list[str] = []
    swept: set[tuple[str, str]] = set()
    for kind in Kind:
        for op in ops:
            case = known.get(op)
            if case is None or case.kind is not kind:
                continue
            swept.add(op)
            for n, call in enumerate(case.calls):
                r = run(w, who, call)
                where = f"{call.method} {call.path} ({op[0]} {op[1]} #{n})"
                body = answer(r)
                status, code = (call.status, call.code) if allowed(case) else (403, "forbidden")
                learner_route = "{learner_id}" in op[1] or op[1] in (
                    "/v1/events",
                    "/xapi/statements",
                    "/caliper/events",
                )
                scoped = who == "b_teacher" and learner_route and allowed(case)
                if scoped:  # a key linked to a roster teacher reaches her own students only: B has none
                    status, code = 404, "unknown_learner"
                if r.status_code != status:
                    problems.append(f"{where}: {r.status_code}, expected {status}: {r.text[:300]}")
                elif code is not None and body["error"]["code"] != code:
                    problems.append(f"{where}: error {body['error']['code']}, expected {code}")
                elif allowed(case) and not scoped and call.check is not None and not call.check(body):
                    problems.append(f"{where}: unexpected answer {r.text[:300]}")
                leaked = [s for s in SECRETS if s in r.text and s not in call.sent()]
                if leaked:
                    problems.append(f"{where}: answers with A's {leaked}: {r.text[:300]}")
                if kind is Kind.READ and call.same_as_before and before[(*op, n)] != (r.status_code, body):
                    problems.append(f"{where}: answers otherwise now that A has data: {r.text[:300]}")
    missing = [op for op in ops if op not in swept and op not in EXEMPT]
    assert not missing, f"operations not swept: {missing}"
    assert not problems, "\n".join(problems)
    assert tenant_a_as_stored(w.store) == a_stored, "tenant A's stored data changed"
    assert tenant_a_as_served(w) == a_served, "what tenant A reads of its data changed"
