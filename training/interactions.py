"""The canonical interaction table: one row per attempt, columnar, grouped by learner.

Every loader in :mod:`training.loaders` produces an :class:`InteractionTable`; models and the
training loop read only this. Attempts of one learner are contiguous and in time order (file
order when there are no timestamps), and each attempt is predicted once, from the attempts
before it: rows that were copies of one answer (a multi-skill expansion) were already merged by
the loader, while a re-attempt of the same item is an attempt of its own.

Layout (``A`` attempts, ``L`` learners, ``S`` standard links)::

    learner            int32   (A,)   index into learner_ids, non-decreasing
    item               int32   (A,)   index into item_ids
    standard_offsets   int64   (A+1,) CSR: standards of attempt a are
    standard_indices   int32   (S,)       standard_indices[standard_offsets[a]:standard_offsets[a+1]]
    correct            float32 (A,)   0/1, or a score in [0, 1]
    timestamp          float64 (A,)   epoch seconds, NaN when unknown
    learner_offsets    int64   (L+1,) attempts of learner l are rows learner_offsets[l]:learner_offsets[l+1]
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

__all__ = ["InteractionTable", "LearnerSequence", "concat_tables"]

_ARRAY_FIELDS = (
    "learner_offsets",
    "learner",
    "item",
    "standard_offsets",
    "standard_indices",
    "correct",
    "timestamp",
)
#: bump when the meaning of the hashed content changes, so old fingerprints stop matching
_FINGERPRINT_VERSION = b"zpd-interactions/1"


@dataclass(frozen=True)
class LearnerSequence:
    """The attempts of one learner, as views into the table's arrays.

    ``standard_offsets`` is rebased to start at 0, so the standards of the learner's ``t``-th
    attempt are ``standard_indices[standard_offsets[t]:standard_offsets[t + 1]]``.
    """

    index: int
    learner_id: str
    item: np.ndarray  # (T,) int32
    correct: np.ndarray  # (T,) float32
    timestamp: np.ndarray  # (T,) float64
    standard_offsets: np.ndarray  # (T+1,) int64
    standard_indices: np.ndarray  # (S_l,) int32

    def __len__(self) -> int:
        return len(self.item)


def _csr_take(offsets: np.ndarray, indices: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``rows`` of a CSR structure, in that order, as new (offsets, indices)."""
    lengths = (offsets[1:] - offsets[:-1])[rows]
    new_offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(lengths, out=new_offsets[1:])
    # position k of the output comes from offsets[row] + (k - new_offsets[row's slot])
    gather = np.repeat(offsets[:-1][rows] - new_offsets[:-1], lengths) + np.arange(new_offsets[-1])
    return new_offsets, indices[gather]


def _ranges(offsets: np.ndarray, blocks: np.ndarray) -> np.ndarray:
    """Concatenated ``arange(offsets[b], offsets[b+1])`` for each block ``b`` in ``blocks``."""
    starts = offsets[:-1][blocks]
    lengths = offsets[1:][blocks] - starts
    base = np.zeros(len(blocks), dtype=np.int64)
    np.cumsum(lengths[:-1], out=base[1:])
    return np.repeat(starts - base, lengths) + np.arange(lengths.sum(), dtype=np.int64)


