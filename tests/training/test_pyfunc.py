"""Registered versions are MLflow pyfunc models: P(correct) of each event row from the learner's
earlier rows, nothing pickled (MLflow's models from code), loadable with ``mlflow.pyfunc`` and served by
``mlflow models serve``.

The first tests use graph BKT in memory; the slow ones train a small logistic model into a
temporary SQLite store (one per module) and load it back through the registry.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import os
import pickletools
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

import cloudpickle
import httpx
import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml

from configs import TrainingConfig, ZPDConfig
from models.base import Event, ItemSpec
from models.bkt import GraphBKT, bkt_config
from training.cli import load_splits
from training.pyfunc import SKILL_SEPARATOR, EventTableError, input_example, predict_events, save_pyfunc_model
from training.tracking import MLflowTracker, load_registered_model, promote
from training.train import predict_table, train

PID = (
    Path(__file__).resolve().parents[2] / "data" / "kt_sample" / "assist2009_pid" / "assist2009_pid_train1_head150.csv"
)
MLFLOW = Path(sys.executable).parent / "mlflow"


def bkt() -> GraphBKT:
    return GraphBKT(bkt_config(["7", "8"]))


def events(*rows: tuple) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["learner_id", "item_id", "skill", "correct"])


# ------------------------------------------------------------------------------------------ predict
def test_each_row_is_predicted_from_the_same_learners_earlier_rows() -> None:
    model = bkt()
    table = events(
        ("a", "q1", "7", 1.0),
        ("b", "q1", "7", 0.0),
        ("a", "q2", "7", 1.0),
        ("a", "q3", "7~~8", 0.0),
        ("b", "q4", "8", 1.0),
    )
    p = predict_events(model, table)
    a = model.predict_sequence([Event("q1", ("7",), 1.0), Event("q2", ("7",), 1.0), Event("q3", ("7", "8"), 0.0)])
    b = model.predict_sequence([Event("q1", ("7",), 0.0), Event("q4", ("8",), 1.0)])
    np.testing.assert_allclose(p[[0, 2, 3]], a)
    np.testing.assert_allclose(p[[1, 4]], b)
    assert p[2] > p[0]  # a's first success raised the next prediction on 7
    # a row's own answer moves neither its own prediction nor any earlier one: only the learner's later rows
    flipped = predict_events(model, table.assign(correct=[1.0, 0.0, 0.0, 0.0, 1.0]))
    np.testing.assert_array_equal(flipped[[0, 1, 2, 4]], p[[0, 1, 2, 4]])
    assert flipped[3] < p[3]


def test_rows_without_an_answer_are_predicted_and_not_folded() -> None:
    model = bkt()
    table = events(("a", "q1", "7", 1.0), ("a", "q2", "7", None), ("a", "q3", "8", None), ("a", "q4", "7", 0.0))
    p = predict_events(model, table)
    after_q1 = model.update(model.init_state(), Event("q1", ("7",), 1.0))
    np.testing.assert_allclose(p[1:3], model.predict_items(after_q1, [ItemSpec("q2", ("7",)), ItemSpec("q3", ("8",))]))
    assert p[3] == pytest.approx(p[1])  # the questions in between were not folded


def test_timestamps_are_passed_on_and_must_not_go_back_in_time() -> None:
    table = events(("a", "q1", "7", 1.0), ("a", "q2", "7", 0.0), ("a", "q3", "7", 1.0)).assign(
        timestamp=[100.0, None, 160.0]
    )
    np.testing.assert_allclose(predict_events(bkt(), table), predict_events(bkt(), table.drop(columns="timestamp")))
    with pytest.raises(EventTableError, match=r"row 2 \(learner 'a'\) is earlier in time than row 0"):
        predict_events(bkt(), table.assign(timestamp=[100.0, None, 90.0]))


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda t: t.drop(columns="skill"), "no column skill"),
        (lambda t: t.assign(correct=[1.0, 2.0]), r"row 1: correct is 2.0; expected a number in \[0, 1\] or empty"),
        (lambda t: t.assign(learner_id=[None, "a"]), "row 0: learner_id is empty"),
        (lambda t: t.assign(correct=["yes", "no"]), "column correct: expected numbers"),
    ],
)
def test_bad_tables_are_refused_naming_the_row_or_column(change, message: str) -> None:
    table = events(("a", "q1", "7", 1.0), ("a", "q2", "7", 0.0))
    with pytest.raises(EventTableError, match=message):
        predict_events(bkt(), change(table))


# ------------------------------------------------------------------------------------------ pickle
def _globals(pickled: bytes) -> list[str]:
    """The names a pickle imports when it is loaded (GLOBAL, STACK_GLOBAL)."""
    names, strings = [], []
    for op, arg, _ in pickletools.genops(pickled):
        if op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE"):
            strings.append(arg)
        elif op.name == "STACK_GLOBAL":
            names.append(".".join(strings[-2:]))
        elif op.name == "GLOBAL":
            names.append(str(arg).replace(" ", "."))
    return names


def test_a_saved_model_keeps_its_code_and_weights_and_no_pickle(tmp_path: Path) -> None:
    """Nothing of a version is unpickled to load it: MLflow keeps the file that makes the model
    (models from code) and our own model folder, and a loaded instance pickled again (Spark's
    UDFs do) still holds none of the weights."""
    model = bkt()
    path = save_pyfunc_model(model, model.save(tmp_path / "folder"), tmp_path / "mlflow-model")
    assert not list(path.rglob("*.pkl"))
    code = Path(__file__).resolve().parents[2] / "training" / "pyfunc_model.py"
    assert (path / "pyfunc_model.py").read_text() == code.read_text()
    flavor = yaml.safe_load((path / "MLmodel").read_text())["flavors"]["python_function"]
    assert flavor["loader_module"] == "mlflow.pyfunc.loaders.code_model"
    assert {p.name for p in (path / "artifacts" / "zpd_model").iterdir()} == {"config.json", "weights.npz"}

    loaded = mlflow.pyfunc.load_model(str(path))
    table = input_example(model)
    assert loaded.predict(table)["p_correct"].tolist() == pytest.approx(predict_events(model, table).tolist())
    again = cloudpickle.dumps(loaded.unwrap_python_model())
    assert _globals(again) == ["training.pyfunc.PyfuncLearnerModel"] and len(again) < 100


#: run in a fresh interpreter: hides the project (its folder on sys.path and the editable install's
#: import hooks), checks it is gone, then loads the pyfunc model and prints its predictions
HIDDEN_LOAD = """
import importlib.util, json, os, sys
root = os.path.realpath(sys.argv[1])
sys.path[:] = [p for p in sys.path if os.path.realpath(p or os.getcwd()) != root]
editable = lambda hook: getattr(hook, "__module__", "").startswith("__editable__")
sys.meta_path[:] = [f for f in sys.meta_path if not editable(f)]
sys.path_hooks[:] = [h for h in sys.path_hooks if not editable(h)]
sys.path_importer_cache.clear()
assert all(importlib.util.find_spec(name) is None for name in ("training", "models", "engine")), "not hidden"
import mlflow.pyfunc, pandas as pd
model = mlflow.pyfunc.load_model(sys.argv[2])
table = pd.DataFrame(json.load(open(sys.argv[3])))
print(json.dumps(model.predict(table)["p_correct"].tolist()))
print(sorted({m.split(".")[0] for m in sys.modules if m.split(".")[0] in ("training", "models", "engine")}))
print(sys.modules["training.pyfunc"].__file__)
"""


def test_a_saved_model_carries_its_code_and_loads_where_the_project_is_not_installed(tmp_path: Path) -> None:
    """The bundled model (hybrid: a trained network and graph BKT) saved as a pyfunc model loads
    and predicts in an interpreter that cannot import the project: what it runs comes from the
    model's own ``code/`` (a module missing from ``training.pyfunc.CODE`` fails here)."""
    from models.registry import load_model

    root = Path(__file__).resolve().parents[2]
    folder = root / "data" / "models" / "default"
    model = load_model(folder)
    path = save_pyfunc_model(model, folder, tmp_path / "mlflow-model")
    assert (path / "code" / "training" / "pyfunc.py").is_file() and not list(path.glob("code/**/__pycache__"))
    assert {p.name for p in (path / "code").iterdir()} == {"engine", "models", "training"}
    assert "requirements.txt" in {p.name for p in path.iterdir()}
    table = input_example(model)
    table_file = tmp_path / "table.json"
    table_file.write_text(json.dumps(table.to_dict(orient="list")))  # floats stay floats, NaN included
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, "-c", HIDDEN_LOAD, str(root), str(path), str(table_file)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    predicted, packages, source = done.stdout.strip().splitlines()[-3:]
    assert json.loads(predicted) == pytest.approx(predict_events(model, table).tolist())
    assert packages == "['engine', 'models', 'training']"
    assert Path(source).resolve() == (path / "code" / "training" / "pyfunc.py").resolve()
    # where the project is installed, loading the model first (its code goes first on sys.path)
    # leaves the rest of the project importable
    first = "import sys, mlflow.pyfunc; mlflow.pyfunc.load_model(sys.argv[1]); import training.train, engine.graph"
    done = subprocess.run(
        [sys.executable, "-c", first, str(path)], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]


