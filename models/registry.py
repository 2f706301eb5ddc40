"""Model names -> classes, and loading a saved model folder of any kind."""

from __future__ import annotations

from pathlib import Path

from models.base import LearnerModel, ModelFormatError, read_saved
from models.bkt import GraphBKT

__all__ = ["MODEL_CLASSES", "load_model"]

MODEL_CLASSES: dict[str, type[LearnerModel]] = {GraphBKT.name: GraphBKT}


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
