"""Every server reload passes the promotion gate: a model over a data set's own skill ids is
refused with a message that says why; a challenger worse than the serving model on the store's
recent answers is refused; forcing needs a reason, which stays visible with the model."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient

from configs import load_config
from models.logistic import LogisticModel
from models.neural import neural_config
from serving.app import build_engine, create_app
from serving.auth import create_key
from serving.stores import open_store


@pytest.fixture()
def served(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'zpd.db'}")
    config = load_config(env={})
    engine = build_engine(config, model_uri="bkt")  # its own engine: reloads change it
    key = create_key(store, "t", ["ingest", "read", "admin", "operator"])
    with TestClient(create_app(config, store=store, engine=engine)) as client:
        yield client, {"Authorization": f"Bearer {key}"}, engine
    store.close()


def saved_logistic(folder, standards, items, seed=0):
    model = LogisticModel(neural_config(standards, items, {}, seed))
    model.set_item_difficulty(np.random.default_rng(seed).normal(0, 1, len(items)))
    return model.save(folder)


def test_a_model_over_skill_ids_is_refused_and_forcing_needs_a_reason(served, tmp_path) -> None:
    client, h, engine = served
    folder = saved_logistic(tmp_path / "skills", ["1", "2", "3"], ["p1", "p2"])
    refused = client.post("/v1/model/reload", json={"uri": str(folder)}, headers=h)
    assert refused.status_code == 409
    message = refused.json()["error"]["message"]
    assert "standard coverage" in message and "0.0% of the" in message and "alignment" in message
    assert message.endswith("; a force_reason serves it anyway (the reason stays with it)")
    assert client.get("/v1/model", headers=h).json()["name"] == "bkt"  # still serving graph BKT
    blank = client.post("/v1/model/reload", json={"uri": str(folder), "force_reason": " "}, headers=h)
    assert blank.status_code == 422 and blank.json()["error"]["field"] == "force_reason"
    forced = client.post(
        "/v1/model/reload", json={"uri": str(folder), "force_reason": "a demo for the data team"}, headers=h
    )
    assert forced.status_code == 200
    model = client.get("/v1/model", headers=h).json()
    assert model["forced"] == "a demo for the data team" and model["gate"]["passed"] is False


def test_a_challenger_worse_on_recent_answers_is_refused(served, tmp_path) -> None:
    client, h, engine = served
    catalog = engine.catalog
    easy = [i for i in catalog if i.standards[0] == "K.CC.A.1"][:3]
    hard = [i for i in catalog if i.standards[0] == "3.NF.A.1"][:3]
    events = []
    for n in range(20):  # every learner knows K.CC.A.1 and not 3.NF.A.1
        for k in range(6):
            item = (easy if k % 2 == 0 else hard)[k // 2 % 3]
            events.append({"id": f"e{n}-{k}", "learner_id": f"s{n}", "item_id": item.id, "correct": item in easy})
    assert client.post("/v1/events", json=events, headers=h).status_code == 200
    standards = list(engine.graph.learning)
    folder = saved_logistic(tmp_path / "random", standards, [i.id for i in catalog][:50], seed=3)
    refused = client.post("/v1/model/reload", json={"uri": str(folder)}, headers=h)
    assert refused.status_code == 409, refused.text
    assert "challenger vs champion" in refused.json()["error"]["message"]