# ------------------------------------------------------------------------------------------ registry
class Registry(NamedTuple):
    store: str
    version: str
    model: object
    test: object


@pytest.fixture(scope="module")
def registry(tmp_path_factory) -> Registry:
    """A store with one trained logistic model, version 1 of zpd-learner, promoted to champion."""
    store = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
    config = ZPDConfig(
        mlflow={"tracking_uri": store, "registered_model": "zpd-learner"},
        training=TrainingConfig(batch_tokens=1024, max_batch_learners=32),
    )
    tables, _ = load_splits(PID, "akt", config)
    tracker = MLflowTracker(store, "tests", "zpd-learner", tags={"data.path": str(PID)})
    result = train(
        tables["train"],
        tables["valid"],
        tables["test"],
        "logistic",
        config,
        epochs=2,
        seed=0,
        tracker=tracker,
        progress=False,
    )
    assert result.model_version == "1"
    promote(result.model_version, "champion", store, "zpd-learner")
    return Registry(store, result.model_version, result.model, tables["test"])


@pytest.fixture
def process_tracking_uri(registry: Registry, monkeypatch):
    """``models:/`` URIs in ``mlflow.pyfunc`` resolve through MLflow's process-wide tracking URI."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", registry.store)  # restored after the test
    mlflow.set_tracking_uri(registry.store)
    yield
    mlflow.set_tracking_uri(None)


def event_frame(table, learners: int) -> pd.DataFrame:
    """The first ``learners`` learners of an InteractionTable as an event table, in table order."""
    rows = []
    for seq in itertools.islice(table.iter_learners(), learners):
        for t in range(len(seq)):
            codes = seq.standard_indices[seq.standard_offsets[t] : seq.standard_offsets[t + 1]]
            rows.append(
                (
                    seq.learner_id,
                    table.item_ids[seq.item[t]],
                    SKILL_SEPARATOR.join(table.standard_ids[c] for c in codes),
                    float(seq.correct[t]),
                )
            )
    return events(*rows)


@pytest.mark.slow
def test_champion_loads_with_mlflow_pyfunc_and_predicts_what_the_test_metrics_measured(
    registry: Registry, process_tracking_uri
) -> None:
    loaded = mlflow.pyfunc.load_model("models:/zpd-learner@champion")
    assert loaded.metadata.run_id is not None and loaded.metadata.metadata["zpd_model"] == "logistic"
    table = event_frame(registry.test, 6)
    out = loaded.predict(table)
    assert list(out.columns) == ["p_correct"] and len(out) == len(table)
    # the per-attempt predictions the run's test metrics were computed from, for the same learners
    expected = predict_table(registry.model, registry.test.subset(np.arange(6)))
    np.testing.assert_allclose(out["p_correct"].to_numpy(), expected, rtol=1e-5)
    # our own loader reads the same folder out of the MLflow model
    ours = load_registered_model("models:/zpd-learner@champion", registry.store)
    np.testing.assert_allclose(predict_events(ours, table), out["p_correct"].to_numpy())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _json_ready(table: pd.DataFrame) -> dict:
    """``dataframe_split`` with JSON nulls for missing values."""
    split = table.astype(object).where(table.notna(), None).to_dict(orient="split")
    return {"columns": split["columns"], "data": split["data"]}


def _stop(server: subprocess.Popen) -> None:
    """Stop the server's process group (the server and its uvicorn workers)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGKILL)
        server.wait()


