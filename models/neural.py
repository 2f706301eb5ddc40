"""The torch base of trainable sequence models: batched training forward + O(1) numpy serving path.

A :class:`NeuralModel` owns an ``nn.Module`` (``self.net``) and two views of the same weights:

* **training / evaluation**: ``net(batch) -> logits (B, T)`` over a padded :class:`SequenceBatch`
  of learner sequences; logit ``t`` is computed from attempts ``< t`` only (one prediction per
  attempt, the label of attempt ``t`` never reaches logit ``t``). :meth:`predict_sequence` uses it.
* **serving**: :meth:`step` folds one attempt into a state of numpy arrays and :meth:`score`
  scores many encoded candidates at once, both in numpy on a float32 copy of the weights
  (refreshed automatically whenever a parameter changes). The contract suite checks that the two
  views agree (``incremental update == full recompute``).

Every attempt is encoded the same way for every model (:class:`EncodedAttempts`): the model's item
index (``n_items`` = an item unseen in training), the standard indices padded with
``n_standards`` (unknown standards are dropped), the response in [0, 1], a **difficulty feature**
and the learner's prior success/failure counts on each of the attempt's standards, plus the
**recency** of each standard (:func:`recency_features`: current streak, attempts since it was last
practised, length of the run of attempts on it just before), all from earlier attempts only.

The difficulty feature is the item's difficulty *relative to a typical item of its standards*, in
logits: ``logit(smoothed error rate of the item) - logit(error rate of its standards)``, estimated
on the training learners (cross-fitted over 5 learner folds for the training rows themselves, so a
row's own label never feeds its feature). An item unseen in training takes
``logit(catalog difficulty)`` (catalog difficulty 0.5 = a typical item of its standards) or 0 when
the catalog has none. :meth:`NeuralModel.mastery` is P(correct) on such a typical item (feature 0)
aligned to that one standard.

Adding a model (e.g. the ``zpd`` slot): subclass :class:`NeuralModel`, set ``name``, ``defaults``
(hyper-parameters) and ``learning_rate``, and implement :meth:`build_net`, :meth:`init_state`,
:meth:`step`, :meth:`score` and optionally :meth:`prepare_candidates`; register the class in
``models.registry.MODEL_CLASSES`` and add a factory to ``tests/models/test_contract.py``.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar, NamedTuple

import numpy as np
import torch
from torch import nn

from models.base import CodeRows, Event, ItemBatch, ItemSpec, LearnerModel, LearnerState, Mastery

__all__ = [
    "Attempt",
    "EncodedAttempts",
    "NeuralModel",
    "RaschEmbedding",
    "SequenceBatch",
    "difficulty_features",
    "encode_attempts",
    "layer_norm",
    "neural_config",
    "rasch_numpy",
    "recency_features",
    "sigmoid",
    "softplus",
]

#: clip for logits of rates and catalog difficulties: keeps a 0/1 rate from exploding the feature
_LOGIT_CLIP = 4.0
#: learner folds used to cross-fit the difficulty feature of the training rows
_CROSS_FIT_FOLDS = 5


#: the state key of the starting-belief offsets (see :meth:`NeuralModel.state_with_prior_values`)
PRIOR_KEY = "prior"


def _prior_logit(p: float) -> float:
    p = min(max(float(p), 1e-4), 1 - 1e-4)
    return math.log(p / (1 - p))


def _prior_logits(p: np.ndarray) -> np.ndarray:
    """:func:`_prior_logit` of each value."""
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-4, 1 - 1e-4)
    return np.log(p / (1 - p))


def _logit(p: np.ndarray | float) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-6, 1 - 1e-6)
    return np.clip(np.log(p / (1 - p)), -_LOGIT_CLIP, _LOGIT_CLIP)


def neural_config(
    standards: Sequence[str], items: Sequence[str], hyper: Mapping[str, Any] | None = None, seed: int = 0
) -> dict[str, Any]:
    """A JSON-ready config: vocabularies, hyper-parameters (merged over the class defaults), seed."""
    return {"standards": list(standards), "items": list(items), "hyper": dict(hyper or {}), "seed": int(seed)}


# ---------------------------------------------------------------------------------------- data
class Attempt(NamedTuple):
    """One attempt encoded for the serving path."""

    item: int  # model item index, n_items = unseen
    standards: np.ndarray  # (k,) int64 known standard indices, unique
    difficulty: float  # difficulty feature (logits, relative to the standards' typical item)
    correct: float  # in [0, 1]


@dataclass(frozen=True)
class SequenceBatch:
    """Padded learner sequences as tensors; ``B`` learners, ``T`` = longest, ``K`` standards/attempt.

    Padding sits at the end of each row (``mask`` False); padded standards use index
    ``n_standards`` (a zero embedding row).
    """

    item: torch.Tensor  # (B, T) int64
    standards: torch.Tensor  # (B, T, K) int64
    correct: torch.Tensor  # (B, T) float32
    difficulty: torch.Tensor  # (B, T) float32
    std_success: torch.Tensor  # (B, T, K) float32 prior successes on each standard of the attempt
    std_failure: torch.Tensor  # (B, T, K) float32
    total_success: torch.Tensor  # (B, T) float32 prior successes on anything
    total_failure: torch.Tensor  # (B, T) float32
    std_streak: torch.Tensor  # (B, T, K) float32 current streak on each standard (see recency_features)
    std_gap: torch.Tensor  # (B, T, K) float32 attempts since the standard was last attempted, 0 = never
    std_run: torch.Tensor  # (B, T, K) float32 attempts on the standard immediately before this one
    total_streak: torch.Tensor  # (B, T) float32 current streak on anything
    mask: torch.Tensor  # (B, T) bool

    @property
    def n_tokens(self) -> int:
        return int(self.mask.sum())


@dataclass(frozen=True)
class EncodedAttempts:
    """Attempts of many learners encoded for one model: flat numpy arrays, learners contiguous.

    ``A`` attempts, ``L`` learners, ``K`` = most standards on one attempt (at least 1).
    """

    learner_offsets: np.ndarray  # (L+1,) int64
    item: np.ndarray  # (A,) int64
    standards: np.ndarray  # (A, K) int64, padded with n_standards
    correct: np.ndarray  # (A,) float32
    difficulty: np.ndarray  # (A,) float32
    std_success: np.ndarray  # (A, K) float32
    std_failure: np.ndarray  # (A, K) float32
    total_success: np.ndarray  # (A,) float32
    total_failure: np.ndarray  # (A,) float32
    std_streak: np.ndarray  # (A, K) float32
    std_gap: np.ndarray  # (A, K) float32
    std_run: np.ndarray  # (A, K) float32
    total_streak: np.ndarray  # (A,) float32
    pad_item: int  # = n_items of the model: the index of an unseen item
    pad_standard: int  # = n_standards of the model: the padding index

    @property
    def n_learners(self) -> int:
        return len(self.learner_offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.learner_offsets)

    def rows(self, learners: np.ndarray) -> np.ndarray:
        """Row indices of the given learners, concatenated in that order."""
        starts, lengths = self.learner_offsets[learners], self.lengths[learners]
        base = np.repeat(starts - np.concatenate(([0], np.cumsum(lengths)[:-1])), lengths)
        return base + np.arange(lengths.sum(), dtype=np.int64)

    def batch(self, learners: Sequence[int] | np.ndarray) -> SequenceBatch:
        """The given learners as one padded batch (row ``b`` = ``learners[b]``)."""
        learners = np.asarray(learners, dtype=np.int64)
        lengths = self.lengths[learners]
        t_max = max(int(lengths.max(initial=0)), 1)
        positions = np.arange(t_max)
        mask = positions[None, :] < lengths[:, None]  # (B, T)
        rows = np.where(mask, self.learner_offsets[learners][:, None] + positions[None, :], 0)
        standards = self.standards[rows]
        standards[~mask] = self.pad_standard

        def take(a: np.ndarray) -> torch.Tensor:
            out = a[rows]
            out[~mask] = 0
            return torch.from_numpy(out)

        return SequenceBatch(
            item=torch.from_numpy(np.where(mask, self.item[rows], self.pad_item)),
            standards=torch.from_numpy(standards),
            correct=take(self.correct),
            difficulty=take(self.difficulty),
            std_success=take(self.std_success),
            std_failure=take(self.std_failure),
            total_success=take(self.total_success),
            total_failure=take(self.total_failure),
            std_streak=take(self.std_streak),
            std_gap=take(self.std_gap),
            std_run=take(self.std_run),
            total_streak=take(self.total_streak),
            mask=torch.from_numpy(mask),
        )

    def with_difficulty(self, difficulty: np.ndarray) -> EncodedAttempts:
        return replace(self, difficulty=np.asarray(difficulty, dtype=np.float32))


def _group_order(learner_of_link: np.ndarray, key_of_link: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Links sorted by (learner, key, attempt order), and the sorted index where each one's group starts."""
    order = np.lexsort((np.arange(len(key_of_link)), key_of_link, learner_of_link))
    first = np.ones(len(order), dtype=bool)
    first[1:] = (learner_of_link[order][1:] != learner_of_link[order][:-1]) | (
        key_of_link[order][1:] != key_of_link[order][:-1]
    )
    return order, np.maximum.accumulate(np.where(first, np.arange(len(order)), 0))


