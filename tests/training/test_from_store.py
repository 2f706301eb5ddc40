"""`zpd train --from-store URL --tenant T` trains on the answers a server stored, with its items
and standards as served: the model covers the deployment's standards without any alignment, and
exposures and voided answers are not training data."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

pytestmark = pytest.mark.slow  # a server's store, a training run and an MLflow registry


def test_training_on_the_stored_answers(tmp_path) -> None:
    from fastapi.testclient import TestClient

    from configs import load_config
    from serving.app import build_engine, create_app
    from serving.auth import create_key
    from serving.export import export_answers
    from serving.stores import open_store
    from zpd.cli import app

    url = f"sqlite:///{tmp_path / 'zpd.db'}"
    store = open_store(url)
    config = load_config(env={})
    engine = build_engine(config, model_uri="bkt")
    key = create_key(store, "school", ["ingest"])
    rng = np.random.default_rng(0)
    first = {}
    for item in engine.catalog:  # one item of each of 80 standards of grades 3-5
        if item.standards[0][:2] in ("3.", "4.", "5.") and item.standards[0] not in first:
            first[item.standards[0]] = item
    items = list(first.values())[:80]
    events = []
    for n in range(40):
        skill = rng.normal()
        for k in range(20):
            item = items[int(rng.integers(len(items)))]
            events.append(
                {
                    "id": f"e{n}-{k}",
                    "learner_id": f"s{n}",
                    "item_id": item.id,
                    "correct": bool(rng.random() < 1 / (1 + np.exp(-(skill - (item.difficulty or 0.0))))),
                }
            )
    statement = {  # an exposure: stored, not an answer
        "id": "00000000-0000-4000-8000-000000000001",
        "actor": {"account": {"homePage": "https://lms.example", "name": "s0"}},
        "verb": {"id": "http://adlnet.gov/expapi/verbs/experienced"},
        "object": {"id": items[0].id},
    }
    with TestClient(create_app(config, store=store, engine=engine)) as client:
        for start in range(0, len(events), 500):
            got = client.post(
                "/v1/events", json=events[start : start + 500], headers={"Authorization": f"Bearer {key}"}
            )
            assert got.status_code == 200, got.text
        assert client.post("/v1/events", json=statement, headers={"Authorization": f"Bearer {key}"}).status_code == 200
        tiny = {"Authorization": f"Bearer {create_key(store, 'tiny', ['ingest'])}"}  # too few learners to split
        assert client.post("/v1/events", json=events[:3], headers=tiny).status_code == 200
    counts = export_answers(store, "school", tmp_path / "answers.csv")
    assert counts == {"learners": 40, "answers": 800, "left_out": 1}
    store.close()

    settings = tmp_path / "zpd.toml"
    settings.write_text(f'[mlflow]\ntracking_uri = "sqlite:///{tmp_path / "mlflow.db"}"\n')
    runner = CliRunner()
    base = ["--config", str(settings), "train", "--from-store", url]
    trained = runner.invoke(
        app, [*base, "--tenant", "school", "--model", "logistic", "--epochs", "2", "--no-progress", "--json"]
    )
    assert trained.exit_code == 0, trained.output
    summary = json.loads(trained.stdout)
    assert summary["coverage"]["standards_with_data"] > 5  # the served standards, no alignment needed
    assert sum(t["n_attempts"] for t in summary["data"].values()) == 800
    promoted = runner.invoke(app, ["--config", str(settings), "models", "promote", summary["model_version"]])
    assert promoted.exit_code == 0, promoted.output

    few = runner.invoke(app, [*base, "--tenant", "tiny", "--no-progress"])
    assert few.exit_code == 1 and f"tenant 'tiny' of {url}:" in few.output and "zpd-store-" not in few.output
    assert "answers.csv" not in few.output and "learner(s) with answers in all, too few to split" in few.output
    nobody = runner.invoke(app, [*base, "--tenant", "elsewhere", "--no-progress"])
    assert nobody.exit_code == 1 and "has no answers" in nobody.output
    mixed = runner.invoke(app, [*base, "--tenant", "school", "--data", str(tmp_path), "--format", "csv"])
    assert mixed.exit_code == 1 and "without --data and --format" in mixed.output


def test_a_tenant_on_its_own_framework_is_told_what_the_model_covers_of_it(tmp_path) -> None:
    """A district served on a framework of its own (its own codes) trains on its answers: the
    trained part covers the district's standards, the run says so, and it is warned that the
    promotion gate checks the deployment's graph (not pointed at an alignment file it does not need)."""
    from fastapi.testclient import TestClient

    from configs import load_config
    from engine.case import graph_to_case
    from serving.app import build_engine, create_app
    from serving.auth import create_key
    from serving.stores import open_store
    from zpd.cli import app

    url = f"sqlite:///{tmp_path / 'zpd.db'}"
    store = open_store(url)
    config = load_config(env={})
    engine = build_engine(config, model_uri="bkt")
    h = {"Authorization": f"Bearer {create_key(store, 'district', ['ingest', 'admin'])}"}
    package = graph_to_case(engine.graph)
    package["CFDocument"]["title"] = "District math framework"
    for entry in package["CFItems"]:
        if entry.get("humanCodingScheme"):
            entry["humanCodingScheme"] = "D-" + entry["humanCodingScheme"]
    # items on thirty grade-3 standards only (7% of the framework): a partial catalog, as a
    # district's first upload is
    codes = [f"D-{u}" for u in engine.graph.sort(u for u in engine.graph.learning if u.startswith("3."))][:30]
    items = [
        {
            "id": f"d-{code}-{k}",
            "title": f"{code} task {k}",
            "standards": [code],
            "modality": "online_practice",
            "duration_minutes": 10,
        }
        for code in codes
        for k in range(3)
    ]
    rng = np.random.default_rng(1)
    events = [
        {
            "id": f"e{n}-{k}",
            "learner_id": f"s{n}",
            "item_id": items[int(rng.integers(len(items)))]["id"],
            "correct": bool(rng.random() < 0.6),
        }
        for n in range(40)
        for k in range(30)
    ]
    with TestClient(create_app(config, store=store, engine=engine)) as client:
        # no item is on the district's codes yet, and none can be added before the framework is there
        refused = client.post("/v1/standards/import", json=package, headers=h)
        assert refused.status_code == 422 and "allow_empty=true" in refused.json()["error"]["message"]
        imported = client.post("/v1/standards/import", params={"allow_empty": "true"}, json=package, headers=h)
        assert imported.status_code == 200, imported.text
        assert imported.json()["items_kept"] == 0 and "PUT /v1/items" in imported.json()["warnings"][-1]
        waiting = client.get("/v1/learners/s0/next?grade=3", headers=h)  # nothing to offer yet, and it says so
        assert waiting.status_code == 200 and waiting.json()["recommendations"] == [], waiting.text
        assert waiting.json()["empty"]["code"] == "no_items"
        playlist = client.post("/v1/learners/s0/playlist?grade=3", json={"session_minutes": 30}, headers=h).json()
        assert playlist["activities"] == [] and playlist["empty"]["code"] == "no_items"
        assert client.put("/v1/items", json=items, headers=h).status_code == 200
        offered = client.get("/v1/learners/s0/next?grade=3", headers=h).json()
        assert offered["recommendations"][0]["standard"].startswith("D-") and offered["empty"] is None
        for part in (events[:600], events[600:]):
            got = client.post("/v1/events", json=part, headers=h)
            assert got.status_code == 200 and got.json()["accepted"] == 600, got.text
    store.close()

    settings = tmp_path / "zpd.toml"
    settings.write_text(f'[mlflow]\ntracking_uri = "sqlite:///{tmp_path / "mlflow.db"}"\n')
    runner = CliRunner()
    base = ["--config", str(settings), "train", "--from-store", url, "--tenant", "district", "--model", "logistic"]
    trained = runner.invoke(app, [*base, "--epochs", "2", "--no-progress", "--json"])
    assert trained.exit_code == 0, trained.output
    summary = json.loads(trained.stdout)
    assert summary["coverage"]["standards_with_data"] == 0  # none of the deployment's codes
    own = summary["tenant_framework"]
    assert own["title"] == "District math framework" and own["standards_with_data"] == len(codes)
    assert own["standards_in_framework"] == summary["coverage"]["standards_in_graph"]
    said = runner.invoke(app, [*base, "--epochs", "1", "--no-progress"])
    assert said.exit_code == 0, said.output
    assert f"the trained part covers {len(codes)} of its" in said.stdout
    assert "--registered-model zpd-learner-district" in said.stderr and "--alignment" not in said.stderr

    # registered as the district's own model, it is served to the district alone, checked over
    # the district's framework (the deployment's graph would find none of its standards)
    own_run = runner.invoke(
        app, [*base, "--epochs", "2", "--registered-model", "zpd-learner-district", "--no-progress"]
    )
    assert own_run.exit_code == 0, own_run.output
    assert "name the version (models:/zpd-learner-district/1)" in own_run.stderr
    assert 'PUT /v1/model/tenant {"uri": "models:/zpd-learner-district/1"}' in own_run.stdout
    served = load_config(settings, env={})
    store = open_store(url)
    other = {"Authorization": f"Bearer {create_key(store, 'school', ['read'])}"}
    with TestClient(create_app(served, store=store, engine=build_engine(served, model_uri="bkt"))) as client:
        put = client.put("/v1/model/tenant", json={"uri": "models:/zpd-learner-district/1"}, headers=h)
        assert put.status_code == 200, put.text
        assert put.json()["gate"]["passed"] is True and put.json()["forced"] is None
        # it was trained on every answer the district had: none is held out from it yet
        (compared,) = [c for c in put.json()["gate"]["checks"] if c["name"] == "challenger vs champion"]
        assert compared["detail"].startswith("no held-out answers to compare on; only answers received since")
        # answers that arrive afterwards are what it is compared on (read after the earlier ones):
        # these answers are coin flips, so a model fitted to the earlier ones does worse on them than
        # graph BKT, and is refused
        later = [{**e, "id": f"later-{k}"} for k, e in enumerate(events[:150])]
        assert client.post("/v1/events", json=later, headers=h).json()["accepted"] == 150
        assert client.delete("/v1/model/tenant", headers=h).status_code == 200
        again = client.put("/v1/model/tenant", json={"uri": "models:/zpd-learner-district/1"}, headers=h)
        assert again.status_code == 409, again.text
        message = again.json()["error"]["message"]
        assert "challenger vs champion: on 150 held-out answers" in message
        assert "only answers received since its training run started count" in message
        forced = client.put(
            "/v1/model/tenant",
            json={"uri": "models:/zpd-learner-district/1", "force_reason": "the district's pilot"},
            headers=h,
        )
        assert forced.status_code == 200, forced.text
        version = client.get("/v1/learners/s0/next", headers=h).json()["model_version"]
        assert version.startswith("zpd-learner-district/1~")  # over the district's framework
        assert client.get("/v1/model", headers=other).json()["version"].startswith("bkt")
    store.close()


