"""Catching up from an LRS (``serving/lrs.py``) against LRS answers as real ones give them: pages
linked by ``more`` relative to the server's root or absolute, an empty ``more`` on the last
page, ``X-Experience-API-Consistent-Through``, statements zpd refuses among good ones, and an
LRS that fails. The end-to-end run against a real LRS is in ``test_ralph.py``."""

from __future__ import annotations

import json
import uuid
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from engine.xapi import ADL, STANDARDS_EXTENSION, learner_id
from models.base import state_to_bytes
from serving.lrs import LrsError, cursor_setting, pull
from serving.service import LearnerService
from serving.stores import open_store

ENDPOINT = "https://lrs.example/data/xAPI/statements"


def statement(n: int, who: str = "ana", stored: str = "2026-12-01T10:00:00.000Z", **result) -> dict:
    return {
        "id": str(uuid.UUID(int=n)),
        "actor": {"objectType": "Agent", "account": {"homePage": "https://lms.example", "name": who}},
        "verb": {"id": ADL + "answered"},
        "object": {
            "objectType": "Activity",
            "id": f"https://content.example.com/activities/q{n % 5}",
            "definition": {"extensions": {STANDARDS_EXTENSION: ["3.NF.A.1"]}},
        },
        "result": result or {"success": n % 3 != 0},
        "timestamp": "2026-12-01T09:59:00Z",
        "stored": stored,
        "authority": {"objectType": "Agent", "mbox": "mailto:lrs@lrs.example"},
        "version": "1.0.0",
    }


class FakeLrs:
    """An LRS answering ``GET /statements`` from a list, ``page`` at a time; ``more`` is a path
    from the server's root (as Learning Locker and Ralph give it) or, with ``absolute``, a URL."""

    def __init__(self, statements: list[dict], page: int = 4, absolute: bool = False, through: str | None = None):
        self.statements, self.page, self.absolute, self.through = statements, page, absolute, through
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        assert request.headers["Authorization"].startswith("Basic ")
        query = parse_qs(urlsplit(str(request.url)).query)
        start = int(query.get("cursor", ["0"])[0])
        chunk = self.statements[start : start + self.page]
        body: dict = {"statements": chunk, "more": ""}
        if start + self.page < len(self.statements):
            more = f"/data/xAPI/statements?cursor={start + self.page}"
            body["more"] = ("https://lrs.example" + more) if self.absolute else more
        headers = {"X-Experience-API-Version": "1.0.3"}
        if self.through:
            headers["X-Experience-API-Consistent-Through"] = self.through
        return httpx.Response(200, json=body, headers=headers)


@pytest.fixture
def service(tmp_path, shared_engine):
    store = open_store(f"sqlite:///{(tmp_path / 'zpd.db').as_posix()}")
    yield LearnerService(shared_engine, store)
    store.close()


def client(handler) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(handler), auth=("lrs-user", "secret"))


def test_every_page_is_read_and_stored_once(service) -> None:
    lrs = FakeLrs([statement(n, "ana" if n % 2 else "ben", f"2026-12-01T10:{n:02d}:00.000Z") for n in range(1, 11)])
    report = pull(service, "school", client(lrs), ENDPOINT, page_size=4)
    assert (report.pages, report.statements, report.accepted, report.duplicates) == (3, 10, 10, 0)
    assert report.refused == [] and report.not_stored == []
    first = parse_qs(urlsplit(str(lrs.requests[0].url)).query)
    assert first["limit"] == ["4"] and first["ascending"] == ["true"] and "since" not in first
    assert str(lrs.requests[1].url) == "https://lrs.example/data/xAPI/statements?cursor=4"  # from the root
    ana = learner_id({"account": {"homePage": "https://lms.example", "name": "ana"}}, "school")
    assert len(service.store.events("school", ana)) == 5
    assert report.cursor == "2026-12-01T10:10:00.000Z"
    saved = json.loads(service.store.get_setting(cursor_setting("school", ENDPOINT))[1])
    assert saved == {"endpoint": ENDPOINT, "stored": "2026-12-01T10:10:00.000Z"}
    # the next pull starts at the cursor less the overlap; what it reads again is a duplicate
    again = pull(service, "school", client(lrs), ENDPOINT, page_size=4, overlap_s=600)
    assert again.since == "2026-12-01T10:00:00.000Z"
    assert parse_qs(urlsplit(str(lrs.requests[3].url)).query)["since"] == ["2026-12-01T10:00:00.000Z"]
    assert (again.accepted, again.duplicates, again.cursor) == (0, 10, "2026-12-01T10:10:00.000Z")
    assert len(service.store.events("school", ana)) == 5


