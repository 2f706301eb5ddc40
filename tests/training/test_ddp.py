"""The training script under ``torchrun --nproc-per-node 2`` (DDP, gloo, CPU) matches one process.

Why the tolerance is small: both runs plan the same batches; under DDP each rank takes every
other learner of a batch and the loss is scaled so that the all-reduced gradient is the gradient
of the whole batch. With dropout off the two runs compute the same thing and differ only in the
order of float32 sums (measured: identical AUC to every printed digit). The tolerance, 0.005 AUC,
leaves room for that rounding to drift over epochs, and is below the seed-to-seed spread of this
run (test AUC 0.697-0.709 for seeds 0-2), so a DDP run that trained on only part of the data, or
whose ranks drifted apart, would fail it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from configs import load_config
from training.cli import load_splits
from training.train import train

pytestmark = pytest.mark.slow  # two processes under torchrun

ROOT = Path(__file__).resolve().parents[2]
PID = ROOT / "data" / "kt_sample" / "assist2009_pid" / "assist2009_pid_train1_head150.csv"
TOML = """
[mlflow]
tracking_uri = "sqlite:///{db}"
[training]
batch_tokens = 1024
max_batch_learners = 32
[model.dkt]
dim = 16
hidden = 32
out_hidden = 16
dropout = 0.0
"""
EPOCHS = 10
TOLERANCE = 0.005


@pytest.mark.timeout(300)
def test_two_ranks_reach_the_one_process_metrics(tmp_path: Path) -> None:
    config_file = tmp_path / "ddp.toml"
    config_file.write_text(TOML.format(db=tmp_path / "mlflow.db"))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    env.pop("ZPD_MLFLOW_TRACKING_URI", None)
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        "-m",
        "training.cli",
        "train",
        "--data",
        str(PID),
        "--format",
        "akt",
        "--model",
        "dkt",
        "--epochs",
        str(EPOCHS),
        "--seed",
        "0",
        "--config",
        str(config_file),
        "--no-progress",
        "--json",
    ]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    ddp = json.loads(done.stdout)  # only rank 0 prints
    assert ddp["world_size"] == 2 and ddp["model_version"] == "1"

    config = load_config(config_file, env={})
    tables, _ = load_splits(PID, "akt", config)
    single = train(
        tables["train"], tables["valid"], tables["test"], "dkt", config, epochs=EPOCHS, seed=0, progress=False
    )
    assert single.world_size == 1
    assert single.metrics["test_auc"] > 0.65  # both runs learned something real
    assert abs(ddp["metrics"]["test_auc"] - single.metrics["test_auc"]) < TOLERANCE
    assert ddp["epochs_run"] == len(single.history)
    ddp_curve = [h["valid_auc"] for h in ddp["history"]]
    assert ddp_curve == pytest.approx([h["valid_auc"] for h in single.history], abs=TOLERANCE)
