"""A tenant served a model of its own: a version its data scientists trained and registered under
the tenant's name serves that tenant alone, in every worker and after a restart; every other
tenant keeps the deployment's model. The promotion gate compares it with what the tenant is
served, on the tenant's own answers. With a REAL local MLflow registry: the tenant's admin key
names a version of the tenant's registered model (no other), and an alias is followed."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from configs import load_config
from serving.app import build_engine, create_app
from serving.auth import create_key
from serving.model_provider import ModelRefused
from tests.serving.test_deployment import worker
from tests.serving.test_gate_reload import saved_logistic

SAMPLE = (
    Path(__file__).resolve().parents[2] / "data" / "kt_sample" / "assist2009_pid" / "assist2009_pid_train1_head150.csv"
)


def next_version(client: TestClient, h: dict, learner: str) -> str:
    r = client.get(f"/v1/learners/{learner}/next?grade=3", headers=h)
    assert r.status_code == 200, r.text
    return r.json()["model_version"]


def answers(client: TestClient, h: dict, learner: str, n: int = 4) -> None:
    items = [i for i in client.app.state.engine.catalog if i.standards[0] == "3.OA.A.1"][:n]
    events = [
        {"id": f"{learner}-{k}", "learner_id": learner, "item_id": i.id, "correct": True} for k, i in enumerate(items)
    ]
    assert client.post("/v1/events", json=events, headers=h).status_code == 200


def test_a_tenants_model_serves_it_alone_in_every_worker(store) -> None:
    t = {"Authorization": f"Bearer {create_key(store, 't', ['read', 'ingest', 'admin'])}"}
    u = {"Authorization": f"Bearer {create_key(store, 'u', ['read', 'ingest', 'admin', 'operator'])}"}
    with worker(store) as a, worker(store) as b:
        deployment = a.get("/v1/model", headers=u).json()["version"]
        assert deployment.startswith("bkt")
        a.app.state.deployment.set_tenant_model("t", "bundled")
        mine = a.get("/v1/model", headers=t).json()
        assert mine["scope"] == "tenant" and mine["version"].startswith("hybrid") and mine["source"] is None
        theirs = a.get("/v1/model", headers=u).json()
        assert theirs["scope"] == "deployment" and theirs["version"] == deployment
        assert theirs["tenant_models"] == {"t": mine["version"]} and mine["tenant_models"] is None  # u: operator
        assert next_version(a, t, "s1").startswith(mine["version"])
        assert next_version(a, u, "s1") == deployment
        # b has not looked yet; then it serves t the same, and u still the deployment's
        assert b.get("/v1/model", headers=t).json()["scope"] == "deployment"
        assert b.app.state.deployment.sync() is True
        assert b.get("/v1/model", headers=t).json()["version"] == mine["version"]
        assert next_version(b, u, "s1") == deployment
        # t's learners are folded with t's model, u's with the deployment's
        answers(b, t, "s2")
        answers(b, u, "s2")
        assert store.get("t", "s2").model_version.startswith(mine["version"])
        assert store.get("u", "s2").model_version.startswith(deployment)
        assert 'zpd_tenant_model_info{name="hybrid",tenant="t",version="' + mine["version"] in b.get("/metrics").text
        # the operator swaps the deployment's model: t keeps its own
        assert a.post("/v1/model/reload", json={"uri": "bkt"}, headers=u).status_code == 200
        assert a.get("/v1/model", headers=t).json()["version"] == mine["version"]
    with worker(store) as c:  # a restarted worker comes up with it
        assert c.get("/v1/model", headers=t).json()["version"] == mine["version"]
        assert next_version(c, t, "s2").startswith(mine["version"])
        # back to the deployment's model, here and (after a sync) everywhere
        back = c.delete("/v1/model/tenant", headers=t)
        assert back.status_code == 200, back.text
        assert back.json()["previous"] == mine["version"] and back.json()["scope"] == "deployment"
        assert next_version(c, t, "s2") == deployment
        assert store.get("t", "s2").model_version.startswith(deployment)  # folded again on read
        assert c.delete("/v1/model/tenant", headers=t).json()["previous"] == deployment  # nothing to undo
        assert (
            'zpd_tenant_model_info{name="hybrid",tenant="t",version="' + mine["version"] + '"} 0.0'
            in c.get("/metrics").text
        )
    with worker(store) as d:
        assert d.get("/v1/model", headers=t).json()["scope"] == "deployment"


def test_the_gate_compares_on_the_tenants_own_answers(tmp_path) -> None:
    """A challenger worse than the tenant's model on the tenant's answers is refused for it; a
    tenant without answers has nothing to compare on: the other tenant's answers are not its."""
    from serving.stores import open_store

    store = open_store(f"sqlite:///{tmp_path / 'zpd.db'}")
    config = load_config(env={})
    engine = build_engine(config, model_uri="bkt")
    t = {"Authorization": f"Bearer {create_key(store, 't', ['read', 'ingest', 'admin'])}"}
    with TestClient(create_app(config, store=store, engine=engine)) as client:
        catalog = engine.catalog
        easy = [i for i in catalog if i.standards[0] == "K.CC.A.1"][:3]
        hard = [i for i in catalog if i.standards[0] == "3.NF.A.1"][:3]
        events = [
            {"id": f"e{n}-{k}", "learner_id": f"s{n}", "item_id": item.id, "correct": item in easy}
            for n in range(20)
            for k, item in enumerate(easy + hard)
        ]
        assert client.post("/v1/events", json=events, headers=t).status_code == 200
        folder = saved_logistic(tmp_path / "random", list(engine.graph.learning), [i.id for i in catalog][:50], seed=3)
        deployment = client.app.state.deployment
        with pytest.raises(ModelRefused, match="challenger vs champion"):
            deployment.set_tenant_model("t", str(folder))
        assert client.get("/v1/model", headers=t).json()["scope"] == "deployment"
        loaded = deployment.set_tenant_model("u", str(folder))  # u has no answers of its own
        check = next(c for c in loaded.gate["checks"] if c["name"] == "challenger vs champion")
        assert check["detail"] == "no held-out answers to compare on"
        forced = deployment.set_tenant_model("t", str(folder), "a pilot the district asked for")
        assert forced.forced == "a pilot the district asked for"
        assert client.get("/v1/model", headers=t).json()["forced"] == "a pilot the district asked for"
    store.close()


