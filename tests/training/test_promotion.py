"""`zpd models promote` runs the promotion gate: a model trained on a data set's own skill ids is
refused with a message that says why (or promoted with a reason that stays on the version); a
model trained with an alignment to the standards is promoted; the report is kept as tags."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from configs import ModelConfig, TrainingConfig, ZPDConfig
from training.alignment import align_standards, load_alignment
from training.loaders import load_interactions
from training.tracking import MLflowTracker, tracking_client
from training.train import train

pytestmark = pytest.mark.slow  # an MLflow registry and two training runs

SAMPLE = (
    Path(__file__).resolve().parents[2] / "data" / "kt_sample" / "assist2009_pid" / "assist2009_pid_train1_head150.csv"
)


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    folder = tmp_path_factory.mktemp("promotion")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    cfg = ZPDConfig(
        mlflow={"tracking_uri": uri, "registered_model": "zpd-learner"},
        training=TrainingConfig(batch_tokens=1024, max_batch_learners=32),
        model=ModelConfig(logistic={}),
    )
    raw, _ = load_interactions(SAMPLE, "akt")
    versions = {}
    for label, table in (("skill ids", raw), ("aligned", align_standards(raw, load_alignment())[0])):
        train_idx, test_idx = table.split_learners(0.3, seed=0)
        fit, valid = table.subset(train_idx).split_learners(0.2, seed=0)
        tables = (table.subset(train_idx).subset(fit), table.subset(train_idx).subset(valid), table.subset(test_idx))
        tracker = MLflowTracker(uri, "zpd-learner", "zpd-learner")
        versions[label] = train(
            *tables, "logistic", cfg, epochs=1, seed=0, tracker=tracker, progress=False
        ).model_version
    config = folder / "zpd.toml"
    config.write_text(f'[mlflow]\ntracking_uri = "{uri}"\n')
    return uri, versions, config


def promote(config: Path, *args: str):
    from zpd.cli import app

    return CliRunner().invoke(app, ["--config", str(config), "models", "promote", *args])


def test_the_gate_refuses_skill_ids_and_keeps_its_report(registry) -> None:
    uri, versions, config = registry
    refused = promote(config, versions["skill ids"])
    assert refused.exit_code == 1
    assert (
        "standard coverage" in refused.output and "alignment" in refused.output and "--force-reason" in refused.output
    )
    client = tracking_client(uri)
    assert client.get_registered_model("zpd-learner").aliases == {}
    tags = client.get_model_version("zpd-learner", versions["skill ids"]).tags
    assert tags["gate.passed"] == "false" and '"standard coverage"' in tags["gate.report"]

    forced = promote(config, versions["skill ids"], "--alias", "staging", "--force-reason", "to compare in staging")
    assert forced.exit_code == 0, forced.output
    assert "FAILED standard coverage" in forced.stdout and "forced: to compare in staging" in forced.stdout
    tags = client.get_model_version("zpd-learner", versions["skill ids"]).tags
    assert tags["gate.forced_reason"] == "to compare in staging"

    promoted = promote(config, versions["aligned"])
    assert promoted.exit_code == 0, promoted.output
    assert f"zpd-learner@champion -> version {versions['aligned']}" in promoted.stdout
    assert client.get_model_version("zpd-learner", versions["aligned"]).tags["gate.passed"] == "true"


def test_simulate_runs_the_model_the_server_would_serve_never_one_the_gate_refuses(registry, tmp_path) -> None:
    """`zpd simulate` starts from the server's own chain: a configured model the gate refuses is
    skipped for the next one (the server would not serve it), and one asked for by name is
    refused with the gate's reason rather than simulated."""
    from zpd.cli import app

    uri, versions, _ = registry
    refused = f"models:/zpd-learner/{versions['skill ids']}"
    config = tmp_path / "zpd.toml"
    config.write_text(f'[mlflow]\ntracking_uri = "{uri}"\n[serving]\nmodel_uri = "{refused}"\n')
    runner = CliRunner()
    args = ["--config", str(config), "simulate", "--planners", "zpd", "--learners", "2", "--horizon", "3"]
    chained = runner.invoke(app, args)
    assert chained.exit_code == 0, chained.output
    assert (
        "zpd serves with model hybrid@" in chained.stderr
        and f"zpd-learner/{versions['skill ids']}" not in (chained.stderr.split("zpd serves with model", 1)[1])
    )
    named = runner.invoke(app, [*args, "--model", refused])
    assert named.exit_code == 1 and "standard coverage" in named.output
    aligned = runner.invoke(app, [*args, "--model", f"models:/zpd-learner/{versions['aligned']}"])
    assert aligned.exit_code == 0, aligned.output
    assert f"zpd serves with model zpd-learner/{versions['aligned']}" in aligned.stderr
