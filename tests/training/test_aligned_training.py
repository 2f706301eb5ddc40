"""Training on external logs with an alignment gives a model that covers the deployment's graph:
`zpd train --alignment` registers the trained part packaged with graph BKT, `zpd models promote`
lets it through the gate, and the server serves it with predictions that vary across items."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

pytestmark = pytest.mark.slow  # a training run, an MLflow registry and a server

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "data" / "kt_sample" / "assist2009_pid" / "assist2009_pid_train1_head150.csv"
ALIGNMENT = ROOT / "data" / "alignments" / "assist2009_ccss.csv"


def test_aligned_training_is_promoted_and_served(tmp_path) -> None:
    from fastapi.testclient import TestClient

    from configs import load_config
    from serving.app import build_engine, create_app
    from serving.auth import create_key
    from serving.stores import open_store
    from zpd.cli import app

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    config = tmp_path / "zpd.toml"
    config.write_text(f'[mlflow]\ntracking_uri = "{uri}"\n')
    runner = CliRunner()
    args = ["--config", str(config), "train", "--data", str(SAMPLE), "--format", "akt", "--model", "logistic"]
    trained = runner.invoke(app, [*args, "--alignment", str(ALIGNMENT), "--epochs", "2", "--no-progress", "--json"])
    assert trained.exit_code == 0, trained.output
    summary = json.loads(trained.stdout)
    assert summary["coverage"]["standards_with_data"] > 50
    assert summary["alignment"]["file"] == str(ALIGNMENT) and summary["alignment"]["dropped_attempts"]["train"] >= 0
    text = runner.invoke(app, [*args, "--epochs", "1"])  # the same log without the alignment; progress asked
    assert text.exit_code == 0 and "covers 0 of the graph's" in text.stdout and "--alignment" in text.output
    assert "\r" not in text.stderr and "epoch 1:" not in text.stderr  # not a terminal: no bars, ours or MLflow's

    promoted = runner.invoke(app, ["--config", str(config), "models", "promote", summary["model_version"]])
    assert promoted.exit_code == 0, promoted.output
    assert "ok     standard coverage" in promoted.stdout

    cfg = load_config(config, env={})
    engine = build_engine(cfg)
    assert engine.models.current.version == f"zpd-learner/{summary['model_version']}"
    assert engine.models.current.model.name == "hybrid"
    store = open_store(f"sqlite:///{tmp_path / 'zpd.db'}")
    key = create_key(store, "t", ["read"])
    with TestClient(create_app(cfg, store=store, engine=engine)) as client:
        nxt = client.get(
            "/v1/learners/new/next", params={"n": 10, "grade": "4"}, headers={"Authorization": f"Bearer {key}"}
        )
        assert nxt.status_code == 200
        p = [r["p_success"] for r in nxt.json()["recommendations"]]
    assert len(p) >= 3 and np.std(p) > 0.005
    store.close()
