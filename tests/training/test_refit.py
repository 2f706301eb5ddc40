"""Refit on train+valid: the early-stopped run picks E epochs, a fresh model trains on train+valid for E.

Short real runs on data/kt_sample (tiny models, seconds each).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

import training.train as train_module
from configs import ModelConfig, TrainingConfig, ZPDConfig
from models.neural import NeuralModel
from tests.training.test_tracking import SMALL_TOML
from training.cli import load_splits, train_app
from training.interactions import concat_tables
from training.loaders import load_interactions
from training.tracking import tracking_client
from training.train import predict_table, train

pytestmark = pytest.mark.slow  # several training runs

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "kt_sample"
PID = SAMPLE / "assist2009_pid" / "assist2009_pid_train1_head150.csv"
EPOCHS = 8

CONFIG = ZPDConfig(
    training=TrainingConfig(batch_tokens=1024, max_batch_learners=32, patience=3),
    model=ModelConfig(dkt={"dim": 16, "hidden": 32, "out_hidden": 16, "dropout": 0.0}),
)


@pytest.fixture(scope="module")
def tables():
    splits, _ = load_splits(PID, "akt", CONFIG)
    return splits["train"], splits["valid"], splits["test"]


@pytest.fixture(scope="module")
def refit_run(tables):
    """A refit run, with the tables each call of the fitting loop trained on."""
    calls = []
    original = train_module._fit

    def spy(model, table_train, table_valid, config, epochs, *args, **kwargs):
        out = original(model, table_train, table_valid, config, epochs, *args, **kwargs)
        calls.append(
            {
                "learners": set(table_train.learner_ids),
                "n_attempts": table_train.n_attempts,
                "fingerprint": table_train.fingerprint(),
                "validated": table_valid is not None,
                "epochs_budget": epochs,
                "epochs_run": len(out[0]),
                "model": model,
            }
        )
        return out

    mp = pytest.MonkeyPatch()
    mp.setattr(train_module, "_fit", spy)
    try:
        result = train(*tables, "dkt", CONFIG, epochs=EPOCHS, seed=0, progress=False, refit=True)
    finally:
        mp.undo()
    return result, calls


def _curves(history: list[dict[str, float]]) -> list[dict[str, float]]:
    return [{k: v for k, v in h.items() if k != "epoch_seconds"} for h in history]


def _weights(model: NeuralModel) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy().copy() for k, v in model.net.state_dict().items()}


def test_refit_trains_a_fresh_model_on_train_plus_valid_for_the_early_stopped_epochs(tables, refit_run) -> None:
    train_t, valid_t, test_t = tables
    result, calls = refit_run
    early, refit = calls
    # 1) early stopping on valid, trained on train only
    assert early["validated"] and early["learners"] == set(train_t.learner_ids)
    assert early["n_attempts"] == train_t.n_attempts and early["fingerprint"] == train_t.fingerprint()
    assert 1 <= result.best_epoch <= EPOCHS
    # 2) a fresh model, no validation, on exactly train+valid, for exactly the best epoch count
    assert not refit["validated"] and refit["model"] is result.model and refit["model"] is not early["model"]
    assert refit["learners"] == set(train_t.learner_ids) | set(valid_t.learner_ids)
    assert refit["n_attempts"] == train_t.n_attempts + valid_t.n_attempts
    assert refit["epochs_budget"] == refit["epochs_run"] == result.best_epoch == result.refit_epochs
    assert len(result.refit_history) == result.best_epoch and result.metrics["refit_epochs"] == result.best_epoch
    # the reported data: train+valid (its content fingerprint does not depend on learner order), never test
    assert result.data["refit"]["n_attempts"] == train_t.n_attempts + valid_t.n_attempts
    assert result.data["refit"]["fingerprint"] == refit["fingerprint"] == concat_tables(valid_t, train_t).fingerprint()
    assert result.data["test"]["fingerprint"] == test_t.fingerprint()
    for call in calls:
        assert not call["learners"] & set(test_t.learner_ids)
    # the refit model's vocabularies and item difficulties come from train+valid
    reference = type(result.model).for_table(concat_tables(train_t, valid_t), hyper=result.model.hyper, seed=0)
    np.testing.assert_array_equal(result.model.item_difficulty, reference.item_difficulty)
    assert set(result.model.items) == set(train_t.item_ids) | set(valid_t.item_ids)


def test_refit_reports_the_refit_model_on_test_and_the_early_stopped_model_on_valid(tables, refit_run) -> None:
    train_t, valid_t, test_t = tables
    result, calls = refit_run
    plain = train(*tables, "dkt", CONFIG, epochs=EPOCHS, seed=0, progress=False)
    assert plain.refit_epochs is None and "refit" not in plain.data and "early_stopped_test_auc" not in plain.metrics
    # the early-stopped part of a refit run is the plain run
    assert plain.best_epoch == result.best_epoch and _curves(plain.history) == _curves(result.history)
    for k in ("test_auc", "test_log_loss", "test_accuracy"):
        assert result.metrics[f"early_stopped_{k}"] == plain.metrics[k]
    assert result.metrics["valid_auc"] == plain.metrics["valid_auc"]
    # test metrics are the refit model's
    from training.metrics import auc

    assert result.metrics["test_auc"] == pytest.approx(
        auc(test_t.correct, predict_table(result.model, test_t)), abs=1e-12
    )
    assert result.early_stopped_model is calls[0]["model"]


def test_refit_is_training_on_train_plus_valid_for_e_epochs_and_ignores_test_labels(tables, refit_run) -> None:
    train_t, valid_t, test_t = tables
    result, _ = refit_run
    # the same training directly on train+valid, every epoch kept (min_delta -1: each epoch "improves")
    keep_all = CONFIG.model_copy(update={"training": CONFIG.training.model_copy(update={"min_delta": -1.0})})
    direct = train(
        concat_tables(train_t, valid_t),
        valid_t,
        test_t,
        "dkt",
        keep_all,
        epochs=result.best_epoch,
        seed=0,
        progress=False,
    )
    assert direct.best_epoch == result.best_epoch
    for name, w in _weights(direct.model).items():
        np.testing.assert_array_equal(w, _weights(result.model)[name])
    # flipping every test label changes nothing that was trained
    flipped = replace(test_t, correct=(1.0 - np.asarray(test_t.correct)).astype(np.float32))
    again = train(train_t, valid_t, flipped, "dkt", CONFIG, epochs=EPOCHS, seed=0, progress=False, refit=True)
    assert _curves(again.history) == _curves(result.history) and again.refit_epochs == result.refit_epochs
    for name, w in _weights(again.model).items():
        np.testing.assert_array_equal(w, _weights(result.model)[name])
    assert again.metrics["test_auc"] != result.metrics["test_auc"]  # the flipped labels were scored


def test_concat_tables_merges_vocabularies_by_id() -> None:
    first, _ = load_interactions(SAMPLE / "assist2015" / "assist2015_train1.csv", "akt")
    second, _ = load_interactions(SAMPLE / "assist2015" / "assist2015_valid1.csv", "akt")
    both = concat_tables(first, second)
    assert both.n_learners == first.n_learners + second.n_learners
    assert both.n_attempts == first.n_attempts + second.n_attempts
    assert both.item_ids[: first.n_items] == first.item_ids
    assert set(both.item_ids) == set(first.item_ids) | set(second.item_ids)

    def attempts(table, index):
        seq = table.learner_sequence(index)
        return [(table.item_ids[seq.item[t]], float(seq.correct[t])) for t in range(len(seq))]

    for source, offset in ((first, 0), (second, first.n_learners)):
        for i in (0, source.n_learners - 1):
            assert both.learner_ids[offset + i] == source.learner_ids[i]
            assert attempts(both, offset + i) == attempts(source, i)
    with pytest.raises(ValueError, match="sharing 1 learner ids"):
        concat_tables(first, first.subset([0]))


def test_refit_ignored_for_untrained_models(tables) -> None:
    result = train(*tables, "bkt", CONFIG, epochs=2, seed=0, progress=False, refit=True)
    assert result.refit_epochs is None and result.history == [] and "refit" not in result.params


def test_cli_refit_logs_param_and_epoch_count(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    config = tmp_path / "small.toml"
    config.write_text(SMALL_TOML.format(uri=store, name="zpd-learner-refit-test"))
    root = typer.Typer()

    @root.callback()
    def _root() -> None:
        pass

    root.add_typer(train_app)
    out = CliRunner().invoke(
        root,
        [
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
            str(config),
            "--no-progress",
            "--refit",
            "--json",
        ],
    )
    assert out.exit_code == 0, out.output
    summary = json.loads(out.stdout)
    assert summary["refit_epochs"] == summary["best_epoch"] and len(summary["refit_history"]) == summary["best_epoch"]
    assert (
        summary["data"]["refit"]["n_attempts"]
        == summary["data"]["train"]["n_attempts"] + summary["data"]["valid"]["n_attempts"]
    )
    run = tracking_client(store).get_run(summary["run_id"])
    assert run.data.params["refit"] == "True"
    assert run.data.metrics["refit_epochs"] == summary["best_epoch"]
    assert run.data.tags["data.refit.fingerprint"] == summary["data"]["refit"]["fingerprint"]
    assert run.data.metrics["test_auc"] == pytest.approx(summary["metrics"]["test_auc"])
    history = tracking_client(store).get_metric_history(summary["run_id"], "refit_train_loss")
    assert [m.step for m in history] == list(range(1, summary["best_epoch"] + 1))
