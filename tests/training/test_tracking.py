"""MLflow tracking, registry and the training CLI against a REAL local store (SQLite in tmp).

One store per module: creating an MLflow database takes a few seconds, so the tests share it
and each test asserts on the run or version it made itself.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
import typer
import yaml
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
    source_tags,
    split_datasets,
    tracking_client,
)
from training.train import train

pytestmark = pytest.mark.slow  # an MLflow tracking store and training runs

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "data" / "kt_sample"
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
    assert {"calibration.png", "learning_curves.png", "config.json"} <= top
    assert json.loads(Path(client.download_artifacts(result.run_id, "config.json")).read_text())["data"] == result.data


def test_run_logs_its_model_as_an_mlflow_model(tracked, store: str) -> None:
    result, tables = tracked
    client = tracking_client(store)
    outputs = client.get_run(result.run_id).outputs.model_outputs
    assert len(outputs) == 1
    logged = client.get_logged_model(outputs[0].model_id)
    assert logged.name == "model" and logged.source_run_id == result.run_id and str(logged.status) == "READY"
    folder = Path(urlparse(logged.artifact_location).path)
    files = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}
    assert {
        "MLmodel",
        "pyfunc_model.py",
        "code/training/pyfunc.py",
        "input_example.json",
        "serving_input_example.json",
        "requirements.txt",
    } <= files
    assert {"artifacts/zpd_model/config.json", "artifacts/zpd_model/weights.npz"} <= files
    assert not any(name.endswith((".pt", ".pth", ".bin", ".pkl")) for name in files)
    meta = yaml.safe_load((folder / "MLmodel").read_text())
    assert meta["run_id"] == result.run_id and meta["model_id"] == logged.model_id
    assert [c["name"] for c in json.loads(meta["signature"]["inputs"])] == [
        "learner_id",
        "item_id",
        "skill",
        "correct",
        "timestamp",
    ]
    # the final metrics are the model's too; test metrics name the test split's dataset
    test_auc = next(m for m in logged.metrics if m.key == "test_auc")
    assert test_auc.value == pytest.approx(result.metrics["test_auc"])
    assert test_auc.dataset_digest == tables["test"].fingerprint()[:16]
    # the version's source is this logged model: MLflow's own loader and ours read the same folder
    version = client.get_model_version(NAME, result.model_version)
    assert version.source == logged.artifact_location and version.run_id == result.run_id
    assert resolve_model_uri(f"models:/{NAME}/{result.model_version}", store) == folder / "artifacts" / "zpd_model"


def test_run_logs_its_data_splits_and_source(tracked, store: str) -> None:
    result, tables = tracked
    run = tracking_client(store).get_run(result.run_id)
    inputs = {
        next(t.value for t in d.tags if t.key == "mlflow.data.context"): d.dataset for d in run.inputs.dataset_inputs
    }
    assert set(inputs) == {"train", "valid", "test"}
    for split, dataset in inputs.items():
        assert dataset.name == PID.name and dataset.source_type == "local"
        assert json.loads(dataset.source)["uri"] == str(PID.resolve())
        assert dataset.digest == tables[split].fingerprint()[:16]
    tags = run.data.tags
    assert tags["mlflow.source.type"] == "LOCAL" and tags["mlflow.source.name"]
    commit = tags["mlflow.source.git.commit"]  # the tests run from a git checkout
    assert re.fullmatch(r"[0-9a-f]{40}", commit)
    # others may commit meanwhile: the run's commit is HEAD or one of its ancestors
    ancestry = subprocess.run(["git", "-C", str(ROOT), "merge-base", "--is-ancestor", commit, "HEAD"], check=False)
    assert ancestry.returncode == 0
    assert tags["zpd.source.git.dirty"] in ("true", "false")


def test_source_tags_leave_out_git_outside_a_checkout(tmp_path: Path) -> None:
    outside = tmp_path / "tracking.py"
    outside.write_text("")
    tags = source_tags(outside)
    assert tags["mlflow.source.type"] == "LOCAL"
    assert "mlflow.source.git.commit" not in tags and "zpd.source.git.dirty" not in tags


def test_datasets_without_a_path_come_from_code() -> None:
    datasets = split_datasets({"train": {"fingerprint": "ab" * 32, "n_learners": 3}}, None)
    entity = datasets["train"]._to_mlflow_entity()
    assert entity.name == "interactions" and entity.source_type == "code" and entity.digest == "ab" * 8


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
    assert (resolve_model_uri(f"runs:/{result.run_id}/model/artifacts/zpd_model", store) / "weights.npz").is_file()


def test_a_version_registered_as_a_bare_folder_still_resolves(tracked, store: str, tmp_path: Path) -> None:
    """Versions registered before models were MLflow models point at config.json + weights.npz."""
    result, _ = tracked
    folder = result.model.save(tmp_path / "bare")
    client = tracking_client(store)
    version = client.create_model_version(NAME, folder.as_uri(), run_id=result.run_id)
    assert resolve_model_uri(f"models:/{NAME}/{version.version}", store) == folder
    assert load_registered_model(f"models:/{NAME}/{version.version}", store).name == "logistic"


def test_registry_errors_name_what_is_wrong(tracked, store: str, tmp_path: Path) -> None:
    with pytest.raises(ModelRegistryError, match="has no version 999"):
        promote(999, "champion", store, NAME)
    with pytest.raises(ModelRegistryError, match="cannot resolve"):
        resolve_model_uri(f"models:/{NAME}@no-such-alias", store)
    with pytest.raises(ModelRegistryError, match="unsupported model URI"):
        resolve_model_uri("s4://bucket/model", store)
    with pytest.raises(ModelRegistryError, match="no config.json"):
        resolve_model_uri(str(tmp_path), store)
    (tmp_path / "MLmodel").write_text("flavors: {python_function: {loader_module: some.other.model}}\n")
    with pytest.raises(ModelRegistryError, match="no MLflow model with a zpd_model artifact"):
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
    # trained on ASSIST2015's own skill ids: packaged with graph BKT, but the gate refuses it
    assert summary["coverage"]["standards_with_data"] == 0
    refused = invoke(
        cli, "models", "promote", summary["model_version"], "--alias", "staging", "--config", str(cli_config)
    )
    assert refused.exit_code == 1 and "standard coverage" in refused.output
    promoted = invoke(
        cli,
        "models",
        "promote",
        summary["model_version"],
        "--alias",
        "staging",
        "--force-reason",
        "a test of the registry",
        "--config",
        str(cli_config),
    )
    assert promoted.exit_code == 0 and f"@staging -> version {summary['model_version']}" in promoted.stdout
    text = invoke(cli, "models", "list", "--config", str(cli_config))
    assert "staging" in text.stdout


@pytest.mark.parametrize(
    "args, message",
    [
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


@pytest.mark.parametrize(("option", "value"), [("--format", "parquet"), ("--model", "dkn")])
def test_cli_train_choices_are_listed_and_checked(cli, option: str, value: str) -> None:
    from typing import get_args

    from models.registry import MODEL_CLASSES
    from training.cli import Trainable

    assert set(get_args(Trainable)) == set(MODEL_CLASSES) - {"hybrid"}  # every model the registry trains
    assert "zpd" in invoke(cli, "train", "--help").stdout
    out = invoke(cli, "train", "--data", str(SAMPLE / "assist2015"), "--format", "akt", "--model", "dkt", option, value)
    assert out.exit_code == 2 and f"'{value}' is not one of" in out.output


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