def test_an_absolute_more_link_and_the_consistent_through_header(service) -> None:
    lrs = FakeLrs([statement(n) for n in range(1, 6)], page=2, absolute=True, through="2026-12-01T09:00:00Z")
    report = pull(service, "school", client(lrs), ENDPOINT, page_size=2)
    assert report.pages == 3 and report.accepted == 5
    assert report.cursor == "2026-12-01T09:00:00.000Z"  # not past what the LRS vouches for


def test_a_refused_statement_is_named_and_the_others_are_stored(service) -> None:
    good = [statement(n) for n in range(1, 8)]
    bad = statement(8, score={"raw": 12, "max": 10})  # xAPI refuses raw above max; this LRS did not check
    lrs = FakeLrs([*good[:3], bad, *good[3:]], page=100)
    report = pull(service, "school", client(lrs), ENDPOINT)
    assert report.accepted == 7
    assert [r["id"] for r in report.refused] == [bad["id"]]
    assert report.refused[0]["field"] == "statement.result.score.raw"
    assert "events[" not in report.refused[0]["message"]
    assert report.cursor is not None  # named, so the cursor moves past it


def test_a_statement_without_an_id_is_named(service) -> None:
    nameless = statement(3)
    del nameless["id"]
    report = pull(service, "school", client(FakeLrs([statement(1), nameless, statement(2)])), ENDPOINT)
    assert report.accepted == 2
    assert report.refused == [
        {"id": None, "field": "id", "message": "page 1, statement 1: the LRS returned a statement without an id"}
    ]


def test_busy_learners_are_retried_and_the_cursor_waits_for_them(service, monkeypatch) -> None:
    real = service.ingest
    calls = []

    def busy_first(tenant, statements, learners=None):
        calls.append(len(statements))
        result = real(tenant, statements[1:] if len(calls) == 1 else statements, learners)
        if len(calls) == 1:  # the first statement's learner was busy: not written
            result["retry"] = [statements[0]["id"]]
        return result

    monkeypatch.setattr(service, "ingest", busy_first)
    report = pull(service, "school", client(FakeLrs([statement(n) for n in range(1, 5)])), ENDPOINT, backoff_s=0)
    assert calls == [4, 1] and report.accepted == 4 and report.cursor is not None

    calls.clear()
    monkeypatch.setattr(
        service, "ingest", lambda t, s, learners=None: {**real(t, s[1:], learners), "retry": [s[0]["id"]]}
    )
    stuck = pull(
        service, "other", client(FakeLrs([statement(n) for n in range(1, 5)])), ENDPOINT, retries=2, backoff_s=0
    )
    assert stuck.not_stored == [str(uuid.UUID(int=1))]
    assert stuck.cursor is None and service.store.get_setting(cursor_setting("other", ENDPOINT)) is None


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (httpx.Response(401, text="bad credentials"), "answered 401: bad credentials"),
        (httpx.Response(200, text="<html>login</html>"), "is not JSON"),
        (httpx.Response(200, json=[{"id": "x"}]), "expected a StatementResult"),
        (httpx.Response(200, json={"statements": [], "more": 7}), "'more' must be a URL"),
        (httpx.Response(200, json={"statements": [], "more": "/data/xAPI/statements?x=1"}), "repeats itself"),
    ],
)
def test_an_lrs_that_fails_is_an_error_naming_it(service, response, expected) -> None:
    with pytest.raises(LrsError, match="lrs.example") as info:
        pull(service, "school", client(lambda request: response), ENDPOINT)
    assert expected in str(info.value)
    assert service.store.get_setting(cursor_setting("school", ENDPOINT)) is None


def test_an_unreachable_lrs_is_an_error_naming_it(service) -> None:
    def refuse(request):
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(LrsError, match="cannot be reached"):
        pull(service, "school", client(refuse), ENDPOINT)


