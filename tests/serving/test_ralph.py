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
from pathlib import Path

import httpx
import pytest

from configs import load_config
from engine.xapi import ADL, STANDARDS_EXTENSION, learner_id
from serving.app import create_app
from serving.auth import create_key
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


@pytest.fixture(scope="module")
def ralph(tmp_path_factory, zpd) -> Iterator[str]:
    zpd_url, key, _ = zpd
    binary = ralph_binary()
    home = tmp_path_factory.mktemp("ralph")
    env = {
        **os.environ,
        "RALPH_APP_DIR": str(home),
        "RALPH_RUNSERVER_BACKEND": "fs",
        "RALPH_AUTH_FILE": str(home / "auth.json"),
        "RALPH_XAPI_FORWARDINGS": json.dumps(
            [
                {
                    "url": f"{zpd_url}/xapi/statements",
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


def test_statements_posted_to_ralph_reach_the_learner_in_zpd(ralph, zpd) -> None:
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