@pytest.mark.slow
def test_mlflow_models_serve_answers_invocations(registry: Registry, tmp_path: Path) -> None:
    port = _free_port()
    # as from an activated venv: the server runs `uvicorn` from PATH
    path = f"{MLFLOW.parent}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": registry.store, "PATH": path}
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen(
        [str(MLFLOW), "models", "serve", "-m", "models:/zpd-learner/1", "--env-manager", "local", "-p", str(port)],
        cwd=tmp_path,  # the model's code comes from the installed project, not the working directory
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: the workers stop with it
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert server.poll() is None, f"mlflow models serve exited: {(tmp_path / 'serve.log').read_text()[-3000:]}"
            try:
                if httpx.get(f"{url}/ping", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"no /ping within 180 s: {(tmp_path / 'serve.log').read_text()[-3000:]}"
            time.sleep(0.5)

        table = event_frame(registry.test, 2)
        question = table.iloc[[0]].assign(item_id="never-seen", correct=math.nan)  # after all of its learner's rows
        table = pd.concat([table, question], ignore_index=True)
        answer = httpx.post(f"{url}/invocations", json={"dataframe_split": _json_ready(table)}, timeout=60)
        assert answer.status_code == 200, answer.text
        served = [row["p_correct"] for row in answer.json()["predictions"]]
        assert len(served) == len(table) and all(0.0 < p < 1.0 for p in served)
        assert served == pytest.approx(predict_events(registry.model, table).tolist(), rel=1e-6)

        unsorted = table.assign(timestamp=np.arange(len(table), 0, -1, dtype=float))
        refused = httpx.post(f"{url}/invocations", json={"dataframe_split": _json_ready(unsorted)}, timeout=60)
        assert refused.status_code == 400 and "is earlier in time than row" in refused.json()["message"]
    finally:
        _stop(server)
        log.close()
    assert not (tmp_path / "mlflow.db").exists()  # everything went to the test's store
