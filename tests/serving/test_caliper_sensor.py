"""A real Caliper sensor sends to the API over HTTP: ims-caliper (IMS Global's caliper-js as a node
module, installed by `make install` from package-lock.json) builds the events with its own
factories and sends an envelope with its own HTTP client, as a platform's sensor would; the
grades reach the learners' state, the navigation is skipped, and a resend changes nothing."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from configs import load_config
from engine.xapi import account_id
from serving.app import create_app
from serving.auth import create_key
from serving.stores import open_store

from .conftest import LiveServer

pytestmark = pytest.mark.slow  # a server over real HTTP and node

SENSOR = Path(__file__).resolve().parents[1] / "caliper_sensor"
ITEM = "https://content.example.com/items/fractions-7"
ANA = "https://content.example.com/users/ana"
BEN = "https://content.example.com/users/ben"


def node() -> str:
    found = shutil.which("node")
    if found is None:
        pytest.fail("no node: the Caliper sensor test runs ims-caliper on Node.js (apt-get install -y nodejs npm)")
    if not (SENSOR / "node_modules" / "ims-caliper").is_dir():
        pytest.fail(f"the Caliper sensor is not installed in {SENSOR}: run `make install` (npm ci there)")
    return found


@pytest.fixture(scope="module")
def zpd(tmp_path_factory, shared_engine) -> Iterator[tuple[str, str]]:
    folder = tmp_path_factory.mktemp("zpd")
    store = open_store(f"sqlite:///{(folder / 'zpd.db').as_posix()}")
    key = create_key(store, "platform", ["ingest", "read"])
    server = LiveServer(create_app(load_config(env={}), store=store, engine=shared_engine))
    yield server.url, key
    server.stop()
    store.close()


def sense(url: str, key: str, events: list[dict], tmp_path: Path, *mode: str) -> str:
    spec = tmp_path / f"events-{time.monotonic_ns()}.json"
    spec.write_text(json.dumps(events), encoding="utf-8")
    done = subprocess.run(
        [node(), str(SENSOR / "send.js"), f"{url}/caliper/events", key, str(spec), *mode],
        cwd=SENSOR,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_sensor_s_grades_reach_the_learners_and_a_resend_changes_nothing(zpd, tmp_path) -> None:
    url, key = zpd
    events = [
        {
            "event": "navigated",
            "id": "0a1b2c3d-0000-4000-8000-000000000001",
            "learner": ANA,
            "item": "https://content.example.com/units/fractions",
            "time": "2026-11-24T09:00:00Z",
        },
        {
            "event": "completed",
            "id": "0a1b2c3d-0000-4000-8000-000000000002",
            "learner": ANA,
            "item": ITEM,
            "objectives": ["3.NF.A.1"],
            "time": "2026-11-24T09:01:00Z",
        },
        {
            "event": "graded",
            "id": "0a1b2c3d-0000-4000-8000-000000000003",
            "learner": ANA,
            "item": ITEM,
            "objectives": ["3.NF.A.1"],
            "scoreGiven": 1,
            "maxScore": 1,
            "time": "2026-11-24T09:01:01Z",
        },
        {
            "event": "graded",
            "id": "0a1b2c3d-0000-4000-8000-000000000004",
            "learner": BEN,
            "item": ITEM,
            "objectives": ["3.NF.A.1"],
            "scoreGiven": 0,
            "maxScore": 2,
            "time": "2026-11-24T09:02:00Z",
        },
    ]
    sense(url, key, events, tmp_path)  # the library's own client, which does not report its answer
    headers = {"Authorization": f"Bearer {key}"}
    ana, ben = (account_id(who, "platform", "caliper") for who in (ANA, BEN))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        seen = httpx.get(f"{url}/v1/learners/{ben}/profile", headers=headers)
        if seen.status_code == 200:
            break
        time.sleep(0.1)
    assert seen.status_code == 200, seen.text
    ana_profile = httpx.get(f"{url}/v1/learners/{ana}/profile", headers=headers).json()
    assert ana_profile["events"] == 2 and ana_profile["mastery"]["3.NF.A.1"]["evidence"] == 1
    assert [(e["kind"], e["correct"]) for e in ana_profile["recent_evidence"]] == [("answer", 1.0), ("exposure", None)]
    assert [(e["kind"], e["correct"]) for e in seen.json()["recent_evidence"]] == [("answer", 0.0)]
    # the sensor retries the same envelope and reads the answer
    answer = json.loads(sense(url, key, events, tmp_path, "print"))
    assert answer["status"] == 200
    body = answer["body"]
    assert (body["received"], body["accepted"], body["duplicates"]) == (4, 0, 3)
    assert body["skipped"] == [
        {
            "reason": "NavigationEvent/NavigatedTo is not learning evidence (see [caliper] actions)",
            "count": 1,
            "data": [0],
        }
    ]
    # what the platform asks next
    nxt = httpx.get(f"{url}/v1/learners/{ana}/next", headers=headers)
    assert nxt.status_code == 200 and nxt.json()["recommendations"], nxt.text


def test_a_sensor_without_a_valid_key_is_refused(zpd, tmp_path) -> None:
    url, _ = zpd
    events = [
        {
            "event": "graded",
            "learner": ANA,
            "item": ITEM,
            "scoreGiven": 1,
            "maxScore": 1,
            "time": "2026-11-24T09:01:01Z",
        }
    ]
    answer = json.loads(sense(url, "not-a-key", events, tmp_path, "print"))
    assert answer["status"] == 401 and answer["body"]["error"]["field"] == "Authorization"
