"""MLflow's own ``MLFLOW_TRACKING_URI`` alone directs `zpd train` and `zpd models list`, from any
working directory, and nothing is created relative to that directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent.parent
ZPD = Path(sys.executable).parent / "zpd"


def zpd(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("ZPD_", "MLFLOW_"))}
    return subprocess.run([str(ZPD), *args], cwd=cwd, env={**clean, **env}, capture_output=True, text=True, timeout=600)


def test_mlflow_tracking_uri_alone_directs_train_and_list(tmp_path: Path) -> None:
    store = tmp_path / "tracking" / "mlflow.db"
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{store}"}
    work = tmp_path / "elsewhere"
    work.mkdir()
    trained = zpd(
        "train",
        "--data",
        str(ROOT / "data" / "kt_sample" / "assist2015"),
        "--format",
        "akt",
        "--fold",
        "1",
        "--model",
        "logistic",
        "--epochs",
        "1",
        "--no-progress",
        "--json",
        cwd=work,
        env=env,
    )
    assert trained.returncode == 0, trained.stderr[-2000:]
    summary = json.loads(trained.stdout)
    assert summary["tracking_uri"] == f"sqlite:///{store}" and store.exists()
    listed = zpd("models", "list", "--json", cwd=tmp_path, env=env)
    assert listed.returncode == 0, listed.stderr[-2000:]
    versions = json.loads(listed.stdout)["versions"]
    assert [(str(v["version"]), v["run_id"]) for v in versions] == [(str(summary["model_version"]), summary["run_id"])]
    assert not (work / "var").exists() and not (tmp_path / "var").exists() and not (work / "mlruns").exists()
