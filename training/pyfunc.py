"""The registered model as an MLflow ``pyfunc`` model: P(correct) for every row of an event table.

A registered version is an MLflow model (``MLmodel``, signature, input example) whose artifact
``zpd_model`` is our own model folder (``config.json`` + ``weights.npz``)::

    model = mlflow.pyfunc.load_model("models:/zpd-learner@champion")
    model.predict(events)  # DataFrame: learner_id, item_id, skill, correct[, timestamp]
    #    p_correct          one row per event, in the same order
    # 0  0.63
    # 1  0.71

Each row is predicted from the same learner's *earlier rows in the table* only (leakage-free, the
way the test metrics are computed), then folded into that learner's state if its ``correct`` is
given. A row with an empty ``correct`` is a question: it is predicted and not folded, so a table of
history rows followed by candidate rows asks "how likely is a success on each candidate now?".

What a version keeps, and what a loading process needs
-----------------------------------------------------
Nothing of a version is unpickled to load it. MLflow keeps the file that makes the model
(``pyfunc_model.py``, a copy of :mod:`training.pyfunc_model`: MLflow's "models from code") and
runs it at load; the model carries the project's code that file runs (``code/``: :data:`CODE`,
MLflow's ``code_paths``, which MLflow puts first on ``sys.path`` when it loads the model) and
pins the packages it needs (``requirements.txt``), so it loads where the project is not
installed. The weights are read by :func:`models.registry.load_model` in ``load_context``
(``np.load(allow_pickle=False)``). Loading still runs the version's code, so load pyfunc models
only from a registry you trust; the server (``serving/model_provider.py``) runs none of it: it
reads ``zpd_model`` only.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.pyfunc.model import PythonModel
from mlflow.types import ColSpec, Schema, TensorSpec

from models.base import Event, ItemSpec, LearnerModel
from models.registry import load_model

__all__ = [
    "ARTIFACT",
    "INPUT_COLUMNS",
    "CODE",
    "SKILL_SEPARATOR",
    "EventTableError",
    "PyfuncLearnerModel",
    "input_example",
    "pip_requirements",
    "predict_events",
    "save_pyfunc_model",
    "signature",
]

#: the name of our model folder among the MLflow model's artifacts (``artifacts/zpd_model/``)
ARTIFACT = "zpd_model"
#: between several standards of one event in the ``skill`` column (DataShop's KC separator)
SKILL_SEPARATOR = "~~"
#: column -> MLflow type; ``timestamp`` (epoch seconds) may be left out
INPUT_COLUMNS = {"learner_id": "string", "item_id": "string", "skill": "string", "correct": "double"}
OUTPUT_COLUMN = "p_correct"
#: what the model needs at load time besides the project itself (which is not on a package index)
_REQUIREMENTS = ("mlflow", "cloudpickle", "numpy", "pandas", "torch", "networkx", "pydantic")
#: the project's packages a loaded model runs, shipped whole with every model (``code/``, about
#: 1 MB of source). Whole, not just the modules loading imports: MLflow puts ``code/`` first on
#: ``sys.path``, so in a process that loads the model before importing the project these
#: packages are the model's copies, and ``import training.train`` there must still work.
CODE = ("engine", "models", "training")
_ROOT = Path(__file__).resolve().parents[1]
#: the file MLflow keeps with a version and runs to make its model (see ``training.pyfunc_model``)
_MODEL_CODE = Path(__file__).resolve().with_name("pyfunc_model.py")


class EventTableError(MlflowException):
    """An event table cannot be predicted; the message names the row (counted from 0 in table
    order) and the column at fault.

    An :class:`MlflowException` so that ``mlflow models serve`` answers 400 with this message.
    """

    def __init__(self, message: str):
        super().__init__(message, error_code=INVALID_PARAMETER_VALUE)


class PyfuncLearnerModel(PythonModel):
    """A :class:`models.base.LearnerModel` behind MLflow's ``pyfunc`` interface.

    Made by ``pyfunc_model.py`` when a version loads (see the module docstring); ``load_context``
    loads the model from the ``zpd_model`` artifact. Should anything pickle an instance (Spark's
    UDFs do), its loaded model is left out.
    """

    def __init__(self) -> None:
        self._model: LearnerModel | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {}  # the artifact's path comes from the context at load: nothing else to keep

    def __setstate__(self, state: Mapping[str, Any]) -> None:
        self._model = None

    def load_context(self, context: Any) -> None:
        self._model = load_model(Path(context.artifacts[ARTIFACT]))

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        if self._model is None:
            raise RuntimeError("PyfuncLearnerModel.predict before load_context: load it with mlflow.pyfunc")
        if not isinstance(model_input, pd.DataFrame):
            raise EventTableError(f"expected a table of events (a DataFrame), got {type(model_input).__name__}")
        index = model_input.index
        return pd.DataFrame({OUTPUT_COLUMN: predict_events(self._model, model_input)}, index=index)


# ------------------------------------------------------------------------------------------ predict
def _standards(cell: Any) -> tuple[str, ...]:
    if cell is None or (isinstance(cell, float) and math.isnan(cell)):
        return ()
    return tuple(code for code in str(cell).split(SKILL_SEPARATOR) if code)


def _checked_columns(events: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(correct, timestamp) as float arrays (NaN = not given), after checking every column."""
    missing = [c for c in INPUT_COLUMNS if c not in events.columns]
    if missing:
        raise EventTableError(
            f"the event table has no column {', '.join(missing)}; expected columns "
            f"{', '.join(INPUT_COLUMNS)} and optionally timestamp"
        )
    for column in ("learner_id", "item_id"):
        empty = events[column].isna().to_numpy()
        if empty.any():
            raise EventTableError(f"row {int(np.argmax(empty))}: {column} is empty")
    try:
        correct = pd.to_numeric(events["correct"]).to_numpy(dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise EventTableError(f"column correct: expected numbers in [0, 1] or empty: {exc}") from None
    bad = ~np.isnan(correct) & ((correct < 0) | (correct > 1))
    if bad.any():
        row = int(np.argmax(bad))
        raise EventTableError(f"row {row}: correct is {correct[row]}; expected a number in [0, 1] or empty")
    if "timestamp" not in events.columns:
        return correct, np.full(len(events), np.nan)
    try:
        timestamp = pd.to_numeric(events["timestamp"]).to_numpy(dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise EventTableError(f"column timestamp: expected epoch seconds or empty: {exc}") from None
    return correct, timestamp


def _check_order(learner: str, rows: np.ndarray, timestamp: np.ndarray) -> None:
    """Earlier rows must not be later in time: an unsorted table would leak the future."""
    last, last_row = -math.inf, -1
    for row in rows:
        t = timestamp[row]
        if math.isnan(t):
            continue
        if t < last:
            raise EventTableError(
                f"row {row} (learner {learner!r}) is earlier in time than row {last_row}: "
                "sort each learner's events by time, since each row is predicted from the rows before it"
            )
        last, last_row = t, int(row)


def predict_events(model: LearnerModel, events: pd.DataFrame) -> np.ndarray:
    """P(correct) of each row of ``events``, from the same learner's earlier rows only.

    ``events`` has the columns of :data:`INPUT_COLUMNS` (and optionally ``timestamp``, epoch
    seconds). A row whose ``correct`` is empty is predicted but not folded into the learner's
    state. Rows of one learner must be in time order where they have a timestamp.

    >>> from models.bkt import GraphBKT, bkt_config
    >>> bkt = GraphBKT(bkt_config(["7"]))
    >>> table = pd.DataFrame({"learner_id": ["a", "a", "b"], "item_id": ["q1", "q2", "q1"],
    ...                       "skill": ["7", "7", "7"], "correct": [1.0, None, 0.0]})
    >>> p = predict_events(bkt, table)
    >>> bool(p[1] > p[0] == p[2])  # a's second row follows a success; b starts fresh
    True
    """
    correct, timestamp = _checked_columns(events)
    learners = events["learner_id"].astype(str).to_numpy()
    items = events["item_id"].astype(str).to_numpy()
    skills = events["skill"].to_numpy()
    out = np.empty(len(events), dtype=np.float64)
    for learner, rows in pd.Series(learners).groupby(learners, sort=False).indices.items():
        _check_order(learner, rows, timestamp)
        history = [
            Event(
                items[r],
                _standards(skills[r]),
                float(correct[r]),
                None if math.isnan(timestamp[r]) else float(timestamp[r]),
            )
            for r in rows
        ]
        if not np.isnan(correct[rows]).any():  # only observed rows: the model's own (often batched) path
            out[rows] = model.predict_sequence(history)
            continue
        state = model.init_state()
        for row, event in zip(rows, history):
            out[row] = model.predict_items(state, [ItemSpec(event.item_id, event.standards)])[0]
            if not math.isnan(event.correct):
                state = model.update(state, event)
    return out


# ------------------------------------------------------------------------------------------ save
def signature() -> ModelSignature:
    """Input: one row per event; output: ``p_correct`` per row."""
    columns: list[ColSpec | TensorSpec] = [ColSpec(kind, name) for name, kind in INPUT_COLUMNS.items()]
    columns.append(ColSpec("double", "timestamp", required=False))
    return ModelSignature(inputs=Schema(columns), outputs=Schema([ColSpec("double", OUTPUT_COLUMN)]))


def input_example(model: LearnerModel) -> pd.DataFrame:
    """Two learners on the model's first standards; learner ``b``'s last row is a question."""
    codes = (model.standards + ["unknown"])[:2]
    return pd.DataFrame(
        {
            "learner_id": ["a", "a", "b", "b"],
            "item_id": ["item-1", "item-2", "item-1", "item-3"],
            "skill": [codes[0], codes[0], codes[0], SKILL_SEPARATOR.join(codes)],
            "correct": [1.0, 0.0, 1.0, None],
            "timestamp": [1_700_000_000.0, 1_700_000_060.0, 1_700_000_000.0, 1_700_000_030.0],
        }
    )


def pip_requirements() -> list[str]:
    """The installed versions of what loading needs (given explicitly: inferring them would load
    the model in a subprocess on every training run)."""
    pins = []
    for name in _REQUIREMENTS:
        try:
            pins.append(f"{name}=={version(name).split('+')[0]}")  # no local label (torch 2.x+cpu)
        except PackageNotFoundError:
            pins.append(name)
    return pins


def _code_paths() -> list[str]:
    """The folders of :data:`CODE` (MLflow copies each under ``code/`` by its own name, without
    ``__pycache__``)."""
    return [str(_ROOT / package) for package in CODE]


def save_pyfunc_model(
    model: LearnerModel,
    model_folder: str | Path,
    path: str | Path,
    mlflow_model: Any = None,
    metadata: Mapping[str, Any] | None = None,
) -> Path:
    """Write an MLflow pyfunc model to ``path`` around the saved ``model_folder`` of ``model``.

    ``mlflow_model`` (an ``mlflow.models.Model``) carries the run and logged-model ids when the
    caller logs the result (see :class:`training.tracking.MLflowTracker`).
    """
    with tempfile.TemporaryDirectory(prefix="zpd-pyfunc-") as tmp:
        staged = Path(tmp) / ARTIFACT  # MLflow names the artifact's folder after its source folder
        shutil.copytree(model_folder, staged)
        mlflow.pyfunc.save_model(
            path=str(path),
            python_model=str(_MODEL_CODE),  # models from code: nothing pickled
            artifacts={ARTIFACT: str(staged)},
            signature=signature(),
            input_example=input_example(model),
            pip_requirements=pip_requirements(),
            code_paths=_code_paths(),
            mlflow_model=mlflow_model,
            metadata=dict(metadata or {}),
        )
    return Path(path)