def test_answers_are_exported_on_the_standards_the_server_folds_them_on(tmp_path) -> None:
    """An item moved to other standards after it was answered, and an activity answered before
    it was aligned: the export puts every answer on the item's standards as the tenant's catalog
    has them now (what the server folds), not on those it was received with."""
    import csv

    from fastapi.testclient import TestClient

    from configs import load_config
    from serving.app import build_engine, create_app
    from serving.auth import create_key
    from serving.export import export_answers, tenant_items
    from serving.stores import open_store

    store = open_store(f"sqlite:///{tmp_path / 'zpd.db'}")
    config = load_config(env={})
    h = {"Authorization": f"Bearer {create_key(store, 'school', ['ingest', 'admin'])}"}
    own = {
        "id": "own-1",
        "title": "Own",
        "standards": ["3.NF.A.1"],
        "modality": "online_practice",
        "duration_minutes": 5,
    }
    with TestClient(create_app(config, store=store, engine=build_engine(config, model_uri="bkt"))) as client:
        assert client.put("/v1/items", json=[own], headers=h).status_code == 200
        answers = [
            {"id": "e1", "learner_id": "s1", "item_id": "own-1", "correct": True},
            {"id": "e2", "learner_id": "s1", "item_id": "https://lms.example/act/9", "correct": False},
        ]
        assert client.post("/v1/events", json=answers, headers=h).json()["unaligned"] == 1
        later = [{**own, "standards": ["4.NF.A.1"]}, {**own, "id": "https://lms.example/act/9"}]
        assert client.put("/v1/items", json=later, headers=h).json()["realigned"] == ["own-1"]
    as_received = tmp_path / "received.csv"
    export_answers(store, "school", as_received)  # without the catalog: as received
    exported = tmp_path / "answers.csv"
    counts = export_answers(store, "school", exported, tenant_items(store, "school", config))
    store.close()
    assert counts == {"learners": 1, "answers": 2, "left_out": 0}

    def standards(path) -> dict[str, str]:
        return {row["item_id"]: row["standards"] for row in csv.DictReader(path.open())}

    assert standards(as_received) == {"own-1": "3.NF.A.1", "https://lms.example/act/9": ""}
    assert standards(exported) == {"own-1": "4.NF.A.1", "https://lms.example/act/9": "3.NF.A.1"}
