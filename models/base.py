"""The learner-state model interface shared by training and serving.

A model turns a stream of events into a per-learner *state* and answers two questions about it:
``predict`` (the probability that the learner succeeds on each candidate item, vectorized) and
``mastery`` (the probability that each standard is mastered). ``update`` folds one event into a
state in O(1): no replay of history. States are plain mappings of numpy arrays, so a store can
persist them without pickle (:func:`state_to_bytes`).

Models know *standards* (knowledge components: CCSS codes for the bundled graph, skill ids for a
research dataset) and optionally *items* seen in training. An item the model has never seen is
predicted from its standards and its catalog difficulty, so a new catalog works on day one.

Saving writes a folder with ``config.json`` (model name, format version, hyper-parameters,
vocabularies) and ``weights.npz`` (arrays only, loaded with ``allow_pickle=False``).
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from engine.observations import Event, ItemSpec, Mastery

__all__ = [
    "FORMAT_VERSION",
    "CodeRows",
    "Event",
    "ItemBatch",
    "ItemSpec",
    "LearnerModel",
    "LearnerState",
    "Mastery",
    "ModelFormatError",
    "state_from_bytes",
    "state_to_bytes",
]

FORMAT_VERSION = 1
LearnerState = dict[str, np.ndarray]


class ModelFormatError(ValueError):
    """A saved model cannot be loaded; the message names the file and what is wrong."""


@dataclass(frozen=True)
class ItemBatch:
    """Candidate items encoded once for one model (reuse it across learners: encoding is the slow part).

    ``arrays`` is model-specific; ``item_ids`` keeps the order of the predictions.
    """

    model_id: int
    item_ids: tuple[str, ...]
    arrays: Mapping[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.item_ids)


class CodeRows:
    """Where the codes of a fixed list sit in a model's standard index, worked out once per list:
    ``rows(codes)`` is ``(positions in codes, the model's indices, whether no index repeats)`` for
    the codes the model knows."""

    def __init__(self, index: Mapping[str, int]):
        self.index = index
        self._seen: dict[int, tuple[Sequence[str], np.ndarray, np.ndarray, bool]] = {}

    def __call__(self, codes: Sequence[str]) -> tuple[np.ndarray, np.ndarray, bool]:
        hit = self._seen.get(id(codes))
        if hit is None or hit[0] is not codes:
            found = [(k, i) for k, code in enumerate(codes) if (i := self.index.get(code)) is not None]
            hit = (
                codes,
                np.array([k for k, _ in found], dtype=np.int64),
                np.array([i for _, i in found], dtype=np.int64),
                len({i for _, i in found}) == len(found),
            )
            if len(self._seen) >= 16:
                self._seen.clear()
            self._seen[id(codes)] = hit
        return hit[1], hit[2], hit[3]


class LearnerModel(ABC):
    """Base class of every learner-state model.

    Subclasses set ``name`` and ``monotonic`` (True when mastery of the answered standards never
    drops after a correct answer) and implement the abstract methods; ``config`` must hold
    everything (JSON values only) needed to rebuild the model before its weights are loaded.
    """

    name: ClassVar[str]
    monotonic: ClassVar[bool] = False

    def __init__(self, config: Mapping[str, Any]):
        self.config: dict[str, Any] = dict(config)
        self.standards: list[str] = list(self.config["standards"])
        self.standard_index = {code: i for i, code in enumerate(self.standards)}

    # -- per-learner ------------------------------------------------------------------------
    @abstractmethod
    def init_state(self) -> LearnerState:
        """The state of a learner with no events."""

    @abstractmethod
    def update(self, state: LearnerState, event: Event) -> LearnerState:
        """A new state with ``event`` folded in (the given state is not modified)."""

    @abstractmethod
    def encode_items(self, items: Sequence[ItemSpec]) -> ItemBatch:
        """Encode candidates once so ``predict`` is a few vectorized operations."""

    def item_key(self, item: ItemSpec) -> Hashable:
        """What this model's prediction for ``item`` depends on besides the learner's state: items
        with equal keys get the same P(correct), so a caller may predict one for all. The item
        itself unless a model says less."""
        return item

    @abstractmethod
    def predict(self, state: LearnerState, items: ItemBatch) -> np.ndarray:
        """P(correct) for each encoded item, shape (len(items),), float64 in (0, 1)."""

    def take(self, items: ItemBatch, positions: np.ndarray) -> ItemBatch | None:
        """The items at ``positions`` (repeats allowed) of an encoded batch, as a batch of their
        own, without encoding again: a request predicts its few candidates, not the catalog.
        None when the model cannot cut its batches (callers then predict all and pick)."""
        return None

    def predict_at(self, state: LearnerState, items: ItemBatch, positions: np.ndarray) -> np.ndarray:
        """``predict(state, items)[positions]``, predicting only those items where :meth:`take` can."""
        if not len(positions):
            return np.empty(0)
        part = self.take(items, positions)
        return self.predict(state, items)[positions] if part is None else self.predict(state, part)

    @abstractmethod
    def mastery(self, state: LearnerState) -> dict[str, float]:
        """P(mastered) for every standard the model knows (a :class:`Mastery` where the model
        computes it as one array)."""

    @abstractmethod
    def state_with_prior_values(
        self, codes: Sequence[str], values: np.ndarray, state: LearnerState | None = None
    ) -> LearnerState:
        """A state whose belief about ``codes[k]`` starts from ``values[k]`` (P(known), e.g. a
        learner's starting belief from their grade or a placement; NaN: no prior, left as it is).

        On a state without evidence on a standard, ``mastery`` of that standard becomes its
        prior; evidence then moves it as it would move the model's own starting estimate.
        Standards the model does not know are ignored; a code given twice takes its last value;
        ``state`` is not modified. A learner's first answers refresh hundreds of priors: models
        find where the codes sit once per list (:class:`CodeRows`; callers pass the same list).
        """

    def state_with_priors(self, priors: Mapping[str, float], state: LearnerState | None = None) -> LearnerState:
        """:meth:`state_with_prior_values` with the priors as a mapping of standard codes."""
        values = np.fromiter(priors.values(), dtype=np.float64, count=len(priors))
        return self.state_with_prior_values(list(priors), values, state)

    # -- conveniences -------------------------------------------------------------------------
    def predict_items(self, state: LearnerState, items: Sequence[ItemSpec]) -> np.ndarray:
        return self.predict(state, self.encode_items(items))

    def replay(self, events: Sequence[Event], state: LearnerState | None = None) -> LearnerState:
        """Fold a whole history (the slow path used to rebuild a state from the event log)."""
        state = self.init_state() if state is None else state
        for event in events:
            state = self.update(state, event)
        return state

    def predict_sequence(self, events: Sequence[Event], state: LearnerState | None = None) -> np.ndarray:
        """P(correct) of each event from the state just before it: the evaluation path.

        Models with a batched forward pass override this; the contract suite checks that it
        equals folding ``update`` one event at a time.
        """
        state = self.init_state() if state is None else state
        out = np.empty(len(events))
        for t, event in enumerate(events):
            out[t] = self.predict_items(state, [ItemSpec(event.item_id, event.standards)])[0]
            state = self.update(state, event)
        return out

    def standard_indices(self, codes: Sequence[str]) -> list[int]:
        """Indices of the known codes among ``codes`` (unknown standards are ignored)."""
        return [self.standard_index[c] for c in codes if c in self.standard_index]

    # -- persistence ---------------------------------------------------------------------------
    @abstractmethod
    def weights(self) -> dict[str, np.ndarray]:
        """All learned arrays, by name."""

    @abstractmethod
    def load_weights(self, arrays: Mapping[str, np.ndarray]) -> None:
        """Set the learned arrays (the inverse of :meth:`weights`)."""

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        meta = {"model": self.name, "format_version": FORMAT_VERSION, "config": self.config}
        (folder / "config.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        # numpy's stub reads **kwds as possibly naming its allow_pickle: bool; the keys are weight names
        np.savez(folder / "weights.npz", **self.weights())  # type: ignore[arg-type]
        return folder

    @classmethod
    def from_saved(cls, config: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> LearnerModel:
        model = cls(config)
        model.load_weights(arrays)
        return model


def read_saved(folder: str | Path) -> tuple[str, dict[str, Any], dict[str, np.ndarray]]:
    """Read a saved model folder: (model name, config, weights). No pickle is ever loaded."""
    folder = Path(folder)
    config_path, weights_path = folder / "config.json", folder / "weights.npz"
    try:
        meta = json.loads(config_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelFormatError(
            f"{config_path}: not found; a saved model folder holds config.json and weights.npz"
        ) from None
    except json.JSONDecodeError as exc:
        raise ModelFormatError(f"{config_path}: not valid JSON: {exc}") from None
    if not isinstance(meta, dict) or not {"model", "format_version", "config"} <= meta.keys():
        raise ModelFormatError(f"{config_path}: expected keys model, format_version and config")
    if meta["format_version"] != FORMAT_VERSION:
        raise ModelFormatError(
            f"{config_path}: format_version {meta['format_version']!r} is not supported (this version reads {FORMAT_VERSION})"
        )
    try:
        with np.load(weights_path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except FileNotFoundError:
        raise ModelFormatError(f"{weights_path}: not found") from None
    except (ValueError, OSError) as exc:
        raise ModelFormatError(f"{weights_path}: not a readable weights file: {exc}") from None
    return meta["model"], meta["config"], arrays


_STATE_MAGIC = b"ZPDS1"


def state_to_bytes(state: Mapping[str, np.ndarray]) -> bytes:
    """Serialize a learner state: a small JSON header (name, dtype, shape per array) and the raw
    array bytes. No pickle, no zip: this runs on every request, so it must be cheap."""
    header, chunks = [], []
    for name, value in state.items():
        array = np.ascontiguousarray(value)
        header.append([name, array.dtype.str, list(array.shape)])
        chunks.append(array.tobytes())
    head = json.dumps(header, separators=(",", ":")).encode()
    return b"".join([_STATE_MAGIC, len(head).to_bytes(4, "little"), head, *chunks])


def state_from_bytes(data: bytes) -> LearnerState:
    if not data.startswith(_STATE_MAGIC):
        raise ModelFormatError("not a learner state (unknown header)")
    size = int.from_bytes(data[5:9], "little")
    header = json.loads(data[9 : 9 + size])
    offset, state = 9 + size, {}
    for name, dtype, shape in header:
        dt = np.dtype(dtype)
        count = math.prod(shape)  # 1 for a scalar
        state[name] = np.frombuffer(data, dtype=dt, count=count, offset=offset).reshape(shape).copy()
        offset += count * dt.itemsize
    return state
