"""Model names -> classes, and loading a saved model folder of any kind.

To add a model (e.g. the ``zpd`` model): implement it behind :class:`models.base.LearnerModel`
(trainable sequence models subclass :class:`models.neural.NeuralModel`), add its class below, and
add a factory to ``FACTORIES`` in ``tests/models/test_contract.py``. The training pipeline, the
CLI (``zpd train --model NAME``) and the MLflow registry pick it up by name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from models.akt import AKTModel
from models.base import LearnerModel, ModelFormatError, read_saved
from models.bkt import GraphBKT
from models.dkt import DKTModel
from models.hybrid import HybridModel
from models.logistic import LogisticModel
from models.zpd import ZPDModel

__all__ = ["MODEL_CLASSES", "for_graph", "load_model"]

MODEL_CLASSES: dict[str, type[LearnerModel]] = {
    cls.name: cls for cls in (GraphBKT, LogisticModel, DKTModel, AKTModel, ZPDModel, HybridModel)
}


def load_model(folder: str | Path) -> LearnerModel:
    """Rebuild a model saved with :meth:`LearnerModel.save` (config + weights, no pickle)."""
    name, config, arrays = read_saved(folder)
    cls = MODEL_CLASSES.get(name)
    if cls is None:
        raise ModelFormatError(
            f"{Path(folder) / 'config.json'}: unknown model {name!r}; known: {', '.join(MODEL_CLASSES)}"
        )
    try:
        if cls is HybridModel:  # its parts are models of their own
            model = HybridModel.from_parts_config(config, MODEL_CLASSES)
            model.load_weights(arrays)
            return model
        return cls.from_saved(config, arrays)
    except (KeyError, ValueError, TypeError) as exc:
        raise ModelFormatError(f"{folder}: cannot rebuild model {name!r}: {exc}") from None


def for_graph(model: LearnerModel, graph: Any) -> LearnerModel:
    """``model`` over another version of its graph (other prerequisite edges, e.g. an imported
    framework or the misspecified graph a simulation gives the planner): graph BKT is rebuilt from
    the graph with the same parameters, a hybrid's BKT part too; a trained model is kept as it is."""
    if isinstance(model, GraphBKT):
        return GraphBKT.from_graph(graph, **model.p)
    if isinstance(model, HybridModel):
        return HybridModel.combine(model.trained, for_graph(model.fallback, graph))
    return model
