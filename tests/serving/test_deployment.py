"""Several workers on one store agree on the model and on each tenant's items and framework: a
change taken in by one worker reaches the others, and a restarted worker comes back with it."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient

from configs import load_config
from engine.case import graph_to_case
from serving.app import build_engine, create_app
from serving.auth import create_key
from serving.routes.model import HIDDEN_ERROR

ITEM = {
    "id": "acme-fractions-1",
    "title": "Fractions on a number line",
    "standards": ["3.NF.A.2"],
    "modality": "online_practice",
    "duration_minutes": 10,
}


def worker(store, sync_s: float = 0.0) -> TestClient:
    """One worker process: its own engine (graph, catalog, model) on the shared store."""
    config = load_config(env={})
    config = config.model_copy(update={"serving": config.serving.model_copy(update={"sync_s": sync_s})})
    return TestClient(create_app(config, store=store, engine=build_engine(config, model_uri="bkt")))


def items_on(client: TestClient, h: dict, standard: str) -> set[str]:
    return {i["id"] for i in client.get(f"/v1/items?standard={standard}&limit=1000", headers=h).json()["items"]}


def test_workers_converge_and_a_restart_keeps_the_changes(store) -> None:
    h = {"Authorization": f"Bearer {create_key(store, 't', ['read', 'admin', 'operator'])}"}
    with worker(store) as a, worker(store) as b:
        assert a.get("/v1/model", headers=h).json()["version"].startswith("bkt")
        assert a.put("/v1/items", json=[ITEM], headers=h).json()["created"] == 1
        assert a.post("/v1/model/reload", json={"uri": "bundled"}, headers=h).status_code == 200
        served = a.get("/v1/model", headers=h).json()["version"]
        assert served.startswith("hybrid")
        # the item is the tenant's: b serves it to the tenant at once, and to no other tenant
        assert ITEM["id"] in items_on(b, h, "3.NF.A.2")
        other = {"Authorization": f"Bearer {create_key(store, 'u', ['read'])}"}
        assert ITEM["id"] not in items_on(b, other, "3.NF.A.2")
        assert ITEM["id"] in b.app.state.service.core("t").index.catalog  # b can recommend it to t
        assert ITEM["id"] not in b.app.state.service.core("u").index.catalog
        # b has not looked for the model yet
        assert b.get("/v1/model", headers=h).json()["version"].startswith("bkt")
        assert b.app.state.deployment.sync() is True
        assert b.get("/v1/model", headers=h).json()["version"] == served
        assert b.app.state.deployment.sync() is False  # nothing new
        # a broken model is refused where it is asked for and never published
        bad = a.post("/v1/model/reload", json={"uri": "/no/such/model"}, headers=h)
        assert bad.status_code == 409
        # why it failed and where models come from are the operator's to read, not a tenant's
        operator, reader = a.get("/v1/model", headers=h).json(), a.get("/v1/model", headers=other).json()
        assert "/no/such/model" in operator["last_error"] and operator["source"]
        assert reader["last_error"] == HIDDEN_ERROR and reader["source"] is None
        assert reader["version"] == operator["version"] and reader["gate"] == operator["gate"]
        assert b.app.state.deployment.sync() is False
        assert a.get("/v1/model", headers=h).json()["version"] == served
    with worker(store) as c:  # a restarted worker comes up with what the others serve
        assert ITEM["id"] in items_on(c, h, "3.NF.A.2")
        model = c.get("/v1/model", headers=h).json()
        assert model["version"] == served and model["deployment"]["last_error"] is None


def test_a_tenants_framework_is_its_own_and_every_worker_serves_it(store, tmp_path) -> None:
    h = {"Authorization": f"Bearer {create_key(store, 't', ['read', 'ingest', 'admin', 'operator'])}"}
    other = {"Authorization": f"Bearer {create_key(store, 'u', ['read'])}"}
    with worker(store) as a, worker(store) as b:
        shared = a.app.state.engine.graph
        package = graph_to_case(shared)
        package["CFDocument"]["title"] = "District math framework 2027"
        # the district's framework drops one prerequisite link: its learners are planned on it
        edge = next(e for e in package["CFAssociations"] if e["associationType"] == "precedes")
        package["CFAssociations"] = [e for e in package["CFAssociations"] if e is not edge]
        r = a.post("/v1/standards/import", json=package, headers=h)
        assert r.status_code == 200 and r.json()["title"] == "District math framework 2027"
        assert r.json()["model_version"] != b.get("/v1/model", headers=h).json()["version"]  # rebuilt for it
        assert b.app.state.service.graph("t").title == "District math framework 2027"  # b serves it at once
        assert b.app.state.service.graph("u").title == shared.title  # another tenant keeps the shared one
        assert b.app.state.engine.graph.title == shared.title  # the deployment keeps its own
        assert b.get("/v1/standards/3.NF.A.1", headers=h).status_code == 200
        assert b.get("/v1/learners/k1/next", headers=h).status_code == 200
        assert b.get("/v1/standards/3.NF.A.1", headers=other).status_code == 200
        # a package with no item aligned to it is refused and changes nothing
        empty = {"CFDocument": {"identifier": "d1", "title": "Empty"}, "CFItems": [], "CFAssociations": []}
        refused = a.post("/v1/standards/import", json=empty, headers=h)
        assert refused.status_code == 422
        assert b.app.state.service.graph("t").title == "District math framework 2027"
        # `zpd replay --check` holds the learners' states against the tenant's framework, as the API does
        item = next(i.id for i in b.app.state.service.catalog("t") if i.standards == ("3.NF.A.1",))
        answers = [{"id": f"e{k}", "learner_id": "k1", "item_id": item, "correct": True} for k in range(3)]
        assert b.post("/v1/events", json=answers, headers=h).status_code == 200
    checked = replay(store, tmp_path, "--check")
    assert checked["learners"] == checked["matching"] == 1 and checked["model_version"].startswith("bkt")


def replay(store, folder, *args: str) -> dict:
    """``zpd replay --tenant t --json`` on ``store`` (graph BKT, as the workers here serve)."""
    import json

    from typer.testing import CliRunner

    from zpd.cli import app

    config = folder / "zpd.toml"
    config.write_text(
        f'[store]\nurl = "{store.url}"\n[serving]\nmodel_uri = "bkt"\ndata_dir = "{folder.as_posix()}"\n'
        f'[mlflow]\ntracking_uri = "sqlite:///{(folder / "mlflow.db").as_posix()}"\n'
    )
    run = CliRunner().invoke(app, ["--config", str(config), "replay", "--tenant", "t", "--json", *args])
    assert run.exit_code == 0, run.output
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_an_item_moved_by_one_worker_counts_on_its_new_standards_in_every_worker(store, tmp_path) -> None:
    """A worker that has not read the move yet still folds on the old standards, and stamps the
    learner so; the next worker that reads the learner with the move folds them again."""
    h = {"Authorization": f"Bearer {create_key(store, 't', ['read', 'ingest', 'admin'])}"}

    def answer(k: int) -> dict:
        return {"id": f"e{k}", "learner_id": "l1", "item_id": ITEM["id"], "correct": True}

    def evidence(client: TestClient) -> tuple[set[str], int]:
        """The standards with evidence (a part counts as its standard) and the answers folded."""
        profile = client.get("/v1/learners/l1/profile", params={"recent": 0}, headers=h).json()
        codes = {".".join(code.split(".")[:4]) for code, m in profile["mastery"].items() if m["evidence"]}
        return codes, max(m["evidence"] for m in profile["mastery"].values())

    with worker(store) as a, worker(store) as b, worker(store, sync_s=600) as late:
        assert a.put("/v1/items", json=[ITEM], headers=h).status_code == 200
        assert a.post("/v1/events", json=[answer(0), answer(1)], headers=h).status_code == 200
        assert evidence(late) == ({"3.NF.A.2"}, 2)  # `late` reads the tenant's items now, and not again
        moved = a.put("/v1/items", json=[{**ITEM, "standards": ["4.NF.A.1"]}], headers=h).json()
        assert moved["realigned"] == [ITEM["id"]]
        assert evidence(b) == ({"4.NF.A.1"}, 2)  # b reads the move, and folds the learner again
        assert late.post("/v1/events", json=[answer(2)], headers=h).status_code == 200
        assert evidence(late) == ({"3.NF.A.2"}, 3)  # `late` has not read the move: its own stamp
        assert evidence(a) == ({"4.NF.A.1"}, 3)  # read with the move: folded again
    checked = replay(store, tmp_path, "--check")
    assert checked["learners"] == checked["matching"] == 1


def test_the_sync_thread_applies_changes_by_itself(store) -> None:
    h = {"Authorization": f"Bearer {create_key(store, 't', ['read', 'admin', 'operator'])}"}
    with worker(store) as a, worker(store, sync_s=0.1) as b:
        a.put("/v1/items", json=[ITEM], headers=h)
        deadline = time.time() + 20
        while ITEM["id"] not in items_on(b, h, "3.NF.A.2") and time.time() < deadline:
            time.sleep(0.1)
        assert ITEM["id"] in items_on(b, h, "3.NF.A.2")