@pytest.mark.slow  # an MLflow registry and two training runs
def test_a_tenants_admin_serves_it_a_version_of_its_registered_model(tmp_path) -> None:
    from serving.stores import open_store
    from zpd.cli import app as cli

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    runner = CliRunner()
    env = {"ZPD_MLFLOW_TRACKING_URI": uri}
    trained = []
    for seed in (0, 1):
        run = runner.invoke(
            cli,
            [
                "train",
                "--data",
                str(SAMPLE),
                "--format",
                "akt",
                "--alignment",
                str(Path(__file__).resolve().parents[2] / "data" / "alignments" / "assist2009_ccss.csv"),
                "--model",
                "logistic",
                "--epochs",
                "2",
                "--seed",
                str(seed),
                "--registered-model",
                "zpd-learner-t",
                "--no-progress",
                "--json",
            ],
            env=env,
        )
        assert run.exit_code == 0, run.output
        trained.append(json.loads(run.stdout))
    assert [s["registered_model"] for s in trained] == ["zpd-learner-t"] * 2
    v1, v2 = (s["model_version"] for s in trained)
    listed = runner.invoke(cli, ["models", "list", "--registered-model", "zpd-learner-t", "--json"], env=env)
    assert [v["version"] for v in json.loads(listed.stdout)["versions"]] == [v1, v2]
    assert runner.invoke(cli, ["models", "promote", v1, "--registered-model", "zpd-learner-t"], env=env).exit_code == 0

    config = load_config(env=env)
    config = config.model_copy(update={"serving": config.serving.model_copy(update={"model_poll_s": 0.3})})
    store = open_store(f"sqlite:///{tmp_path / 'zpd.db'}")
    t = {"Authorization": f"Bearer {create_key(store, 't', ['read', 'ingest', 'admin'])}"}
    reader = {"Authorization": f"Bearer {create_key(store, 't', ['read'])}"}
    u = {"Authorization": f"Bearer {create_key(store, 'u', ['read', 'admin'])}"}
    with TestClient(create_app(config, store=store, engine=build_engine(config, model_uri="bundled"))) as c:
        deployment = c.get("/v1/model", headers=u).json()["version"]
        put = c.put("/v1/model/tenant", json={"uri": "models:/zpd-learner-t@champion"}, headers=t)
        assert put.status_code == 200, put.text
        assert put.json()["version"] == f"zpd-learner-t/{v1}" and put.json()["previous"] == deployment
        assert next_version(c, t, "s1").startswith(f"zpd-learner-t/{v1}")
        assert next_version(c, u, "s1") == deployment
        # only a version of the tenant's own registered model, named by the tenant's admin
        for wrong in ("models:/zpd-learner@champion", "models:/zpd-learner-u/1", "models:/zpd-learner-t2@champion"):
            r = c.put("/v1/model/tenant", json={"uri": wrong}, headers=t)
            assert r.status_code == 403 and r.json()["error"]["field"] == "uri", (wrong, r.text)
            assert "models:/zpd-learner-t@ALIAS" in r.json()["error"]["message"]
        for malformed in ("/etc", "bundled", "bkt", "models:/zpd-learner-t", "models:/zpd-learner-t/1/x"):
            r = c.put("/v1/model/tenant", json={"uri": malformed}, headers=t)
            assert r.status_code == 422 and r.json()["error"]["field"] == "uri", (malformed, r.text)
        assert c.put("/v1/model/tenant", json={"uri": "models:/zpd-learner-t@champion"}, headers=u).status_code == 403
        assert c.put("/v1/model/tenant", json={"uri": "models:/zpd-learner-t/1"}, headers=reader).status_code == 403
        assert c.delete("/v1/model/tenant", headers=reader).status_code == 403
        missing = c.put("/v1/model/tenant", json={"uri": "models:/zpd-learner-t@nobody"}, headers=t)
        assert missing.status_code == 409 and "nothing is registered" in missing.json()["error"]["message"]
        assert c.get("/v1/model", headers=t).json()["version"] == f"zpd-learner-t/{v1}"
        # the alias is followed
        assert (
            runner.invoke(cli, ["models", "promote", v2, "--registered-model", "zpd-learner-t"], env=env).exit_code == 0
        )
        deadline = time.time() + 30
        while time.time() < deadline and c.get("/v1/model", headers=t).json()["version"] != f"zpd-learner-t/{v2}":
            time.sleep(0.2)
        assert c.get("/v1/model", headers=t).json()["version"] == f"zpd-learner-t/{v2}"
        assert c.get("/v1/model", headers=u).json()["version"] == deployment
        back = c.delete("/v1/model/tenant", headers=t).json()
        assert back["previous"] == f"zpd-learner-t/{v2}" and back["version"] == deployment
    store.close()


