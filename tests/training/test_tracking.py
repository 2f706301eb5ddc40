"""MLflow tracking, registry and the training CLI against a REAL local store (SQLite in tmp).

One store per module: creating an MLflow database takes a few seconds, so the tests share it
and each test asserts on the run or version it made itself.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from configs import ModelConfig, TrainingConfig, ZPDConfig
from models.base import Event, ItemSpec
from training.cli import load_splits, models_app, train_app
from training.tracking import (
    MLflowTracker,
    ModelRegistryError,
    list_versions,
    load_registered_model,
    promote,
    resolve_model_uri,
    tracking_client,
)
from training.train import train

pytestmark = pytest.mark.slow  # an MLflow tracking store and training runs

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "kt_sample"
PID = SAMPLE / "assist2009_pid" / "assist2009_pid_train1_head150.csv"
NAME = "zpd-learner-test"
SMALL_TOML = """
[mlflow]
tracking_uri = "{uri}"
registered_model = "{name}"
[training]
batch_tokens = 1024
max_batch_learners = 32
[model.dkt]
dim = 16
hidden = 32
out_hidden = 16
"""


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture(scope="module")
def config(store: str) -> ZPDConfig:
    return ZPDConfig(
        mlflow={"tracking_uri": store, "registered_model": NAME},
        training=TrainingConfig(batch_tokens=1024, max_batch_learners=32),
        model=ModelConfig(dkt={"dim": 16, "hidden": 32, "out_hidden": 16}),
    )


@pytest.fixture(scope="module")
def tracked(config: ZPDConfig):
    """One tracked training run; returns (result, tables)."""
    tables, _ = load_splits(PID, "akt", config)
    tracker = MLflowTracker(config.mlflow.tracking_uri, "tests", NAME, tags={"data.path": str(PID)})
    result = train(
        tables["train"],
        tables["valid"],
        tables["test"],
        "logistic",
        config,
        epochs=3,
        seed=0,
        tracker=tracker,
        progress=False,
    )
    return result, tables


def test_run_has_params_epoch_metrics_fingerprints_and_artifacts(tracked, store: str) -> None:
    result, tables = tracked
    client = tracking_client(store)
    run = client.get_run(result.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["model"] == "logistic" and run.data.params["epochs"] == "3"
    assert run.data.params["data.train.n_learners"] == str(tables["train"].n_learners)
    assert run.data.tags["data.train.fingerprint"] == tables["train"].fingerprint()
    assert run.data.tags["data.test.fingerprint"] == tables["test"].fingerprint()
    assert run.data.metrics["test_auc"] == pytest.approx(result.metrics["test_auc"])
    history = client.get_metric_history(result.run_id, "valid_auc")
    assert [m.step for m in history] == [1, 2, 3]
    assert [m.value for m in history] == pytest.approx([h["valid_auc"] for h in result.history])
    assert run.data.metrics["best_valid_auc"] == pytest.approx(max(h["valid_auc"] for h in result.history))
    top = {a.path for a in client.list_artifacts(result.run_id)}
    assert {"calibration.png", "learning_curves.png", "config.json", "model"} <= top
    assert {a.path for a in client.list_artifacts(result.run_id, "model")} == {"model/config.json", "model/weights.npz"}


def test_version_registered_promoted_and_resolved_to_an_identical_model(tracked, store: str) -> None:
    result, _ = tracked
    rows = {r["version"]: r for r in list_versions(store, NAME)}
    row = rows[result.model_version]
    assert row["run_id"] == result.run_id and row["model"] == "logistic"
    assert row["test_auc"] == pytest.approx(result.metrics["test_auc"], rel=1e-5)
    promote(result.model_version, "champion", store, NAME)
    assert "champion" in {r["version"]: r for r in list_versions(store, NAME)}[result.model_version]["aliases"]
    for uri in (f"models:/{NAME}@champion", f"models:/{NAME}/{result.model_version}"):
        model = load_registered_model(uri, store)
        state = model.replay([Event("85940", ("33",), 1.0), Event("x", ("7", "33"), 0.0)])
        items = [ItemSpec("85940", ("33",)), ItemSpec("new", ("7",), 0.3), ItemSpec("new", ("zz",))]
        np.testing.assert_array_equal(model.predict_items(state, items), result.model.predict_items(state, items))
        assert model.mastery(state) == result.model.mastery(state)
    assert (resolve_model_uri(f"runs:/{result.run_id}/model", store) / "weights.npz").is_file()


def test_registry_errors_name_what_is_wrong(tracked, store: str, tmp_path: Path) -> None:
    with pytest.raises(ModelRegistryError, match="has no version 999"):
        promote(999, "champion", store, NAME)
    with pytest.raises(ModelRegistryError, match="cannot resolve"):
        resolve_model_uri(f"models:/{NAME}@no-such-alias", store)
    with pytest.raises(ModelRegistryError, match="unsupported model URI"):
        resolve_model_uri("s4://bucket/model", store)
    with pytest.raises(ModelRegistryError, match="no config.json"):
        resolve_model_uri(str(tmp_path), store)
    assert list_versions(store, "never-registered") == []


# ------------------------------------------------------------------------------------------ CLI
@pytest.fixture(scope="module")
def cli():
    """The commands mounted the way zpd/cli.py mounts them."""
    root = typer.Typer()

    @root.callback()
    def _root() -> None:
        pass

    root.add_typer(train_app)
    root.add_typer(models_app, name="models")
    return root


@pytest.fixture(scope="module")
def cli_config(store: str, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cfg") / "small.toml"
    path.write_text(SMALL_TOML.format(uri=store, name=NAME))
    return path


def invoke(cli, *args: str):
    return CliRunner().invoke(cli, list(args))


def test_cli_train_prints_one_json_summary(cli, cli_config: Path, store: str) -> None:
    out = invoke(
        cli,
        "train",
        "--data",
        str(SAMPLE / "assist2015"),
        "--format",
        "akt",
        "--fold",
        "1",
        "--model",
        "dkt",
        "--epochs",
        "2",
        "--config",
        str(cli_config),
        "--no-progress",
        "--json",
    )
    assert out.exit_code == 0, out.output
    summary = json.loads(out.stdout)  # the whole of stdout is one JSON object
    assert 0.0 <= summary["metrics"]["test_auc"] <= 1.0 and summary["epochs_run"] == 2
    assert summary["data"]["test"]["n_learners"] == 60  # the fold's own test file
    run = tracking_client(store).get_run(summary["run_id"])
    assert run.data.tags["zpd.model_version"] == summary["model_version"]
    assert run.data.tags["data.fold"] == "1"

    listed = invoke(cli, "models", "list", "--config", str(cli_config), "--json")
    versions = {r["version"]: r for r in json.loads(listed.stdout)["versions"]}
    assert versions[summary["model_version"]]["model"] == "dkt"
    promoted = invoke(
        cli, "models", "promote", summary["model_version"], "--alias", "staging", "--config", str(cli_config)
    )
    assert promoted.exit_code == 0 and f"@staging -> version {summary['model_version']}" in promoted.stdout
    text = invoke(cli, "models", "list", "--config", str(cli_config))
    assert "staging" in text.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["--format", "parquet"], "unknown format 'parquet'"),
        (["--model", "dkn"], "unknown model 'dkn'"),
        (["--fold", None], "pass --fold K"),
        (["--data", "no/such/folder"], "no/such/folder: no such file or folder"),
        (["--epochs", "0"], "--epochs must be at least 1"),
    ],
)
def test_cli_train_bad_input_is_one_line_and_exit_1(cli, cli_config: Path, args: list, message: str) -> None:
    options = {
        "--data": str(SAMPLE / "assist2015"),
        "--format": "akt",
        "--model": "dkt",
        "--fold": "1",
        "--epochs": "1",
        "--config": str(cli_config),
    }
    options[args[0]] = args[1]
    argv = ["train", "--no-progress"] + [x for k, v in options.items() if v is not None for x in (k, v)]
    out = invoke(cli, *argv)
    assert out.exit_code == 1
    assert out.stderr.count("\n") == 1 and out.stderr.startswith("error: ") and message in out.stderr


def test_cli_bad_data_row_names_file_and_line(cli, cli_config: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("3,l1\n1,2,3\n1,1,2\n1,0,2\n")
    out = invoke(cli, "train", "--data", str(bad), "--format", "akt", "--model", "dkt", "--config", str(cli_config))
    assert out.exit_code == 1 and "bad.csv line 4" in out.stderr and "responses" in out.stderr


def test_cli_unknown_hyper_parameter_is_one_line(cli, cli_config: Path, tmp_path: Path) -> None:
    typo = tmp_path / "typo.toml"
    typo.write_text(cli_config.read_text().replace("hidden = 32", "hiden = 32"))
    out = invoke(
        cli, "train", "--data", str(PID), "--format", "akt", "--model", "dkt", "--config", str(typo), "--no-progress"
    )
    assert out.exit_code == 1 and "unknown dkt hyper-parameter(s) hiden" in out.stderr


def test_cli_promote_unknown_version_fails_cleanly(cli, cli_config: Path) -> None:
    out = invoke(cli, "models", "promote", "4242", "--config", str(cli_config))
    assert out.exit_code == 1 and "has no version 4242" in out.stderr
