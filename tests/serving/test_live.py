"""Over real HTTP: the `zpd serve` command, model reload under load, store outage, replay."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from typer.testing import CliRunner

from configs import load_config
from models.bkt import GraphBKT
from serving.app import create_app
from serving.auth import create_key
from serving.stores import open_store
from zpd.cli import app as cli

from .conftest import LiveServer, RedisServer, free_port

pytestmark = pytest.mark.slow  # servers over real HTTP and subprocesses

ITEM = "gen-K.CC.A.1-check"


def make_config(tmp_path: Path, store_url: str) -> Path:
    path = tmp_path / "zpd.toml"
    path.write_text(
        f'[store]\nurl = "{store_url}"\n[serving]\nmodel_uri = "bkt"\ndata_dir = "{tmp_path.as_posix()}"\n'
        f'[mlflow]\ntracking_uri = "sqlite:///{(tmp_path / "mlflow.db").as_posix()}"\n'
    )
    return path


def test_zpd_serve_command_end_to_end(tmp_path: Path) -> None:
    config = make_config(tmp_path, f"sqlite:///{(tmp_path / 'zpd.db').as_posix()}")
    port = free_port()
    exe = Path(sys.executable).parent / "zpd"
    proc = subprocess.Popen(
        [str(exe), "--config", str(config), "serve", "--demo-key", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.time() + 90
        while time.time() < deadline:
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        else:
            pytest.fail("zpd serve did not come up")
        key = (tmp_path / "demo_key.txt").read_text().strip()
        h = {"Authorization": f"Bearer {key}"}
        r = httpx.post(
            base + "/v1/events", headers=h, json={"id": "w1", "learner_id": "ana", "item_id": ITEM, "correct": True}
        )
        assert r.status_code == 200 and r.json()["accepted"] == 1
        nxt = httpx.get(base + "/v1/learners/ana/next", headers=h).json()
        assert nxt["recommendations"] and nxt["model_version"].startswith("bkt-graph@")
        playlist = httpx.post(base + "/v1/learners/ana/playlist", headers=h, json={"session_minutes": 60}).json()
        assert 0 < sum(a["minutes"] for a in playlist["activities"]) <= 60
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=20)
    assert "demo API key (tenant 'demo'): zpd_" in out


def test_two_workers_pool_metrics_and_follow_a_model_reload(tmp_path: Path) -> None:
    """`zpd serve --workers 2`: /metrics sums both workers whichever one answers, and a model
    reload taken in by one worker reaches the other."""
    config = make_config(tmp_path, f"sqlite:///{(tmp_path / 'zpd.db').as_posix()}")
    port = free_port()
    exe = Path(sys.executable).parent / "zpd"
    proc = subprocess.Popen(
        [str(exe), "--config", str(config), "serve", "--demo-key", "--port", str(port), "--workers", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.time() + 120
        ready = 0
        while time.time() < deadline and ready < 10:  # both workers up: many fresh connections answer
            try:
                ready = ready + 1 if httpx.get(base + "/readyz", timeout=2).status_code == 200 else 0
            except httpx.HTTPError:
                ready = 0
                time.sleep(0.3)
        assert ready >= 10, "zpd serve --workers 2 did not come up"
        time.sleep(3)  # the second worker may still be loading
        for _ in range(40):  # fresh connections: both workers answer some
            assert httpx.get(base + "/healthz").status_code == 200
        line = 'zpd_requests_total{method="GET",route="/healthz",status="200"} 40.0'
        for _ in range(6):
            assert line in httpx.get(base + "/metrics").text
        key = (tmp_path / "demo_key.txt").read_text().strip()
        h = {"Authorization": f"Bearer {key}"}
        assert httpx.post(base + "/v1/model/reload", headers=h, json={"uri": "bundled"}, timeout=120).status_code == 200
        time.sleep(4)  # sync_s is 2 s
        versions = {httpx.get(base + "/v1/model", headers=h).json()["version"] for _ in range(12)}
        assert len(versions) == 1 and versions.pop().startswith("hybrid")
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


@pytest.fixture()
def live(tmp_path, shared_engine):
    from serving.model_provider import ModelHolder
    from serving.service import Engine

    # a private engine: this test swaps its model
    e = shared_engine
    holder = ModelHolder(e.graph, e.catalog, "sqlite:///" + str(tmp_path / "mlflow.db"))
    holder.load_first(["bkt"])
    engine = Engine(e.config, e.graph, e.catalog, e.index, holder)
    store = open_store(f"sqlite:///{tmp_path / 'zpd.db'}")
    key = create_key(store, "t", ["ingest", "read", "admin", "operator"])
    server = LiveServer(create_app(load_config(env={}), store=store, engine=engine))
    yield server, {"Authorization": f"Bearer {key}"}, tmp_path
    server.stop()
    store.close()


def test_model_reload_drops_no_request_and_refuses_a_broken_model(live) -> None:
    server, h, tmp = live
    httpx.post(
        server.url + "/v1/events", headers=h, json={"id": "e1", "learner_id": "s1", "item_id": ITEM, "correct": True}
    )
    old = httpx.get(server.url + "/v1/model", headers=h).json()["version"]
    good = GraphBKT.from_graph(server.server.config.app.state.engine.graph, p_learn=0.3).save(tmp / "good")
    broken = tmp / "broken"
    broken.mkdir()
    (broken / "config.json").write_text(
        json.dumps(
            {
                "model": "bkt",
                "format_version": 1,
                "config": {"standards": ["A"], "params": {"p_slip": 0.6, "p_guess": 0.6}},
            }
        )
    )
    (broken / "weights.npz").write_bytes(b"not a zip")

    statuses, versions, stop = [], set(), threading.Event()

    def hammer() -> None:
        with httpx.Client(base_url=server.url, headers=h, timeout=10) as client:
            while not stop.is_set():
                r = client.get("/v1/learners/s1/next")
                statuses.append(r.status_code)
                if r.status_code == 200:
                    versions.add(r.json()["model_version"])

    threads = [threading.Thread(target=hammer) for _ in range(3)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    refused = httpx.post(server.url + "/v1/model/reload", headers=h, json={"uri": str(broken)}, timeout=30)
    assert refused.status_code == 409 and refused.json()["error"]["message"].endswith(f"still serving {old}")
    assert httpx.get(server.url + "/v1/model", headers=h).json()["version"] == old
    swapped = httpx.post(server.url + "/v1/model/reload", headers=h, json={"uri": str(good)}, timeout=30)
    assert swapped.status_code == 200 and swapped.json()["previous"] == old
    time.sleep(0.5)
    stop.set()
    for t in threads:
        t.join()
    assert statuses and set(statuses) == {200}, f"dropped or failed requests: {sorted(set(statuses))}"
    new = swapped.json()["version"]
    assert new != old and versions == {old, new}
    nxt = httpx.get(server.url + "/v1/learners/s1/next", headers=h).json()
    assert nxt["model_version"] == new  # the learner's state was rebuilt for the new model


def test_store_outage_is_503_not_a_hang(tmp_path, shared_engine) -> None:
    redis = RedisServer(tmp_path)
    store = open_store(redis.url)
    key = create_key(store, "t", ["ingest", "read"])
    h = {"Authorization": f"Bearer {key}"}
    server = LiveServer(create_app(load_config(env={}), store=store, engine=shared_engine))
    try:
        assert (
            httpx.post(
                server.url + "/v1/events",
                headers=h,
                json={"id": "e1", "learner_id": "s1", "item_id": ITEM, "correct": True},
            ).status_code
            == 200
        )
        redis.stop()
        started = time.time()
        r = httpx.get(server.url + "/v1/learners/s1/next", headers=h, timeout=30)
        assert r.status_code == 503 and r.json()["error"]["code"] == "store_unavailable"
        assert time.time() - started < 15
        assert httpx.get(server.url + "/readyz", timeout=30).status_code == 503
        r = httpx.post(
            server.url + "/v1/events",
            headers=h,
            json={"id": "e2", "learner_id": "s1", "item_id": ITEM, "correct": True},
            timeout=30,
        )
        assert r.status_code == 503
    finally:
        server.stop()
        store.close()


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_replay_rebuilds_the_live_state(backend, tmp_path, shared_engine, request) -> None:
    url = (
        f"sqlite:///{(tmp_path / 'zpd.db').as_posix()}" if backend == "sqlite" else request.getfixturevalue("redis_url")
    )
    store = open_store(url)
    key = create_key(store, "t", ["ingest", "read", "teacher"])
    h = {"Authorization": f"Bearer {key}"}
    from fastapi.testclient import TestClient

    rng = np.random.default_rng(0)
    items = [i.id for i in shared_engine.catalog][:200]
    with TestClient(create_app(load_config(env={}), store=store, engine=shared_engine)) as c:
        events = [
            {
                "id": f"e{i}",
                "learner_id": f"s{i % 4}",
                "item_id": items[int(rng.integers(len(items)))],
                "correct": bool(rng.random() < 0.7),
                "timestamp": 1_800_000_000 + i * 60,
            }
            for i in range(120)
        ]
        for start in range(0, 120, 25):
            assert c.post("/v1/events", json=events[start : start + 25], headers=h).status_code == 200
        state = c.post("/v1/learners/s0/placement", headers=h).json()
        for _ in range(3):
            state = c.post(
                "/v1/learners/s0/placement/answers",
                headers=h,
                json={"standard": state["question"]["standard"], "correct": True},
            ).json()
    store.close()
    config = make_config(tmp_path, url)
    check = CliRunner().invoke(cli, ["--config", str(config), "replay", "--check", "--json"])
    assert check.exit_code == 0, check.output
    summary = json.loads(check.stdout.strip().splitlines()[-1])
    assert summary["learners"] == 4 and summary["matching"] == 4

    # damage one learner's state: --check notices, replay repairs
    store = open_store(url)
    record = store.get("t", "s1")
    from models.base import state_from_bytes, state_to_bytes

    damaged = state_from_bytes(record.state)
    damaged["p"] = damaged["p"] * 0.5
    record.state = state_to_bytes(damaged)
    store.commit(record, record.version, [])
    store.close()
    assert CliRunner().invoke(cli, ["--config", str(config), "replay", "--check"]).exit_code == 1
    fixed = CliRunner().invoke(cli, ["--config", str(config), "replay", "--json"])
    assert json.loads(fixed.stdout.strip().splitlines()[-1])["rebuilt"] == 1
    assert CliRunner().invoke(cli, ["--config", str(config), "replay", "--check"]).exit_code == 0


def test_the_command_line_works_with_the_model_the_api_serves(tmp_path: Path) -> None:
    """A model a worker swapped in (a reload, forced or not) is what the command line's replays,
    imports and LRS pulls fold with, not the configured one: here the configuration names graph
    BKT and the API serves the bundled model."""
    from configs import load_config
    from serving.app import build_engine
    from serving.deployment import Deployment

    url = f"sqlite:///{(tmp_path / 'zpd.db').as_posix()}"
    config = make_config(tmp_path, url)
    with open_store(url) as store:
        engine = build_engine(load_config(config, env={}))
        assert engine.models.current is not None and engine.models.current.version.startswith("bkt-graph@")
        deployed = Deployment(engine, store).set_model("bundled").version
    assert deployed.startswith("hybrid@")
    run = CliRunner().invoke(cli, ["--config", str(config), "replay", "--json"])
    assert run.exit_code == 0, run.output
    assert json.loads(run.stdout.strip().splitlines()[-1])["model_version"] == deployed
    # a tenant served a model of its own: the command line folds its learners with that one
    from fastapi.testclient import TestClient

    from serving.app import create_app
    from serving.auth import create_key

    with open_store(url) as store:
        engine = build_engine(load_config(config, env={}))
        own = Deployment(engine, store).set_tenant_model("t", "bkt").version
        keys = {t: {"Authorization": f"Bearer {create_key(store, t, ['ingest'])}"} for t in ("t", "u")}
        item = next(iter(engine.catalog)).id
        with TestClient(create_app(load_config(config, env={}), store=store, engine=engine)) as client:
            for t, h in keys.items():
                events = [
                    {"id": f"{t}-{k}", "learner_id": "s1", "item_id": item, "correct": k % 2 == 0} for k in range(3)
                ]
                assert client.post("/v1/events", json=events, headers=h).status_code == 200
        assert store.get("t", "s1").model_version.startswith(own)
        assert store.get("u", "s1").model_version.startswith(deployed)
    run = CliRunner().invoke(cli, ["--config", str(config), "replay", "--check", "--json"])
    assert run.exit_code == 0, run.output
    replayed = json.loads(run.stdout.strip().splitlines()[-1])
    assert replayed["tenant_models"] == {"t": own} and replayed["matching"] == replayed["learners"] == 2


def test_zpd_serve_logs_its_own_work_at_the_level_asked(tmp_path: Path, shared_engine) -> None:
    """``--log-level info`` reaches the engine's loggers in every worker, through uvicorn's handler:
    here, the roster each worker reads as it starts."""
    from engine.roster import load_bundle
    from serving.auth import create_key
    from serving.service import LearnerService
    from serving.stores import open_store

    from .conftest import ZpdServer
    from .test_rosters import SCHOOL

    url = f"sqlite:///{(tmp_path / 'zpd.db').as_posix()}"
    with open_store(url) as store:
        LearnerService(shared_engine, store).import_roster("school", load_bundle(SCHOOL))
        create_key(store, "school", ["admin"])
    server = ZpdServer(make_config(tmp_path, url), args=("--log-level", "info", "--workers", "2"))
    try:
        deadline = time.time() + 60
        while time.time() < deadline and server.log.read_text().count("tenant school: roster read at start") < 2:
            time.sleep(0.2)
        text = server.log.read_text()
        assert text.count("INFO:     tenant school: roster read at start in") == 2, text[-3000:]
        assert "(32 users, 2 classes, 32 enrollments)" in text
    finally:
        server.stop()