def test_a_tenant_on_a_framework_of_its_own_is_gated_over_it(store, tmp_path) -> None:
    """A district on its own standards trains over its own codes: its model is checked over the
    district's framework and catalog, where the deployment's graph would find none of them, in
    the worker it is set in and in every other."""
    from engine.case import graph_to_case

    h = {"Authorization": f"Bearer {create_key(store, 't', ['read', 'ingest', 'admin', 'operator'])}"}
    with worker(store) as a, worker(store) as b:
        package = graph_to_case(a.app.state.engine.graph)
        package["CFDocument"]["title"] = "District standards"
        for node in package["CFItems"]:
            node["humanCodingScheme"] = "D." + node["humanCodingScheme"]
        imported = a.post("/v1/standards/import?allow_empty=true", json=package, headers=h)
        assert imported.status_code == 200, imported.text
        codes = [c for c in a.app.state.service.graph("t").learning if c.startswith("D.3.")][:30]  # 7% of them
        items = [
            {
                "id": f"d-{k}",
                "title": f"Task {k}",
                "standards": [codes[k % 30]],
                "modality": "online_practice",
                "duration_minutes": 10,
            }
            for k in range(60)
        ]
        put = a.put("/v1/items", json=items, headers=h)
        assert put.status_code == 200, put.text
        folder = saved_logistic(tmp_path / "district", codes, [i["id"] for i in items])
        with pytest.raises(ModelRefused, match="standard coverage"):  # over the deployment's graph: none of its codes
            a.app.state.deployment.set_model(str(folder))
        loaded = a.app.state.deployment.set_tenant_model("t", str(folder))
        assert loaded.gate["passed"] is True and loaded.forced is None
        assert next_version(a, h, "s1").startswith(loaded.version + "~")  # over the district's framework
        assert b.app.state.deployment.sync() is True
        assert b.get("/v1/model", headers=h).json()["version"] == loaded.version
        assert b.app.state.engine.models.tenant_errors == {}
        assert next_version(b, h, "s1") == next_version(a, h, "s1")