def _prior_counts(learner_of_link: np.ndarray, key_of_link: np.ndarray, value: np.ndarray) -> np.ndarray:
    """For each link, the sum of ``value`` over earlier links with the same (learner, key).

    Links must be in attempt order within each learner (they are: built row by row).
    """
    if len(value) == 0:
        return np.zeros(0, dtype=np.float64)
    order, start_index = _group_order(learner_of_link, key_of_link)
    v = value[order].astype(np.float64)
    csum = np.cumsum(v) - v  # exclusive
    prior = csum - csum[start_index]
    out = np.empty_like(prior)
    out[order] = prior
    return out


def _since_last(flag: np.ndarray, start: np.ndarray) -> np.ndarray:
    """For sorted links: how many earlier links of the group come after its last ``flag`` link."""
    index = np.arange(len(flag))
    marks = np.where(flag, index + 1, 0)
    before = np.concatenate(([0], np.maximum.accumulate(marks)[:-1])) if len(flag) else marks
    return index - np.maximum(before, start)


def recency_features(
    learner_of_link: np.ndarray, key_of_link: np.ndarray, row_of_link: np.ndarray, correct_of_link: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per link (an attempt on a key, e.g. a standard), from the learner's earlier links on that key.

    * ``streak``: the number of most recent earlier links that were all successes (``correct >=
      0.5``), or minus the number that were all failures (0 for the first link);
    * ``gap``: ``row - row of the previous link`` (1 = the previous attempt; 0 = no earlier link);
    * ``run``: how many attempts immediately before this one (consecutive rows) were on the key.

    Links must be in attempt order within each learner, ``row_of_link`` increasing by 1 per attempt.

    >>> streak, gap, run = recency_features(np.zeros(5, int), np.array([0, 0, 1, 0, 0]),
    ...                                     np.arange(5), np.array([1., 1., 0., 0., 1.]))
    >>> streak.tolist(), gap.tolist(), run.tolist()
    ([0.0, 1.0, 0.0, 2.0, -1.0], [0.0, 1.0, 0.0, 2.0, 1.0], [0.0, 1.0, 0.0, 0.0, 1.0])
    """
    n = len(key_of_link)
    if n == 0:
        return np.zeros(0), np.zeros(0), np.zeros(0)
    order, start = _group_order(learner_of_link, key_of_link)
    row = np.asarray(row_of_link, dtype=np.int64)[order]
    win = np.asarray(correct_of_link, dtype=np.float64)[order] >= 0.5
    has_prev = np.arange(n) > start
    prev_row = np.concatenate(([0], row[:-1]))
    gap = np.where(has_prev, row - prev_row, 0)
    streak = np.where(np.concatenate(([False], win[:-1])), _since_last(~win, start), -_since_last(win, start))
    streak = np.where(has_prev, streak, 0)
    run = np.where(gap == 1, _since_last(gap != 1, start) + 1, 0)
    out = np.empty((3, n), dtype=np.float64)
    out[:, order] = np.stack([streak, gap, run]).astype(np.float64)
    return out[0], out[1], out[2]


def encode_attempts(
    learner_offsets: np.ndarray,
    item: np.ndarray,
    standard_offsets: np.ndarray,
    standard_indices: np.ndarray,
    correct: np.ndarray,
    difficulty: np.ndarray,
    n_items: int,
    n_standards: int,
) -> EncodedAttempts:
    """Pad standards and compute the prior-count features; indices must already be model indices
    (``item == n_items`` for unseen items; standard indices ``>= n_standards`` are dropped)."""
    n_attempts = len(item)
    learner = np.repeat(np.arange(len(learner_offsets) - 1), np.diff(learner_offsets))
    owner = np.repeat(np.arange(n_attempts), np.diff(standard_offsets))
    std = np.asarray(standard_indices, dtype=np.int64)
    keep = std < n_standards
    owner, std = owner[keep], std[keep]
    # drop repeated standards within one attempt
    if len(std):
        pairs = np.unique(owner * (n_standards + 1) + std)
        owner, std = pairs // (n_standards + 1), pairs % (n_standards + 1)
    per_attempt = np.bincount(owner, minlength=n_attempts) if n_attempts else np.zeros(0, dtype=np.int64)
    width = max(int(per_attempt.max(initial=0)), 1)
    first = np.concatenate(([0], np.cumsum(per_attempt)[:-1])) if n_attempts else np.zeros(0, dtype=np.int64)
    slot = np.arange(len(std)) - first[owner] if len(std) else np.zeros(0, dtype=np.int64)
    c = np.clip(np.asarray(correct, dtype=np.float64), 0.0, 1.0)
    success = _prior_counts(learner[owner], std, c[owner])
    failure = _prior_counts(learner[owner], std, 1.0 - c[owner])
    standards = np.full((n_attempts, width), n_standards, dtype=np.int64)
    std_success = np.zeros((n_attempts, width), dtype=np.float32)
    std_failure = np.zeros((n_attempts, width), dtype=np.float32)
    standards[owner, slot] = std
    std_success[owner, slot] = success
    std_failure[owner, slot] = failure
    total_success = _prior_counts(learner, np.zeros(n_attempts, dtype=np.int64), c)
    total_failure = _prior_counts(learner, np.zeros(n_attempts, dtype=np.int64), 1.0 - c)
    streak, gap, run = recency_features(learner[owner], std, owner, c[owner])
    std_streak = np.zeros((n_attempts, width), dtype=np.float32)
    std_gap = np.zeros((n_attempts, width), dtype=np.float32)
    std_run = np.zeros((n_attempts, width), dtype=np.float32)
    std_streak[owner, slot], std_gap[owner, slot], std_run[owner, slot] = streak, gap, run
    rows = np.arange(n_attempts)
    total_streak = recency_features(learner, np.zeros(n_attempts, dtype=np.int64), rows, c)[0]
    return EncodedAttempts(
        learner_offsets=np.asarray(learner_offsets, dtype=np.int64),
        item=np.asarray(item, dtype=np.int64),
        standards=standards,
        correct=c.astype(np.float32),
        difficulty=np.asarray(difficulty, dtype=np.float32),
        std_success=std_success,
        std_failure=std_failure,
        total_success=total_success.astype(np.float32),
        total_failure=total_failure.astype(np.float32),
        std_streak=std_streak,
        std_gap=std_gap,
        std_run=std_run,
        total_streak=total_streak.astype(np.float32),
        pad_item=n_items,
        pad_standard=n_standards,
    )


def difficulty_features(
    item: np.ndarray,
    standards: np.ndarray,
    correct: np.ndarray,
    n_items: int,
    n_standards: int,
    prior: float = 10.0,
    rows: np.ndarray | None = None,
) -> np.ndarray:
    """Per-item difficulty feature (see the module docstring) from the attempts in ``rows``.

    Parameters
    ----------
    item : (A,) model item indices; ``standards`` : (A, K) padded with ``n_standards``.
    correct : (A,) responses in [0, 1].
    prior : pseudo-attempts pulling an item's error rate toward its standards' rate.
    rows : which attempts to count (default all).

    Returns
    -------
    numpy.ndarray
        ``(n_items,)`` float32; 0 for items without attempts in ``rows``.

    Examples
    --------
    >>> item = np.array([0, 0, 1, 1]); stds = np.array([[0], [0], [0], [0]])
    >>> f = difficulty_features(item, stds, np.array([0., 0., 1., 1.]), 2, 1, prior=0.0)
    >>> bool(f[0] > 0 > f[1])   # item 0 always failed: harder than its standard's typical item
    True
    """
    rows = np.arange(len(item)) if rows is None else rows
    it, st, err = item[rows], standards[rows], 1.0 - np.clip(correct[rows], 0, 1)
    real = st < n_standards
    global_err = float(err.mean()) if len(err) else 0.5
    # error rate of each standard (attempt-weighted), smoothed toward the global rate
    std_n = np.bincount(st[real], minlength=n_standards + 1)[:n_standards]
    std_f = np.bincount(st[real], weights=np.broadcast_to(err[:, None], st.shape)[real], minlength=n_standards + 1)[
        :n_standards
    ]
    std_rate = (std_f + prior * global_err) / np.maximum(std_n + prior, 1e-9)
    std_logit = _logit(np.where(std_n + prior > 0, std_rate, global_err))
    # each attempt's "typical item" logit: mean over its standards (global rate when it has none)
    padded = np.append(std_logit, 0.0)
    k = real.sum(axis=1)
    attempt_logit = np.where(k > 0, padded[st].sum(axis=1) / np.maximum(k, 1), float(_logit(global_err)))
    seen = it < n_items
    n_i = np.bincount(it[seen], minlength=n_items)[:n_items].astype(np.float64)
    f_i = np.bincount(it[seen], weights=err[seen], minlength=n_items)[:n_items]
    base = np.bincount(it[seen], weights=attempt_logit[seen], minlength=n_items)[:n_items] / np.maximum(n_i, 1)
    rate = (f_i + prior / (1 + np.exp(-base))) / np.maximum(n_i + prior, 1e-9)
    return np.where(n_i > 0, _logit(rate) - base, 0.0).astype(np.float32)


# ---------------------------------------------------------------------------------------- nets
class RaschEmbedding(nn.Module):
    """AKT's Rasch item embedding over multi-standard attempts.

    ``mu = difficulty feature (+ learned item residual if enabled)`` and ``q = sum_s S[s] + mu * sum_s V[s]``
    (standard embedding plus difficulty times a per-standard variation vector).
    """

    def __init__(self, n_items: int, n_standards: int, dim: int, item_residual: bool):
        super().__init__()
        self.standard = nn.Embedding(n_standards + 1, dim, padding_idx=n_standards)
        self.variation = nn.Embedding(n_standards + 1, dim, padding_idx=n_standards)
        self.residual = nn.Embedding(n_items + 1, 1, padding_idx=n_items) if item_residual else None
        nn.init.normal_(self.standard.weight, std=0.3)
        nn.init.normal_(self.variation.weight, std=0.05)
        with torch.no_grad():
            self.standard.weight[n_standards].zero_()
            self.variation.weight[n_standards].zero_()
            if self.residual is not None:
                self.residual.weight.zero_()

    def forward(self, item: torch.Tensor, standards: torch.Tensor, difficulty: torch.Tensor):
        mu = difficulty if self.residual is None else difficulty + self.residual(item).squeeze(-1)  # (B, T)
        q = self.standard(standards).sum(-2) + mu.unsqueeze(-1) * self.variation(standards).sum(-2)  # (B, T, E)
        return q, mu


def rasch_numpy(
    w: Mapping[str, np.ndarray], prefix: str, item: np.ndarray, standards: np.ndarray, difficulty: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """:class:`RaschEmbedding` in numpy: ``item`` (...,), ``standards`` (..., K) -> q (..., E), mu (...)."""
    mu = np.asarray(difficulty, dtype=np.float32)
    residual = w.get(f"{prefix}.residual.weight")
    if residual is not None:
        mu = mu + residual[item, 0]
    q = w[f"{prefix}.standard.weight"][standards].sum(-2) + mu[..., None] * w[f"{prefix}.variation.weight"][
        standards
    ].sum(-2)
    return q.astype(np.float32), mu.astype(np.float32)


# ---------------------------------------------------------------------------------------- model
class NeuralModel(LearnerModel):
    """Base of the trainable models (see the module docstring for the two paths and the contract).

    Config keys: ``standards``, ``items`` (the item vocabulary of training), ``hyper`` (merged over
    ``defaults``), ``seed`` (initial weights). Weights: the net's ``state_dict`` as ``net.<name>``
    arrays plus ``item_difficulty``.
    """

    defaults: ClassVar[Mapping[str, Any]] = {}
    learning_rate: ClassVar[float] = 1e-3
    #: hyper-parameters every neural model understands
    #: ``item_residual`` adds a learned per-item difficulty on top of the feature; off by default:
    #: on ASSIST2009 fold 1 it lowered test AUC (logistic 0.762 -> 0.752, dkt 0.778 -> 0.776) by
    #: overfitting rare items, while the cross-fitted feature already carries item difficulty.
    common_defaults: ClassVar[Mapping[str, Any]] = {"difficulty_prior": 10.0, "item_residual": False}

    def __init__(self, config: Mapping[str, Any]):
        super().__init__(config)
        self._code_rows = CodeRows(self.standard_index)
        self.items: list[str] = list(self.config.get("items", []))
        self.item_index = {item: i for i, item in enumerate(self.items)}
        if len(self.item_index) != len(self.items):
            raise ValueError("the item vocabulary has repeated ids")
        known = {**self.common_defaults, **self.defaults}
        hyper = dict(self.config.get("hyper", {}))
        unknown = set(hyper) - set(known)
        if unknown:
            raise ValueError(
                f"unknown {self.name} hyper-parameter(s) {', '.join(sorted(unknown))}; expected {', '.join(known)}"
            )
        self.hyper: dict[str, Any] = {**known, **hyper}
        self.config.update(items=self.items, hyper=self.hyper, seed=int(self.config.get("seed", 0)))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.config["seed"])
            self.net = self.build_net()
        self.net.eval()
        self.item_difficulty = np.zeros(len(self.items), dtype=np.float32)
        self._data_version = 0
        self._serving: dict[str, np.ndarray] | None = None
        self._serving_key: tuple[int, int] | None = None
        self._serving_version = 0
        self._tensors: tuple[nn.Module, tuple[torch.Tensor, ...]] | None = None
        self._typical: ItemBatch | None = None
        self._base: tuple[int, np.ndarray] | None = None

    @property
    def n_items(self) -> int:
        return len(self.items)

    @property
    def n_standards(self) -> int:
        return len(self.standards)

    # -- hooks ---------------------------------------------------------------------------------
    @abstractmethod
    def build_net(self) -> nn.Module:
        """The module; ``net(batch: SequenceBatch) -> logits (B, T)`` from attempts before each one."""

    @abstractmethod
    def step(self, state: LearnerState, w: Mapping[str, np.ndarray], attempt: Attempt) -> LearnerState:
        """A new state with ``attempt`` folded in (numpy, O(1) in the history length)."""

    @abstractmethod
    def score(self, state: LearnerState, w: Mapping[str, np.ndarray], cand: Mapping[str, np.ndarray]) -> np.ndarray:
        """Logits of the encoded candidates ``cand`` (see :meth:`encode_items`) from ``state``."""

    def prepare_candidates(self, w: Mapping[str, np.ndarray], cand: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """State-independent work on candidates, done once in :meth:`encode_items` (default none)."""
        return cand

    def derive(self, w: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Add derived serving arrays (e.g. softplus of raw parameters) to the numpy weights."""
        return w

    # -- data ----------------------------------------------------------------------------------
    @classmethod
    def for_table(cls, table: Any, hyper: Mapping[str, Any] | None = None, seed: int = 0) -> NeuralModel:
        """A fresh model over the vocabularies of an InteractionTable, with its item difficulties."""
        model = cls(neural_config(table.standard_ids, table.item_ids, hyper, seed))
        encoded = model.encode_table(table, cross_fit=False)
        model.set_item_difficulty(
            difficulty_features(
                encoded.item,
                encoded.standards,
                encoded.correct,
                model.n_items,
                model.n_standards,
                float(model.hyper["difficulty_prior"]),
            )
        )
        return model

    def set_item_difficulty(self, values: np.ndarray) -> None:
        values = np.asarray(values, dtype=np.float32)
        if values.shape != (self.n_items,):
            raise ValueError(f"item_difficulty must have shape ({self.n_items},), got {values.shape}")
        self.item_difficulty = values.copy()
        self._data_version += 1

    def _lookup(self, own_ids: Sequence[str], mine: Mapping[str, int], missing: int) -> np.ndarray:
        return np.array([mine.get(i, missing) for i in own_ids], dtype=np.int64)

    def encode_table(self, table: Any, cross_fit: bool = False) -> EncodedAttempts:
        """Encode an InteractionTable (any vocabularies: ids are matched by name).

        With ``cross_fit`` (the training table) each row's difficulty feature is estimated from the
        other learner folds; otherwise the stored ``item_difficulty`` is used (0 for unseen items).
        """
        item_map = self._lookup(table.item_ids, self.item_index, self.n_items)
        std_map = self._lookup(table.standard_ids, self.standard_index, self.n_standards)
        item = item_map[np.asarray(table.item, dtype=np.int64)] if len(table.item) else np.zeros(0, dtype=np.int64)
        stds = (
            std_map[np.asarray(table.standard_indices, dtype=np.int64)]
            if len(table.standard_indices)
            else np.zeros(0, dtype=np.int64)
        )
        encoded = encode_attempts(
            table.learner_offsets,
            item,
            table.standard_offsets,
            stds,
            table.correct,
            np.zeros(len(item), dtype=np.float32),
            self.n_items,
            self.n_standards,
        )
        if cross_fit:
            difficulty = self._cross_fitted_difficulty(encoded)
        else:
            difficulty = np.append(self.item_difficulty, np.float32(0.0))[encoded.item]
        return encoded.with_difficulty(difficulty)

    def _cross_fitted_difficulty(self, encoded: EncodedAttempts) -> np.ndarray:
        fold_of_learner = np.random.default_rng(self.config["seed"]).permutation(encoded.n_learners) % _CROSS_FIT_FOLDS
        fold = np.repeat(fold_of_learner, encoded.lengths)
        out = np.zeros(len(encoded.item), dtype=np.float32)
        prior = float(self.hyper["difficulty_prior"])
        for f in range(_CROSS_FIT_FOLDS):
            inside = np.flatnonzero(fold == f)
            if not len(inside):
                continue
            feats = difficulty_features(
                encoded.item,
                encoded.standards,
                encoded.correct,
                self.n_items,
                self.n_standards,
                prior,
                rows=np.flatnonzero(fold != f),
            )
            out[inside] = np.append(feats, np.float32(0.0))[encoded.item[inside]]
        return out

    def _encode_events(self, events: Sequence[Event]) -> EncodedAttempts:
        item = np.array([self.item_index.get(e.item_id, self.n_items) for e in events], dtype=np.int64)
        lists = [self.standard_indices(e.standards) for e in events]
        offsets = np.concatenate(([0], np.cumsum([len(s) for s in lists]))).astype(np.int64)
        flat = np.array([s for ss in lists for s in ss], dtype=np.int64)
        correct = np.array([e.correct for e in events], dtype=np.float64)
        difficulty = np.append(self.item_difficulty, np.float32(0.0))[item]
        return encode_attempts(
            np.array([0, len(events)]), item, offsets, flat, correct, difficulty, self.n_items, self.n_standards
        )

    # -- serving weights -----------------------------------------------------------------------
    def serving_weights(self) -> dict[str, np.ndarray]:
        """Float32 numpy copy of the weights, rebuilt when a parameter or the difficulties change."""
        if self._tensors is None or self._tensors[0] is not self.net:  # the module's tensors, listed once
            self._tensors = (self.net, tuple(self.net.state_dict(keep_vars=True).values()))
        key = (self._data_version, sum(t._version for t in self._tensors[1]))
        if self._serving is None or key != self._serving_key:
            w = {k: v.detach().cpu().numpy().astype(np.float32) for k, v in self.net.state_dict().items()}
            w["item_difficulty"] = self.item_difficulty
            self._serving = self.derive(w)
            self._serving_key = key
            self._serving_version += 1
        return self._serving

    # -- LearnerModel ----------------------------------------------------------------------------
    def update(self, state: LearnerState, event: Event) -> LearnerState:
        w = self.serving_weights()
        item = self.item_index.get(event.item_id, self.n_items)
        stds = np.array(sorted(set(self.standard_indices(event.standards))), dtype=np.int64)
        difficulty = float(self.item_difficulty[item]) if item < self.n_items else 0.0
        correct = float(np.clip(event.correct, 0.0, 1.0))
        new = self.step({k: v for k, v in state.items() if k != PRIOR_KEY}, w, Attempt(item, stds, difficulty, correct))
        if PRIOR_KEY in state:
            new[PRIOR_KEY] = state[PRIOR_KEY]
        return new

    def state_with_prior_values(
        self, codes: Sequence[str], values: np.ndarray, state: LearnerState | None = None
    ) -> LearnerState:
        """Priors become per-standard logit offsets kept in the state (``prior``): the offset moves
        the model's starting estimate of a standard to its prior, and stays as evidence arrives
        (evidence adds to a prior in logit space, as a Bayesian update does). A candidate item is
        shifted by the mean offset of its standards."""
        state = self.init_state() if state is None else dict(state)
        offsets = state.get(PRIOR_KEY)
        offsets = np.zeros(self.n_standards + 1, dtype=np.float32) if offsets is None else offsets.copy()
        src, rows, unique = self._code_rows(codes)
        given = values[src]
        ok = ~np.isnan(given)
        rows, given = rows[ok], given[ok]
        if not unique:  # a code given twice: its last value
            last = dict(zip(rows.tolist(), given.tolist()))
            rows = np.fromiter(last.keys(), dtype=np.int64, count=len(last))
            given = np.fromiter(last.values(), dtype=np.float64, count=len(last))
        if len(rows):
            offsets[rows] = _prior_logits(given) - _prior_logits(self._base_mastery()[rows])
        state[PRIOR_KEY] = offsets
        return state

    def _base_mastery(self) -> np.ndarray:
        """Mastery of every standard in the initial state (what a prior offsets), per weights version."""
        self.serving_weights()
        if self._base is None or self._base[0] != self._serving_version:
            self._base = (self._serving_version, self._predict_logits(self.init_state(), self._typical_items()))
        return 1.0 / (1.0 + np.exp(-self._base[1]))

    def item_key(self, item: ItemSpec) -> Hashable:
        """What :meth:`encode_items` reads: an item seen in training is its own; others are their
        standards and difficulty."""
        known = self.item_index.get(item.item_id)
        standards = tuple(sorted(set(self.standard_indices(item.standards))))
        return known, standards, None if known is not None else item.difficulty

    def encode_items(self, items: Sequence[ItemSpec]) -> ItemBatch:
        """Candidates: item index, padded standards and difficulty feature, plus model-specific
        precomputation. Items seen in training use their learned difficulty; others use
        ``logit(item.difficulty)`` (0.5 = typical) or 0."""
        n = len(items)
        item = np.array([self.item_index.get(i.item_id, self.n_items) for i in items], dtype=np.int64)
        lists = [sorted(set(self.standard_indices(i.standards))) for i in items]
        width = max((len(s) for s in lists), default=1) or 1
        standards = np.full((n, width), self.n_standards, dtype=np.int64)
        for r, s in enumerate(lists):
            standards[r, : len(s)] = s
        catalog = np.array([0.5 if i.difficulty is None else i.difficulty for i in items], dtype=np.float64)
        stored = np.append(self.item_difficulty, np.float32(0.0))[item]
        difficulty = np.where(item < self.n_items, stored, _logit(catalog) if n else catalog).astype(np.float32)
        return ItemBatch(
            id(self),
            tuple(i.item_id for i in items),
            self._prepare({"item": item, "standards": standards, "difficulty": difficulty}),
        )

    def _prepare(self, base: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        w = self.serving_weights()
        cand = self.prepare_candidates(w, dict(base))
        cand["weights_version"] = np.array(self._serving_version)
        return cand

    def predict(self, state: LearnerState, items: ItemBatch) -> np.ndarray:
        if items.model_id != id(self):
            raise ValueError("these items were encoded by another model; call encode_items on this one")
        logits = self._predict_logits(state, items)
        offsets = state.get(PRIOR_KEY)
        if offsets is not None:  # the starting belief (state_with_prior_values): mean offset of the item's standards
            standards = items.arrays["standards"]
            real = np.maximum((standards < self.n_standards).sum(axis=1), 1)
            logits = logits + offsets[standards].sum(axis=1) / real
        return 1.0 / (1.0 + np.exp(-logits))

    #: the axis along which each encoded candidate array runs over items (0 unless named here)
    item_axis: ClassVar[Mapping[str, int]] = {}

    def take(self, items: ItemBatch, positions: np.ndarray) -> ItemBatch:
        axes = self.item_axis
        return ItemBatch(
            items.model_id,
            tuple(map(items.item_ids.__getitem__, positions.tolist())),
            {
                key: value if value.ndim == 0 else np.take(value, positions, axis=axes.get(key, 0))
                for key, value in items.arrays.items()
            },
        )

    def _predict_logits(self, state: LearnerState, items: ItemBatch) -> np.ndarray:
        w = self.serving_weights()
        cand = items.arrays
        if int(cand["weights_version"]) != self._serving_version:  # weights changed since encoding
            cand = self._prepare({k: cand[k] for k in ("item", "standards", "difficulty")})
        model_state = {k: v for k, v in state.items() if k != PRIOR_KEY} if PRIOR_KEY in state else state
        return np.asarray(self.score(model_state, w, cand), dtype=np.float64)

    def _typical_items(self) -> ItemBatch:
        if self._typical is None:
            self._typical = self.encode_items([ItemSpec("\x00typical", (code,), None) for code in self.standards])
        return self._typical

    def mastery(self, state: LearnerState) -> dict[str, float]:
        """P(correct) on a typical item of each standard: an item unseen in training, aligned to that
        standard only, with difficulty feature 0 (the average difficulty of the standard's items)."""
        return Mastery(self.standards, self.predict(state, self._typical_items()))

    def predict_sequence(self, events: Sequence[Event], state: LearnerState | None = None) -> np.ndarray:
        """The batched forward over one learner (from the initial state; otherwise step by step)."""
        if state is not None or not events:
            return super().predict_sequence(events, state)
        batch = self._encode_events(events).batch([0])
        return self.predict_batch(batch)[0].astype(np.float64)

    def predict_batch(self, batch: SequenceBatch) -> np.ndarray:
        """P(correct) (B, T) from the batched forward, in eval mode without gradients."""
        was_training = self.net.training
        self.net.eval()
        try:
            with torch.no_grad():
                return torch.sigmoid(self.net(batch)).numpy().astype(np.float64)
        finally:
            self.net.train(was_training)

    # -- persistence -----------------------------------------------------------------------------
    def weights(self) -> dict[str, np.ndarray]:
        arrays = {f"net.{k}": v.detach().cpu().numpy().copy() for k, v in self.net.state_dict().items()}
        arrays["item_difficulty"] = self.item_difficulty.copy()
        return arrays

    def load_weights(self, arrays: Mapping[str, np.ndarray]) -> None:
        own = self.net.state_dict()
        expected = {f"net.{k}" for k in own} | {"item_difficulty"}
        missing, extra = expected - set(arrays), set(arrays) - expected
        if missing or extra:
            raise ValueError(
                f"weights do not match a {self.name} model: missing {sorted(missing)}, unexpected {sorted(extra)}"
            )
        loaded = {}
        for key, tensor in own.items():
            value = np.asarray(arrays[f"net.{key}"])
            if tuple(value.shape) != tuple(tensor.shape):
                raise ValueError(f"weight net.{key} has shape {value.shape}, expected {tuple(tensor.shape)}")
            loaded[key] = torch.from_numpy(
                value.astype(np.float32 if tensor.is_floating_point() else value.dtype, copy=True)
            )
        self.net.load_state_dict(loaded)
        self.set_item_difficulty(arrays["item_difficulty"])


def softplus(x: np.ndarray) -> np.ndarray:
    """Numerically stable ``log(1 + exp(x))`` matching ``torch.nn.functional.softplus``."""
    x = np.asarray(x, dtype=np.float32)
    return np.where(x > 20, x, np.log1p(np.exp(np.minimum(x, 20)))).astype(np.float32)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias
