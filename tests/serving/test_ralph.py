"""End to end with a real Learning Record Store: Ralph (``ralph-malph``, file-system backend) is
started by the test, configured to forward every statement it stores to a running zpd server
(``RALPH_XAPI_FORWARDINGS``, HTTP Basic with a zpd API key as the password). A platform posts
statements to Ralph, as platforms do; the learner's state in zpd follows. Ralph's database
backends need servers this machine cannot install; its ``fs`` backend stores one write only (see
the last test), so each test here forwards one batch."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from configs import load_config
from engine.xapi import ADL, STANDARDS_EXTENSION, learner_id
from serving.app import create_app
from serving.auth import create_key
from serving.service import LearnerService
from serving.stores import open_store

from .conftest import LiveServer, free_port

pytestmark = pytest.mark.slow  # two servers over real HTTP

ROOT = Path(__file__).resolve().parents[2]


def ralph_binary() -> Path:
    venv = Path(os.environ.get("ZPD_RALPH_VENV", ROOT / ".venv-ralph"))
    binary = venv / "bin" / "ralph"
    if not binary.exists():
        pytest.fail(f"Ralph is not installed at {venv}: run `make install` (it makes {venv} with ralph-malph)")
    return binary


@pytest.fixture(scope="module")
def zpd(tmp_path_factory, shared_engine) -> Iterator[tuple[str, str, object]]:
    folder = tmp_path_factory.mktemp("zpd")
    store = open_store(f"sqlite:///{(folder / 'zpd.db').as_posix()}")
    key = create_key(store, "school", ["ingest", "read"])
    server = LiveServer(create_app(load_config(env={}), store=store, engine=shared_engine))
    yield server.url, key, store
    server.stop()
    store.close()


@contextmanager
def running_ralph(home: Path, forward_to: str, key: str) -> Iterator[str]:
    """Ralph on a free port, its ``fs`` backend in ``home``, forwarding what it stores to
    ``forward_to`` with ``key`` as the Basic password; a platform user ``platform`` with every scope."""
    binary = ralph_binary()
    env = {
        **os.environ,
        "RALPH_APP_DIR": str(home),
        "RALPH_RUNSERVER_BACKEND": "fs",
        "RALPH_AUTH_FILE": str(home / "auth.json"),
        "RALPH_XAPI_FORWARDINGS": json.dumps(
            [
                {
                    "url": forward_to,
                    "is_active": True,
                    "basic_username": "ralph",
                    "basic_password": key,
                    "max_retries": 2,
                    "timeout": 10,
                }
            ]
        ),
    }
    subprocess.run(
        [
            str(binary),
            "auth",
            "-u",
            "platform",
            "-p",
            "platform-secret",
            "-s",
            "all",
            "-M",
            "mailto:platform@content.example",
            "-w",
        ],
        env=env,
        check=True,
        capture_output=True,
    )
    port = free_port()
    log = open(home / "ralph.log", "w")
    proc = subprocess.Popen(
        [
            str(binary),
            "runserver",
            "-b",
            "fs",
            "--fs-default-directory-path",
            str(home / "lrs"),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if httpx.get(f"{url}/__heartbeat__", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        else:
            pytest.fail(f"Ralph did not start: {(home / 'ralph.log').read_text()[-2000:]}")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="module")
def ralph(tmp_path_factory, zpd) -> Iterator[str]:
    zpd_url, key, _ = zpd
    with running_ralph(tmp_path_factory.mktemp("ralph"), f"{zpd_url}/xapi/statements", key) as url:
        yield url


def statement(verb: str, result: dict | None, activity: str, standard: str | None = None) -> dict:
    body = {
        "id": str(uuid.uuid4()),
        "actor": {"objectType": "Agent", "mbox": "mailto:lea@school.example"},
        "verb": {"id": ADL + verb, "display": {"en-US": verb}},
        "object": {"objectType": "Activity", "id": activity},
        "timestamp": "2026-11-24T10:00:00Z",
    }
    if standard:
        body["object"]["definition"] = {"extensions": {STANDARDS_EXTENSION: standard}}
    if result is not None:
        body["result"] = result
    return body


def test_statements_posted_to_ralph_reach_the_learner_in_zpd(ralph, zpd, shared_engine) -> None:
    zpd_url, key, store = zpd
    platform = httpx.Client(
        auth=("platform", "platform-secret"), headers={"X-Experience-API-Version": "1.0.3"}, timeout=10
    )
    activity = "https://content.example.com/activities/fractions/7"
    batch = [
        statement("launched", None, activity, "3.NF.A.1"),
        statement("answered", {"success": True, "score": {"raw": 4, "min": 0, "max": 5}}, activity, "3.NF.A.1"),
        statement("answered", {"success": False}, activity, "3.NF.A.1"),
    ]
    r = platform.post(f"{ralph}/xAPI/statements/", json=batch)
    assert r.status_code == 200, r.text
    assert sorted(r.json()) == sorted(s["id"] for s in batch)  # Ralph stored them
    lea = learner_id({"mbox": "mailto:lea@school.example"}, "school")
    reader = {"Authorization": f"Bearer {key}"}
    deadline, profile = time.time() + 30, None
    while time.time() < deadline:  # Ralph forwards in the background once it has stored them
        got = httpx.get(f"{zpd_url}/v1/learners/{lea}/profile", headers=reader)
        if got.status_code == 200 and got.json()["events"] == 3:
            profile = got.json()
            break
        time.sleep(0.3)
    assert profile is not None, "the statements did not reach zpd"
    assert profile["mastery"]["3.NF.A.1"]["evidence"] == 2  # two answers; the launch is kept, not evidence
    stored = store.events("school", lea)
    assert [e.kind for e in stored] == ["exposure", "answer", "answer"] and stored[1].correct == 1.0
    # Ralph forwards again what is posted again: zpd takes it as duplicates
    again = platform.put(f"{ralph}/xAPI/statements/?statementId={batch[2]['id']}", json=batch[2])
    assert again.status_code in (204, 409)
    time.sleep(1.0)
    assert len(store.events("school", lea)) == 3
    # what Ralph forwarded and what it answers to GET /statements are the same statements: a
    # pull finds every one a duplicate (none a conflicting repeat)
    from serving.lrs import pull

    with httpx.Client(auth=("platform", "platform-secret"), headers={"X-Experience-API-Version": "1.0.3"}) as lrs:
        report = pull(LearnerService(shared_engine, store), "school", lrs, f"{ralph}/xAPI/statements")
    assert (report.statements, report.duplicates, report.accepted, report.refused) == (3, 3, 0, [])


def test_a_group_statement_voided_through_ralph_is_voided_for_each_member(tmp_path, zpd) -> None:
    """Group work posted to Ralph reaches each member as an exposure; the platform's void of it,
    posted later and forwarded by Ralph too, reaches each member's copy. (Ralph's ``fs`` backend
    takes one write per file, see below: each post goes to a Ralph of its own.)"""
    zpd_url, key, store = zpd
    platform = httpx.Client(
        auth=("platform", "platform-secret"), headers={"X-Experience-API-Version": "1.0.3"}, timeout=10
    )
    members = [{"objectType": "Agent", "mbox": f"mailto:{who}@school.example"} for who in ("ivy", "jon")]
    group = statement("answered", {"success": True}, "https://content.example.com/activities/group/1", "3.NF.A.1")
    group["actor"] = {"objectType": "Group", "member": members}
    void = {
        "id": str(uuid.uuid4()),
        "actor": {"objectType": "Agent", "mbox": "mailto:platform@content.example"},
        "verb": {"id": ADL + "voided", "display": {"en-US": "voided"}},
        "object": {"objectType": "StatementRef", "id": group["id"]},
        "timestamp": "2026-11-24T10:05:00Z",
    }
    ids = [learner_id(m, "school") for m in members]
    for k, (body, kinds) in enumerate(((group, ["exposure"]), (void, ["exposure", "void"]))):
        with running_ralph(tmp_path / f"ralph{k}", f"{zpd_url}/xapi/statements", key) as ralph:
            r = platform.post(f"{ralph}/xAPI/statements/", json=[body])
            assert r.status_code == 200, r.text
            deadline = time.time() + 30
            while time.time() < deadline and any(len(store.events("school", i)) < len(kinds) for i in ids):
                time.sleep(0.3)  # Ralph forwards in the background once it has stored them
        for i in ids:
            log = store.events("school", i)
            assert [e.kind for e in log] == kinds, log
    for i in ids:
        copy, voiding = store.events("school", i)
        assert copy.id.startswith(group["id"] + ":") and voiding.voids == copy.id


def test_ralph_fs_backend_keeps_only_its_first_write(ralph, zpd) -> None:
    """What the README says of the recipe it shows: Ralph 5.1's ``fs`` backend refuses every write
    after its first (500), and what it does not store it does not forward. If a Ralph upgrade
    changes this, the README's warning must change with it."""
    zpd_url, key, store = zpd
    platform = httpx.Client(
        auth=("platform", "platform-secret"), headers={"X-Experience-API-Version": "1.0.3"}, timeout=10
    )
    activity = "https://content.example.com/activities/fractions/8"
    first = platform.post(f"{ralph}/xAPI/statements/", json=[statement("answered", {"success": True}, activity)])
    assert first.status_code in (200, 500)  # 200 only when no test wrote to this Ralph before
    later = statement("answered", {"success": True}, activity)
    refused = platform.post(f"{ralph}/xAPI/statements/", json=[later])
    assert refused.status_code == 500, refused.text
    time.sleep(1.5)
    assert store.event_owners("school", [later["id"]]) == {}  # never forwarded


def test_lrs_pull_stores_what_ralph_stored_while_zpd_was_down(tmp_path, shared_engine) -> None:
    """zpd is down while a platform posts to Ralph: Ralph stores the statements, cannot forward
    them, and drops the forward. ``zpd lrs pull`` reads them back from Ralph's statements
    resource, page by page, and stores them; pulled again, they are duplicates."""
    from typer.testing import CliRunner

    from zpd.cli import app

    down = f"http://127.0.0.1:{free_port()}/xapi/statements"  # nothing listens there
    db = f"sqlite:///{(tmp_path / 'zpd.db').as_posix()}"
    now = datetime.now(UTC)
    activity = "https://content.example.com/activities/fractions/9"
    batch = []
    for who in ("lea", "max", "noa"):
        actor = {"objectType": "Agent", "mbox": f"mailto:{who}@school.example"}
        batch.append({**statement("launched", None, activity, "3.NF.A.1"), "actor": actor})
        for j in range(7):
            st = statement("answered", {"success": j % 3 != 2}, activity, "3.NF.A.1")
            st["actor"], st["timestamp"] = actor, (now - timedelta(seconds=60 - j)).isoformat()
            batch.append(st)
    voided = batch[2]  # one of lea's answers, withdrawn by the platform
    batch.append(
        {
            "id": str(uuid.uuid4()),
            "actor": {"objectType": "Agent", "mbox": "mailto:platform@content.example"},
            "verb": {"id": ADL + "voided", "display": {"en-US": "voided"}},
            "object": {"objectType": "StatementRef", "id": voided["id"]},
            "timestamp": now.isoformat(),
        }
    )
    other = {  # another platform's statement in the same LRS: left out by the filter
        **statement("answered", {"success": True}, "https://other.example/activity/1"),
        "actor": {"objectType": "Agent", "mbox": "mailto:zoe@other.example"},
    }
    batch.append(other)
    runner = CliRunner()
    pull = ["lrs", "pull", "--tenant", "school", "--user", "platform", "--store", db, "--page-size", "10", "--json"]
    # this platform's statements carry its registration (Ralph 5.1's fs backend compares an
    # `activity` or `verb` filter as an object with the statement's string: it matches nothing)
    registration = str(uuid.uuid4())
    for st in batch[:-1]:
        st["context"] = {"registration": registration}
    pull += ["--filter", f"registration={registration}"]
    with running_ralph(tmp_path / "ralph", down, "zpd-is-down") as ralph:
        platform = httpx.Client(
            auth=("platform", "platform-secret"), headers={"X-Experience-API-Version": "1.0.3"}, timeout=10
        )
        assert platform.post(f"{ralph}/xAPI/statements/", json=batch).status_code == 200  # Ralph stored them
        store = open_store(db)
        lea = learner_id({"mbox": "mailto:lea@school.example"}, "school")
        assert store.events("school", lea) == []  # nothing arrived
        env = {"ZPD_LRS_PASSWORD": "platform-secret", "ZPD_MODEL_URI": "bundled"}  # no MLflow lookup
        first = runner.invoke(app, [*pull[:2], f"{ralph}/xAPI/statements", *pull[2:]], env=env)
        assert first.exit_code == 0, first.output
        report = json.loads(first.stdout)
        # every statement of the registration (Ralph may leave out the voided one), not the other platform's
        assert len(batch) - 2 <= report["statements"] <= len(batch) - 1 and report["pages"] >= 3
        assert store.events("school", learner_id(other["actor"], "school")) == []
        assert report["refused"] == [] and report["not_stored"] == [] and report["cursor"]
        assert report["accepted"] + report["voided"] == report["statements"]
        for who, answers in (("lea", 6), ("max", 7), ("noa", 7)):
            events = store.events("school", learner_id({"mbox": f"mailto:{who}@school.example"}, "school"))
            assert [e.kind for e in events].count("exposure") == 1, who
            assert len({e.id for e in events if e.kind == "answer"} - {voided["id"]}) == answers, who
        view = LearnerService(shared_engine, store).load("school", lea)
        profile = view.core.profile(view.learner, time.time())
        assert profile.mastery["3.NF.A.1"].evidence == 6  # the voided answer is not evidence
        again = runner.invoke(app, [*pull[:2], f"{ralph}/xAPI/statements", *pull[2:]], env=env)
        assert again.exit_code == 0, again.output
        repeat = json.loads(again.stdout)
        assert repeat["since"] is not None and repeat["accepted"] == 0 and repeat["statements"] > 0
        store.close()
