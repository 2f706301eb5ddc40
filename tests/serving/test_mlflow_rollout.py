"""Model rollout from a REAL local MLflow registry: champion alias at start-up, reload on promotion.

The test trains tiny models with the training pipeline (a real run in a temporary SQLite tracking
store), promotes them, and checks that the server serves what the alias points to.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from configs import ModelConfig, TrainingConfig, ZPDConfig, load_config
from training.alignment import align_standards, load_alignment
from training.loaders import load_interactions
from training.tracking import MLflowTracker, promote, tracking_client
from training.train import train

pytestmark = pytest.mark.slow  # an MLflow registry and training runs

SAMPLE = (
    Path(__file__).resolve().parents[2] / "data" / "kt_sample" / "assist2009_pid" / "assist2009_pid_train1_head150.csv"
)


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
    cfg = ZPDConfig(
        mlflow={"tracking_uri": uri, "registered_model": "zpd-learner"},
        training=TrainingConfig(batch_tokens=1024, max_batch_learners=32),
        model=ModelConfig(logistic={}),
    )
    table, _ = load_interactions(SAMPLE, "akt")
    table, _ = align_standards(table, load_alignment())  # models over the standards the server serves
    train_idx, test_idx = table.split_learners(0.3, seed=0)
    fit, valid = table.subset(train_idx).split_learners(0.2, seed=0)
    tables = (table.subset(train_idx).subset(fit), table.subset(train_idx).subset(valid), table.subset(test_idx))
    versions = []
    for seed in (0, 1):
        tracker = MLflowTracker(uri, "zpd-learner", "zpd-learner")
        result = train(*tables, "logistic", cfg, epochs=2, seed=seed, tracker=tracker, progress=False)
        versions.append(result.model_version)
    return uri, versions


def test_server_starts_on_the_champion_and_follows_promotions(registry, tmp_path, shared_engine) -> None:
    from serving.app import build_engine, create_app
    from serving.auth import create_key
    from serving.stores import open_store

    uri, (v1, v2) = registry
    promote(v1, "champion", tracking_uri=uri)
    config = load_config(env={"ZPD_MLFLOW_TRACKING_URI": uri})
    engine = build_engine(config)
    assert engine.models.current.version == f"zpd-learner/{v1}"
    store = open_store(f"sqlite:///{tmp_path / 'zpd.db'}")
    key = create_key(store, "t", ["read", "admin", "ingest", "operator"])
    from fastapi.testclient import TestClient

    with TestClient(create_app(config, store=store, engine=engine)) as c:
        h = {"Authorization": f"Bearer {key}"}
        assert c.get("/v1/model", headers=h).json()["version"] == f"zpd-learner/{v1}"
        promote(v2, "champion", tracking_uri=uri)
        swapped = c.post("/v1/model/reload", headers=h).json()  # the configured URI: the alias
        assert swapped["previous"] == f"zpd-learner/{v1}" and swapped["version"] == f"zpd-learner/{v2}"
        recorded = json.loads(tracking_client(uri).get_model_version("zpd-learner", v2).tags["gate.reload"])
        assert recorded["passed"] is True and "standard coverage" in {c["name"] for c in recorded["checks"]}
        missing = c.post("/v1/model/reload", headers=h, json={"uri": "models:/zpd-learner@nobody"})
        assert missing.status_code == 409 and missing.json()["error"]["field"] == "uri"
        assert c.get("/v1/model", headers=h).json()["version"] == f"zpd-learner/{v2}"
    store.close()


def test_a_fresh_registry_is_reported_apart_from_a_failed_load(tmp_path) -> None:
    """``make serve`` on a fresh machine: the champion is not registered yet, the bundled model
    serves, and ``GET /v1/model`` says which URI was passed over without calling it a failure."""
    from fastapi.testclient import TestClient

    from serving.app import build_engine, create_app
    from serving.auth import create_key
    from serving.stores import open_store

    config = load_config(env={"ZPD_MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"})
    store = open_store(f"sqlite:///{tmp_path / 'zpd.db'}")
    operator = {"Authorization": f"Bearer {create_key(store, 't', ['read', 'operator'])}"}
    reader = {"Authorization": f"Bearer {create_key(store, 't', ['read'])}"}
    with TestClient(create_app(config, store=store, engine=build_engine(config))) as c:
        seen = c.get("/v1/model", headers=operator).json()
        assert seen["version"].startswith("hybrid") and seen["last_error"] is None
        assert seen["not_registered"] == [config.serving.model_uri]
        assert c.get("/v1/model", headers=reader).json()["not_registered"] is None
        assert c.post("/v1/model/reload", json={"uri": "bundled"}, headers=operator).status_code == 200
        assert c.get("/v1/model", headers=operator).json()["not_registered"] == []
    store.close()


def test_keys_command_writes_to_the_store_serve_uses(tmp_path) -> None:
    from serving.auth import KeyCache
    from serving.stores import open_store
    from zpd.cli import app

    url = f"sqlite:///{tmp_path / 'zpd.db'}"
    runner = CliRunner()
    made = runner.invoke(
        app, ["keys", "create", "--store", url, "--tenant", "school-1", "--scopes", "read,teacher", "--json"]
    )
    assert made.exit_code == 0, made.output
    import json

    key = json.loads(made.stdout)["key"]
    store = open_store(url)
    principal = KeyCache(store, 0).verify(key)
    assert principal.tenant == "school-1" and principal.scopes == {"read", "teacher"}
    listed = runner.invoke(app, ["keys", "list", "--store", url])
    assert principal.key_id in listed.stdout and key.split("_", 2)[2] not in listed.stdout  # never the secret
    assert runner.invoke(app, ["keys", "revoke", principal.key_id, "--store", url]).exit_code == 0
    assert KeyCache(store, 0).verify(key) is None
    bad = runner.invoke(app, ["keys", "create", "--store", url, "--tenant", "t", "--scopes", "read,root"])
    assert bad.exit_code == 1 and "unknown scope(s) root" in bad.stderr
    store.close()


def test_the_demo_key_operates_the_server_and_an_older_one_is_replaced(tmp_path) -> None:
    """The demo key has every scope, operator included; one kept from before that scope existed
    (a tenant admin's scopes) is replaced, so `make serve` can still swap the model, and keeps
    working with its own scopes (an LRS may be set up with it)."""
    from serving.auth import SCOPES, KeyCache, create_key
    from serving.cli import ensure_demo_key
    from serving.stores import open_store

    with open_store(f"sqlite:///{tmp_path / 'zpd.db'}") as store:
        old = create_key(store, "demo", ["ingest", "read", "teacher", "admin"], label="demo")
        (tmp_path / "demo_key.txt").write_text(old + "\n")
        key = ensure_demo_key(store, tmp_path)
        assert key != old and KeyCache(store, 0).verify(old).scopes == {"ingest", "read", "teacher", "admin"}
        assert KeyCache(store, 0).verify(key).scopes == set(SCOPES)
        assert (tmp_path / "demo_key.txt").read_text().strip() == key
        assert ensure_demo_key(store, tmp_path) == key  # kept from then on


def test_alias_poll_swaps_without_a_reload_call(registry, tmp_path) -> None:
    import time

    from fastapi.testclient import TestClient

    from serving.app import build_engine, create_app
    from serving.auth import create_key
    from serving.stores import open_store

    uri, (v1, v2) = registry
    promote(v1, "champion", tracking_uri=uri)
    config = load_config(env={"ZPD_MLFLOW_TRACKING_URI": uri}).model_copy(
        update={"serving": load_config(env={}).serving.model_copy(update={"model_poll_s": 0.3})}
    )
    store = open_store(f"sqlite:///{tmp_path / 'zpd.db'}")
    key = create_key(store, "t", ["read"])
    with TestClient(create_app(config, store=store, engine=build_engine(config))) as c:
        h = {"Authorization": f"Bearer {key}"}
        assert c.get("/v1/model", headers=h).json()["version"] == f"zpd-learner/{v1}"
        promote(v2, "champion", tracking_uri=uri)
        deadline = time.time() + 30
        while time.time() < deadline and c.get("/v1/model", headers=h).json()["version"] != f"zpd-learner/{v2}":
            time.sleep(0.2)
        assert c.get("/v1/model", headers=h).json()["version"] == f"zpd-learner/{v2}"
    store.close()


def test_a_model_not_registered_yet_is_the_next_choice_without_a_warning(
    registry, tmp_path, shared_engine, caplog
) -> None:
    """A fresh machine's registry has no champion: the server serves the next choice (the bundled
    model) and says so at INFO, not as a warning; a model that cannot be loaded is a warning."""
    import logging

    from serving.model_provider import ModelHolder, ModelNotRegistered, load_candidate

    e = shared_engine
    uri, _ = registry
    fresh = ModelHolder(e.graph, e.catalog, f"sqlite:///{tmp_path / 'fresh.db'}")
    with caplog.at_level(logging.INFO, logger="zpd.model"):
        loaded = fresh.load_first(["models:/zpd-learner@champion", "bundled"])
    assert loaded.source.startswith("folder ")
    # passed over, not failed: nothing says a load failed on a machine where nothing is wrong
    assert fresh.last_error is None and fresh.not_registered == ["models:/zpd-learner@champion"]
    ours = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "zpd.model"]
    assert [level for level, _ in ours] == [logging.INFO, logging.INFO]
    assert ours[0][1].startswith("model models:/zpd-learner@champion not used: nothing is registered as")
    assert ours[1][1] == f"serving model {loaded.version} ({loaded.source})"
    for missing in ("models:/zpd-learner@nobody", "models:/zpd-learner/999", "models:/someone-else@champion"):
        with pytest.raises(ModelNotRegistered):
            load_candidate(missing, e.graph, uri)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="zpd.model"):
        fresh.load_first([str(tmp_path / "no-such-folder"), "bundled"])
    assert [r.levelno for r in caplog.records if r.name == "zpd.model" and "not used" in r.getMessage()] == [
        logging.WARNING
    ]
