"""Model names -> classes, and loading a saved model folder of any kind.

To add a model (e.g. the ``zpd`` model): implement it behind :class:`models.base.LearnerModel`
(trainable sequence models subclass :class:`models.neural.NeuralModel`), add its class below, and
add a factory to ``FACTORIES`` in ``tests/models/test_contract.py``. The training pipeline, the
CLI (``zpd train --model NAME``) and the MLflow registry pick it up by name.
"""

from __future__ import annotations

from pathlib import Path

from models.akt import AKTModel
from models.base import LearnerModel, ModelFormatError, read_saved
from models.bkt import GraphBKT
from models.dkt import DKTModel
from models.hybrid import HybridModel
from models.logistic import LogisticModel
from models.zpd import ZPDModel

__all__ = ["MODEL_CLASSES", "load_model"]

MODEL_CLASSES: dict[str, type[LearnerModel]] = {
    cls.name: cls for cls in (GraphBKT, LogisticModel, DKTModel, AKTModel, ZPDModel, HybridModel)
}


def load_model(folder: str | Path) -> LearnerModel:
    """Rebuild a model saved with :meth:`LearnerModel.save` (config + weights, no pickle)."""
    name, config, arrays = read_saved(folder)
    cls = MODEL_CLASSES.get(name)
    if cls is None:
        raise ModelFormatError(f"{Path(folder) / 'config.json'}: unknown model {name!r}; known: {', '.join(MODEL_CLASSES)}")
    try:
        return cls.from_saved(config, arrays)
    except (KeyError, ValueError, TypeError) as exc:
        raise ModelFormatError(f"{folder}: cannot rebuild model {name!r}: {exc}") from None