def test_a_tenants_model_that_no_longer_loads_leaves_it_the_deployments(store, tmp_path) -> None:
    """A published model a worker cannot load (its files gone): the worker serves the tenant the
    deployment's model, and says why to the operator, not to the tenant."""
    import shutil

    from serving.routes.model import HIDDEN_ERROR

    t = {"Authorization": f"Bearer {create_key(store, 't', ['read', 'admin'])}"}
    operator = {"Authorization": f"Bearer {create_key(store, 't', ['read', 'operator'])}"}
    folder = tmp_path / "copy"
    shutil.copytree(Path(__file__).resolve().parents[2] / "data" / "models" / "default", folder)
    with worker(store) as a:
        deployment = a.get("/v1/model", headers=t).json()["version"]
        assert a.app.state.deployment.set_tenant_model("t", str(folder)).version != deployment
    shutil.rmtree(folder)
    with worker(store) as b:
        seen = b.get("/v1/model", headers=t).json()
        assert seen["scope"] == "deployment" and seen["version"] == deployment
        assert seen["last_error"] == HIDDEN_ERROR
        assert str(folder) in b.get("/v1/model", headers=operator).json()["last_error"]
        assert next_version(b, t, "s1") == deployment
        # the answer of the tenant's own routes hides what GET /v1/model hides
        assert b.post("/v1/model/reload", json={"uri": "/no/such/model"}, headers=operator).status_code == 409
        back = b.delete("/v1/model/tenant", headers=t).json()
        assert back["last_error"] == HIDDEN_ERROR and back["source"] is None
        assert back["deployment"]["last_error"] is None or back["deployment"]["last_error"] == HIDDEN_ERROR


