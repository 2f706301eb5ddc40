"""A trained model where there was data, graph BKT everywhere else.

Real learner logs cover some standards of a framework (ASSISTments 2009 maps to 121 of the 480
Coherence Map standards). The hybrid predicts success on items whose standards the trained model
knows with the trained model and on every other item with graph BKT (which needs no data); both
see every event, so a learner's state stays whole. ``mastery`` (what the planner gates on) is
graph BKT's P(known) everywhere: see :meth:`HybridModel.mastery`.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any, cast

import numpy as np

from models.base import CodeRows, Event, ItemBatch, ItemSpec, LearnerModel, LearnerState

__all__ = ["HybridModel"]


class HybridModel(LearnerModel):
    name = "hybrid"
    monotonic = True  # mastery is graph BKT's

    def __init__(self, config: Mapping[str, Any], trained: LearnerModel, fallback: LearnerModel):
        super().__init__(config)
        self.trained, self.fallback = trained, fallback
        self.covered = frozenset(trained.standards)
        self._covered_rows = CodeRows(trained.standard_index)
        self._model_id = id(self)

    @classmethod
    def from_parts_config(cls, config: Mapping[str, Any], classes: Mapping[str, type[LearnerModel]]) -> HybridModel:
        """Rebuild from a saved config; ``classes`` maps the parts' model names to their classes."""
        parts = config["parts"]
        built = {}
        for role in ("trained", "fallback"):
            name = parts[role]["model"]
            if name not in classes:
                raise ValueError(f"unknown {role} part model {name!r}; known: {', '.join(classes)}")
            built[role] = classes[name](parts[role]["config"])
        return cls(config, built["trained"], built["fallback"])

    @classmethod
    def combine(cls, trained: LearnerModel, fallback: LearnerModel) -> HybridModel:
        standards = list(dict.fromkeys([*fallback.standards, *trained.standards]))
        config = {
            "standards": standards,
            "parts": {
                "trained": {"model": trained.name, "config": trained.config},
                "fallback": {"model": fallback.name, "config": fallback.config},
            },
        }
        return cls(config, trained, fallback)

    # ------------------------------------------------------------------ state
    def init_state(self) -> LearnerState:
        return _join(self.trained.init_state(), self.fallback.init_state())

    def update(self, state: LearnerState, event: Event) -> LearnerState:
        t, f = _split(state)
        known = tuple(c for c in event.standards if c in self.covered)
        if known:
            t = self.trained.update(t, Event(event.item_id, known, event.correct, event.timestamp))
        return _join(t, self.fallback.update(f, event))

    def state_with_prior_values(
        self, codes: Sequence[str], values: np.ndarray, state: LearnerState | None = None
    ) -> LearnerState:
        """Both parts take the priors of the standards they know (the trained part on top of what it
        learned from data, see its own ``state_with_prior_values``)."""
        state = self.init_state() if state is None else state
        t, f = _split(state)
        covered, _, _ = self._covered_rows(codes)
        if (~np.isnan(values[covered])).any():
            t = self.trained.state_with_prior_values(codes, values, t)
        return _join(t, self.fallback.state_with_prior_values(codes, values, f))

    # ------------------------------------------------------------------ prediction
    def _use_trained(self, item: ItemSpec) -> bool:
        return bool(item.standards) and all(c in self.covered for c in item.standards)

    def item_key(self, item: ItemSpec) -> Hashable:
        if self._use_trained(item):
            return "trained", self.trained.item_key(item)
        return "fallback", self.fallback.item_key(item)

    def encode_items(self, items: Sequence[ItemSpec]) -> ItemBatch:
        mask = np.array([self._use_trained(i) for i in items], dtype=bool)
        trained = self.trained.encode_items([i for i, m in zip(items, mask) if m])
        fallback = self.fallback.encode_items([i for i, m in zip(items, mask) if not m])
        return ItemBatch(
            self._model_id,
            tuple(i.item_id for i in items),
            # "rank": each item's position in its part's batch (what ``take`` cuts by)
            {"mask": mask, "rank": _ranks(mask), "trained": trained, "fallback": fallback},  # type: ignore[dict-item]
        )

    def predict(self, state: LearnerState, items: ItemBatch) -> np.ndarray:
        t, f = _split(state)
        a = items.arrays
        out = np.empty(len(items))
        mask = a["mask"]
        # encode_items keeps the parts' own batches under "trained" and "fallback"
        if mask.any():
            out[mask] = self.trained.predict(t, cast(ItemBatch, a["trained"]))
        if (~mask).any():
            out[~mask] = self.fallback.predict(f, cast(ItemBatch, a["fallback"]))
        return out

    def predict_at(self, state: LearnerState, items: ItemBatch, positions: np.ndarray) -> np.ndarray:
        """Each part predicts its own items among ``positions`` (no combined batch is built)."""
        a = items.arrays
        picked, rank = a["mask"][positions], a["rank"][positions]
        t, f = _split(state)
        trained = int(np.count_nonzero(picked))
        if trained == len(positions):  # one part only: its answer as it is
            return np.asarray(self.trained.predict_at(t, cast(ItemBatch, a["trained"]), rank), dtype=float)
        if trained == 0:
            return np.asarray(self.fallback.predict_at(f, cast(ItemBatch, a["fallback"]), rank), dtype=float)
        out = np.empty(len(positions))
        out[picked] = self.trained.predict_at(t, cast(ItemBatch, a["trained"]), rank[picked])
        others = ~picked
        out[others] = self.fallback.predict_at(f, cast(ItemBatch, a["fallback"]), rank[others])
        return out

    def mastery(self, state: LearnerState) -> dict[str, float]:
        """Graph BKT's P(known) for every standard (it sees every event). The trained part's own
        "mastery" is P(correct) on a typical item: right for predicting success, but it plateaus
        below any mastery threshold and is not monotone in the evidence (on the bundled model, eight
        correct answers in a row on 6.G.A.2 lowered it from 0.76 to 0.74), so it cannot gate
        advancement. Measured with ``zpd simulate``: gating on it halved the planner's learning gain."""
        return self.fallback.mastery(_split(state)[1])

    # ------------------------------------------------------------------ persistence
    def weights(self) -> dict[str, np.ndarray]:
        return {
            **{f"trained.{k}": v for k, v in self.trained.weights().items()},
            **{f"fallback.{k}": v for k, v in self.fallback.weights().items()},
        }

    def load_weights(self, arrays: Mapping[str, np.ndarray]) -> None:
        self.trained.load_weights({k[8:]: v for k, v in arrays.items() if k.startswith("trained.")})
        self.fallback.load_weights({k[9:]: v for k, v in arrays.items() if k.startswith("fallback.")})


def _join(trained: LearnerState, fallback: LearnerState) -> LearnerState:
    return {**{f"t.{k}": v for k, v in trained.items()}, **{f"f.{k}": v for k, v in fallback.items()}}


def _ranks(mask: np.ndarray) -> np.ndarray:
    """Each item's position among the items on its side of ``mask``."""
    return np.where(mask, np.cumsum(mask) - 1, np.cumsum(~mask) - 1)


def _split(state: LearnerState) -> tuple[LearnerState, LearnerState]:
    return (
        {k[2:]: v for k, v in state.items() if k.startswith("t.")},
        {k[2:]: v for k, v in state.items() if k.startswith("f.")},
    )