def _used_ranks(vocabulary: tuple[str, ...], codes: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Sorted ids that ``codes`` use, and ``rank[code]`` = position of the code's id among them.

    Hashing ranks of used ids makes the fingerprint independent of vocabulary order and of
    vocabulary entries no attempt refers to (e.g. after :meth:`InteractionTable.with_vocabularies`).
    """
    used = sorted(vocabulary[c] for c in np.unique(codes))
    position = {v: i for i, v in enumerate(used)}
    rank = np.full(len(vocabulary), -1, dtype=np.int64)
    for code in np.unique(codes):
        rank[code] = position[vocabulary[code]]
    return used, rank


def _hash_ranking(ids: Sequence[str], seed: int) -> np.ndarray:
    """Learner indices ordered by sha256(seed, id): a shuffle that depends only on ids and seed.

    Unlike ``numpy.random`` it is stable across numpy versions and file orders, and a learner's
    relative position does not change when other learners are added.
    """
    keys = [hashlib.sha256(f"{seed}\x1f{lid}".encode()).digest()[:8] for lid in ids]
    return np.array(sorted(range(len(ids)), key=lambda i: (keys[i], ids[i])), dtype=np.int64)


@dataclass(frozen=True, eq=False)
class InteractionTable:
    """Attempts of many learners in columnar numpy arrays (see the module docstring for shapes).

    Build one with a loader (:func:`training.loaders.load_interactions`); the constructor only
    checks that the arrays are consistent.

    Examples
    --------
    >>> from training.loaders import load_interactions
    >>> table, report = load_interactions("data/kt_sample/assist2009_pid/assist2009_pid_train1_head150.csv", "akt")
    >>> table.n_learners, table.n_attempts
    (150, 9224)
    >>> first = next(table.iter_learners())
    >>> first.learner_id, len(first)
    ('82295', 7)
    """

    learner_ids: tuple[str, ...]
    item_ids: tuple[str, ...]
    standard_ids: tuple[str, ...]
    learner_offsets: np.ndarray  # (L+1,) int64
    learner: np.ndarray  # (A,) int32
    item: np.ndarray  # (A,) int32
    standard_offsets: np.ndarray  # (A+1,) int64
    standard_indices: np.ndarray  # (S,) int32
    correct: np.ndarray  # (A,) float32
    timestamp: np.ndarray  # (A,) float64, NaN = unknown

    def __post_init__(self) -> None:
        a, n_l = len(self.item), len(self.learner_ids)
        problems = []
        if self.learner_offsets.shape != (n_l + 1,) or self.learner_offsets[0] != 0 or self.learner_offsets[-1] != a:
            problems.append("learner_offsets must have n_learners + 1 entries from 0 to n_attempts")
        if self.standard_offsets.shape != (a + 1,) or self.standard_offsets[-1] != len(self.standard_indices):
            problems.append("standard_offsets must have n_attempts + 1 entries ending at len(standard_indices)")
        for name in ("learner", "correct", "timestamp"):
            if len(getattr(self, name)) != a:
                problems.append(f"{name} must have one entry per attempt ({a})")
        if a and (self.item.max() >= len(self.item_ids) or self.item.min() < 0):
            problems.append("item indices must be < len(item_ids)")
        if len(self.standard_indices) and self.standard_indices.max() >= len(self.standard_ids):
            problems.append("standard indices must be < len(standard_ids)")
        if problems:
            raise ValueError("inconsistent InteractionTable: " + "; ".join(problems))
        for name in _ARRAY_FIELDS:
            getattr(self, name).flags.writeable = False  # tables are shared between folds: keep them immutable

    # ---- sizes -------------------------------------------------------------------------------

    @property
    def n_attempts(self) -> int:
        """Number of attempts (rows)."""
        return len(self.item)

    @property
    def n_learners(self) -> int:
        """Number of learners."""
        return len(self.learner_ids)

    @property
    def n_items(self) -> int:
        """Size of the item vocabulary."""
        return len(self.item_ids)

    @property
    def n_standards(self) -> int:
        """Size of the standard vocabulary."""
        return len(self.standard_ids)

    def __len__(self) -> int:
        return self.n_attempts

    def __repr__(self) -> str:
        return (
            f"InteractionTable({self.n_learners} learners, {self.n_attempts} attempts, "
            f"{self.n_items} items, {self.n_standards} standards)"
        )

    # ---- per-learner access ------------------------------------------------------------------

    def learner_sequence(self, index: int) -> LearnerSequence:
        """The attempts of learner ``index`` (views, no copies except the rebased offsets)."""
        if not 0 <= index < self.n_learners:
            raise IndexError(f"learner index {index} out of range for {self.n_learners} learners")
        lo, hi = int(self.learner_offsets[index]), int(self.learner_offsets[index + 1])
        s_lo = self.standard_offsets[lo]
        return LearnerSequence(
            index=index,
            learner_id=self.learner_ids[index],
            item=self.item[lo:hi],
            correct=self.correct[lo:hi],
            timestamp=self.timestamp[lo:hi],
            standard_offsets=self.standard_offsets[lo : hi + 1] - s_lo,
            standard_indices=self.standard_indices[s_lo : self.standard_offsets[hi]],
        )

    def iter_learners(self) -> Iterator[LearnerSequence]:
        """Yield every learner's :class:`LearnerSequence` in table order."""
        for index in range(self.n_learners):
            yield self.learner_sequence(index)

    def sequence_lengths(self) -> np.ndarray:
        """Attempts per learner, shape ``(n_learners,)``."""
        return np.diff(self.learner_offsets)

    def standards_of(self, attempt: int) -> np.ndarray:
        """Standard indices of one attempt."""
        return self.standard_indices[self.standard_offsets[attempt] : self.standard_offsets[attempt + 1]]

    # ---- splits ------------------------------------------------------------------------------

    def subset(self, learner_indices: Sequence[int] | np.ndarray) -> InteractionTable:
        """A table with only the given learners, in the given order.

        Vocabularies are kept unchanged so item and standard indices mean the same in every
        split of one table (a model trained on one fold can score another).

        Raises
        ------
        ValueError
            If an index repeats or is out of range.
        """
        idx = np.asarray(learner_indices, dtype=np.int64).reshape(-1)
        if len(idx) and (idx.min() < 0 or idx.max() >= self.n_learners):
            raise ValueError(f"learner indices must be in [0, {self.n_learners}), got {idx.min()}..{idx.max()}")
        if len(np.unique(idx)) != len(idx):
            raise ValueError("learner indices must not repeat (a learner would be predicted twice)")
        rows = _ranges(self.learner_offsets, idx)
        lengths = self.sequence_lengths()[idx]
        learner_offsets = np.zeros(len(idx) + 1, dtype=np.int64)
        np.cumsum(lengths, out=learner_offsets[1:])
        std_offsets, std_indices = _csr_take(self.standard_offsets, self.standard_indices, rows)
        return InteractionTable(
            learner_ids=tuple(self.learner_ids[i] for i in idx),
            item_ids=self.item_ids,
            standard_ids=self.standard_ids,
            learner_offsets=learner_offsets,
            learner=np.repeat(np.arange(len(idx), dtype=np.int32), lengths),
            item=self.item[rows],
            standard_offsets=std_offsets,
            standard_indices=std_indices,
            correct=self.correct[rows],
            timestamp=self.timestamp[rows],
        )

    def learner_folds(self, k: int, seed: int = 0) -> list[np.ndarray]:
        """Split learners into ``k`` disjoint folds that together cover every learner.

        The assignment depends only on the learner ids and ``seed`` (a hash ranking dealt
        round-robin), not on file order or the numpy version, so it is reproducible anywhere.

        Returns
        -------
        list of numpy.ndarray
            ``k`` sorted arrays of learner indices; sizes differ by at most one.

        Examples
        --------
        >>> folds = table.learner_folds(5, seed=0)          # doctest: +SKIP
        >>> test = table.subset(folds[0])                    # doctest: +SKIP
        """
        if not 2 <= k <= self.n_learners:
            raise ValueError(f"k must be between 2 and the number of learners ({self.n_learners}), got {k}")
        ranking = _hash_ranking(self.learner_ids, seed)
        return [np.sort(ranking[f::k]) for f in range(k)]

    def split_learners(self, valid_fraction: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Deterministic learner-level (train, valid) split; see :meth:`learner_folds`.

        Returns
        -------
        (numpy.ndarray, numpy.ndarray)
            Sorted learner indices of the train and the valid part; ``valid`` has
            ``round(valid_fraction * n_learners)`` learners.
        """
        if not 0.0 < valid_fraction < 1.0:
            raise ValueError(f"valid_fraction must be in (0, 1), got {valid_fraction}")
        ranking = _hash_ranking(self.learner_ids, seed)
        n_valid = int(round(valid_fraction * self.n_learners))
        return np.sort(ranking[n_valid:]), np.sort(ranking[:n_valid])

    # ---- vocabularies ------------------------------------------------------------------------

    def with_vocabularies(
        self,
        item_ids: Sequence[str] | None = None,
        standard_ids: Sequence[str] | None = None,
        unknown: Literal["extend", "error"] = "extend",
    ) -> InteractionTable:
        """Re-index items and standards against given vocabularies (e.g. the training table's).

        Use this when train and test come from different files: each load builds its own
        vocabulary, so index 5 in one table need not be index 5 in the other.

        Parameters
        ----------
        item_ids, standard_ids : sequence of str, optional
            Target vocabularies; ``None`` keeps the table's own.
        unknown : {"extend", "error"}
            Ids missing from a target vocabulary are appended to it (``"extend"``) or raise
            ``KeyError`` (``"error"``).
        """
        item_vocab, item_map = self._remap(self.item_ids, item_ids, unknown, "item")
        std_vocab, std_map = self._remap(self.standard_ids, standard_ids, unknown, "standard")
        return InteractionTable(
            learner_ids=self.learner_ids,
            item_ids=item_vocab,
            standard_ids=std_vocab,
            learner_offsets=self.learner_offsets,
            learner=self.learner,
            item=item_map[self.item].astype(np.int32),
            standard_offsets=self.standard_offsets,
            standard_indices=std_map[self.standard_indices].astype(np.int32),
            correct=self.correct,
            timestamp=self.timestamp,
        )

    @staticmethod
    def _remap(
        own: tuple[str, ...], target: Sequence[str] | None, unknown: str, kind: str
    ) -> tuple[tuple[str, ...], np.ndarray]:
        if target is None:
            return own, np.arange(len(own), dtype=np.int64)
        vocab = list(target)
        position = {v: i for i, v in enumerate(vocab)}
        if len(position) != len(vocab):
            raise ValueError(f"the target {kind} vocabulary has repeated ids")
        mapping = np.empty(len(own), dtype=np.int64)
        for i, v in enumerate(own):
            if v not in position:
                if unknown == "error":
                    raise KeyError(f"{kind} id {v!r} is not in the target vocabulary")
                position[v] = len(vocab)
                vocab.append(v)
            mapping[i] = position[v]
        return tuple(vocab), mapping

    # ---- identity and summary ----------------------------------------------------------------

    def fingerprint(self) -> str:
        """A sha256 hex digest of the content, for experiment tracking.

        Content means: which learner made which attempts, in which order, on which item with
        which standards, with which outcome and time. It does not depend on the order of the
        learners or of the vocabularies, nor on vocabulary entries no attempt uses, so the same
        data loaded twice (or re-indexed with :meth:`with_vocabularies`) has the same fingerprint.
        """
        h = hashlib.sha256(_FINGERPRINT_VERSION)
        learner_order = np.array(sorted(range(self.n_learners), key=self.learner_ids.__getitem__), dtype=np.int64)
        rows = _ranges(self.learner_offsets, learner_order)
        items_used, item_rank = _used_ranks(self.item_ids, self.item)
        stds_used, std_rank = _used_ranks(self.standard_ids, self.standard_indices)
        std_offsets, std_flat = _csr_take(self.standard_offsets, self.standard_indices, rows)
        # standards of an attempt form a set: hash them sorted by id
        width = max(len(stds_used), 1)
        owner = np.repeat(np.arange(len(rows)), np.diff(std_offsets))
        std_sorted = np.sort(owner * width + std_rank[std_flat]) % width
        timestamp = np.where(np.isnan(self.timestamp[rows]), np.nan, self.timestamp[rows])  # one NaN pattern
        for part in (
            json.dumps([self.learner_ids[i] for i in learner_order]).encode(),
            json.dumps(items_used).encode(),
            json.dumps(stds_used).encode(),
            self.sequence_lengths()[learner_order].astype("<i8").tobytes(),
            item_rank[self.item[rows]].astype("<i8").tobytes(),
            std_offsets.astype("<i8").tobytes(),
            std_sorted.astype("<i8").tobytes(),
            self.correct[rows].astype("<f4").tobytes(),
            timestamp.astype("<f8").tobytes(),
        ):
            h.update(len(part).to_bytes(8, "little"))
            h.update(part)
        return h.hexdigest()

    def summary(self) -> dict[str, float | int]:
        """Counts and rates worth logging next to a model's metrics.

        Returns
        -------
        dict
            ``n_learners``, ``n_attempts``, ``n_items``, ``n_standards``, ``correct_rate``
            (mean of ``correct``), ``multi_standard_attempts``, ``attempts_without_standards``,
            ``timestamped_share``, ``median_attempts_per_learner``, ``max_attempts_per_learner``.
        """
        n_std = np.diff(self.standard_offsets)
        lengths = self.sequence_lengths()
        return {
            "n_learners": self.n_learners,
            "n_attempts": self.n_attempts,
            "n_items": self.n_items,
            "n_standards": self.n_standards,
            "correct_rate": float(self.correct.mean(dtype=np.float64)) if self.n_attempts else float("nan"),
            "multi_standard_attempts": int((n_std > 1).sum()),
            "attempts_without_standards": int((n_std == 0).sum()),
            "timestamped_share": float((~np.isnan(self.timestamp)).mean()) if self.n_attempts else 0.0,
            "median_attempts_per_learner": float(np.median(lengths)) if self.n_learners else 0.0,
            "max_attempts_per_learner": int(lengths.max()) if self.n_learners else 0,
        }


def concat_tables(first: InteractionTable, second: InteractionTable) -> InteractionTable:
    """One InteractionTable with the learners of ``first`` then those of ``second``.

    Vocabularies are merged by id (``first``'s ids keep their indices, ids only in ``second`` are
    appended). Learner ids must not repeat across the two tables.
    """
    clash = set(first.learner_ids) & set(second.learner_ids)
    if clash:
        raise ValueError(f"cannot concatenate tables sharing {len(clash)} learner ids (e.g. {sorted(clash)[0]!r})")
    b = second.with_vocabularies(first.item_ids, first.standard_ids)
    a = first.with_vocabularies(b.item_ids, b.standard_ids)
    return InteractionTable(
        learner_ids=a.learner_ids + b.learner_ids,
        item_ids=b.item_ids,
        standard_ids=b.standard_ids,
        learner_offsets=np.concatenate([a.learner_offsets, a.learner_offsets[-1] + b.learner_offsets[1:]]).astype(
            np.int64
        ),
        learner=np.concatenate([a.learner, b.learner + a.n_learners]).astype(np.int32),
        item=np.concatenate([a.item, b.item]).astype(np.int32),
        standard_offsets=np.concatenate([a.standard_offsets, a.standard_offsets[-1] + b.standard_offsets[1:]]).astype(
            np.int64
        ),
        standard_indices=np.concatenate([a.standard_indices, b.standard_indices]).astype(np.int32),
        correct=np.concatenate([a.correct, b.correct]).astype(np.float32),
        timestamp=np.concatenate([a.timestamp, b.timestamp]).astype(np.float64),
    )