def test_a_worker_holds_the_most_recently_served_tenants_models(store, tmp_path) -> None:
    """More tenants with models of their own than a worker holds (``[serving]
    tenant_models_loaded``): the least recently served is set aside and loaded again on its
    tenant's next request, which is served its own model all the same; a restarted worker loads
    as many as it holds and the others on first use; a process that folds for one tenant loads
    that tenant's alone; a model that no longer loads is not tried on every request."""
    import shutil

    from serving.deployment import served_engine

    tenants = ["t1", "t2", "t3"]
    keys = {t: {"Authorization": f"Bearer {create_key(store, t, ['read', 'ingest', 'admin'])}"} for t in tenants}
    operator = {"Authorization": f"Bearer {create_key(store, 'ops', ['read', 'operator'])}"}
    config = load_config(env={})
    config = config.model_copy(
        update={"serving": config.serving.model_copy(update={"sync_s": 0.0, "tenant_models_loaded": 2})}
    )

    def small_worker() -> TestClient:
        return TestClient(create_app(config, store=store, engine=build_engine(config, model_uri="bkt")))

    folders = {}
    for t in tenants:  # a copy each: one of them goes away below
        folders[t] = tmp_path / t
        shutil.copytree(Path(__file__).resolve().parents[2] / "data" / "models" / "default", folders[t])

    def loads(client: TestClient) -> float:
        for line in client.get("/metrics").text.splitlines():
            if line.startswith("zpd_tenant_model_loads_on_request_total "):
                return float(line.split()[1])
        raise AssertionError("no zpd_tenant_model_loads_on_request_total")

    with small_worker() as a:
        holder = a.app.state.engine.models
        for t in tenants:
            a.app.state.deployment.set_tenant_model(t, str(folders[t]))
        assert sorted(holder.published) == tenants and sorted(holder.tenants) == ["t2", "t3"]
        assert a.get("/v1/model", headers=operator).json()["tenant_models"] == {
            t: holder.published[t]["version"] for t in tenants
        }
        # t1 was set aside; its next request loads it again, and t2 (least recently served) goes
        assert loads(a) == 0
        assert next_version(a, keys["t3"], "s1").startswith("hybrid")
        assert next_version(a, keys["t1"], "s1").startswith("hybrid")
        assert sorted(holder.tenants) == ["t1", "t3"] and loads(a) == 1
        assert next_version(a, keys["t1"], "s2").startswith("hybrid") and loads(a) == 1
        answers(a, keys["t2"], "s3")
        assert store.get("t2", "s3").model_version.startswith("hybrid") and loads(a) == 2
        assert a.get("/v1/model", headers=keys["t3"]).json()["scope"] == "tenant"
    with small_worker() as b:  # a restart loads as many as it holds, the others on first use
        holder = b.app.state.engine.models
        assert len(holder.tenants) == 2 and sorted(holder.published) == tenants
        missing = next(t for t in tenants if t not in holder.tenants)
        assert b.get("/v1/model", headers=keys[missing]).json()["scope"] == "tenant"
    engine = served_engine(config, store)  # a process folding for one tenant loads its model alone
    assert engine.models.tenants == {} and engine.models.serving("t2").version.startswith("hybrid")
    assert list(engine.models.tenants) == ["t2"]
    shutil.rmtree(folders["t1"])
    t1_operator = {"Authorization": f"Bearer {create_key(store, 't1', ['read', 'operator'])}"}
    with small_worker() as c:  # t1's model no longer loads: its start-up load failed
        holder = c.app.state.engine.models
        assert sorted(holder.tenants) == ["t2", "t3"]
        deployment = c.get("/v1/model", headers=operator).json()["version"]
        attempts: list[str] = []
        sees = holder.sees
        holder.sees = lambda tenant: attempts.append(tenant) or sees(tenant)
        for k in range(3):  # served the deployment's model, and the load is not tried on each request
            assert next_version(c, keys["t1"], f"s{k}") == deployment
        assert attempts == [] and loads(c) == 0
        seen = c.get("/v1/model", headers=t1_operator).json()
        assert seen["scope"] == "deployment" and str(folders["t1"]) in seen["last_error"]
        # once the model is back and the wait is over, t1's next request loads it
        shutil.copytree(folders["t2"], folders["t1"])
        holder._retry_at["t1"] = 0.0
        assert next_version(c, keys["t1"], "s9").startswith("hybrid")
        assert attempts == ["t1"] and loads(c) == 1 and "t1" in holder.tenants
        assert c.get("/v1/model", headers=t1_operator).json()["last_error"] is None