def test_the_cursor_never_moves_back(service) -> None:
    """A pull over an older window (``--since``) stores what it reads and leaves a later cursor."""
    pull(service, "school", client(FakeLrs([statement(1, stored="2026-12-02T10:00:00.000Z")])), ENDPOINT)
    older = FakeLrs([statement(2, stored="2026-12-01T10:00:00.000Z")])
    report = pull(service, "school", client(older), ENDPOINT, since=1_764_000_000.0)
    assert report.accepted == 1 and report.cursor == "2026-12-02T10:00:00.000Z"
    assert json.loads(service.store.get_setting(cursor_setting("school", ENDPOINT))[1])["stored"] == report.cursor


def test_filters_select_statements_and_keep_a_cursor_each(service) -> None:
    """An LRS shared with other platforms: xAPI's statement filters go to the LRS, and each
    selection keeps its own cursor; a name xAPI does not know is refused before any request."""
    lrs = FakeLrs([statement(1)])
    activity = {"activity": "https://content.example.com/activities/q1", "related_activities": "true"}
    report = pull(service, "school", client(lrs), ENDPOINT, filters=activity)
    query = parse_qs(urlsplit(str(lrs.requests[0].url)).query)
    assert query["activity"] == [activity["activity"]] and query["related_activities"] == ["true"]
    assert report.cursor is not None
    assert service.store.get_setting(cursor_setting("school", ENDPOINT, activity)) is not None
    assert service.store.get_setting(cursor_setting("school", ENDPOINT)) is None
    with pytest.raises(LrsError, match="'actor' is not an xAPI statements filter"):
        pull(service, "school", client(lrs), ENDPOINT, filters={"actor": "x"})
    assert len(lrs.requests) == 1


def test_a_backfill_refolds_each_learner_once_not_once_per_page(service) -> None:
    """History read back after live traffic began: every statement is older than what its learner
    already has, and each learner's are spread over many pages. A learner is refolded once per
    window of pages (its statements in one batch), not once per page that holds some."""
    names = ["ana", "ben", "cy", "dee", "eli"]
    live = [{**statement(1000 + k, who), "timestamp": "2026-12-02T09:00:00Z"} for k, who in enumerate(names)]
    assert service.ingest("school", live)["accepted"] == 5
    refolds: list[str] = []
    service.on_refold = lambda start, answers: refolds.append(start)
    history = [statement(n, names[n % 5], f"2026-12-01T10:{n:02d}:00.000Z") for n in range(1, 31)]
    report = pull(service, "school", client(FakeLrs(history, page=4)), ENDPOINT, page_size=4)
    assert (report.pages, report.accepted) == (8, 30)
    assert refolds == ["log"] * 5  # one per learner; page by page it was one per page and learner (30)
    for who in names:
        view = service.load(
            "school", learner_id({"account": {"homePage": "https://lms.example", "name": who}}, "school")
        )
        assert view.meta.events == 7
        assert state_to_bytes(service.rebuild(view.core, view.record).state) == view.record.state


def test_what_was_read_is_stored_when_a_later_page_fails(service) -> None:
    lrs = FakeLrs([statement(n, stored=f"2026-12-01T10:{n:02d}:00.000Z") for n in range(1, 9)], page=3)

    def failing(request: httpx.Request) -> httpx.Response:
        return httpx.Response(502, text="bad gateway") if len(lrs.requests) == 2 else lrs(request)

    with pytest.raises(LrsError, match="502"):
        pull(service, "school", client(failing), ENDPOINT, page_size=3)
    ana = learner_id({"account": {"homePage": "https://lms.example", "name": "ana"}}, "school")
    assert len(service.store.events("school", ana)) == 6  # the two pages read
    assert service.store.get_setting(cursor_setting("school", ENDPOINT)) is None  # read again next time


def test_batches_keep_each_actors_statements_together() -> None:
    from serving.lrs import _batches

    sts = [statement(n, who) for n, who in enumerate("abacabcaab", start=1)]
    batches = _batches(sts, 4)
    assert [[s["actor"]["account"]["name"] for s in b] for b in batches] == [
        ["a", "a", "a", "a"],
        ["a", "b", "b", "b"],
        ["c", "c"],
    ]
    assert sorted(s["id"] for b in batches for s in b) == sorted(s["id"] for s in sts)
    assert [[s["id"] for s in b if s["actor"]["account"]["name"] == "b"] for b in batches][1] == [
        s["id"] for s in sts if s["actor"]["account"]["name"] == "b"
    ]  # in the order read
