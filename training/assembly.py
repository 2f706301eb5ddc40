"""Turn parsed rows into an :class:`~training.interactions.InteractionTable`.

This is where the leakage rules live, once for every loader:

1. rows are grouped by learner (learners in order of first appearance);
2. within a learner, rows are stably sorted by timestamp when *every* row of that learner has
   one, otherwise file order is kept (a partial clock cannot order the untimed rows);
3. consecutive rows of one learner on the same item become one attempt whose standards are the
   union of the rows' standards. In ASSISTments 2009 a problem tagged with k skills appears as k
   copies of one answer; predicting copy 2 from copy 1 leaks the label (anchors.md, section 1).
   When the merged rows disagree on the outcome the ``on_conflict`` policy decides (default: the
   first row's outcome, i.e. "correct on first attempt", the usual knowledge-tracing label: later
   rows were produced after the learner saw feedback).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np

from training.interactions import InteractionTable, _csr_take  # package-private CSR helper
from training.load_report import DataError, LoadReport

__all__ = ["Loaded", "OnConflict", "RawRows", "RowCollector", "assemble_table"]

#: what to do when consecutive rows of one item disagree on the outcome:
#: ``"first"`` keeps one attempt with the first row's outcome, ``"split"`` starts a new attempt
#: at every change of outcome, ``"error"`` raises :class:`DataError`.
OnConflict = Literal["first", "split", "error"]


class Loaded(NamedTuple):
    """What every loader returns: ``table, report = load_...(...)``."""

    table: InteractionTable
    report: LoadReport


@dataclass
class RawRows:
    """Parsed input rows before grouping; codes index the vocabularies. Shapes: ``R`` rows."""

    learner: np.ndarray  # (R,) int64, codes in order of first appearance
    item: np.ndarray  # (R,) int64
    standard_offsets: np.ndarray  # (R+1,) int64
    standard_indices: np.ndarray  # (nnz,) int64
    correct: np.ndarray  # (R,) float32
    timestamp: np.ndarray  # (R,) float64, NaN = unknown
    line: np.ndarray  # (R,) int64, source line for messages
    source: np.ndarray  # (R,) int16, index into source_names
    learner_ids: list[str]
    item_ids: list[str]
    standard_ids: list[str]
    source_names: list[str]


class RowCollector:
    """Accumulate rows one by one (CSV, xAPI) and hand them over as :class:`RawRows`."""

    def __init__(self) -> None:
        self._codes: tuple[dict[str, int], dict[str, int], dict[str, int]] = ({}, {}, {})
        self._learner: list[int] = []
        self._item: list[int] = []
        self._std_flat: list[int] = []
        self._std_offsets: list[int] = [0]
        self._correct: list[float] = []
        self._timestamp: list[float] = []
        self._line: list[int] = []
        self._source: list[int] = []
        self._sources: list[str] = []

    def start_source(self, name: str) -> None:
        """Rows added from now on come from file ``name``."""
        self._sources.append(name)

    def add(self, learner: str, item: str, standards: list[str], correct: float, timestamp: float, line: int) -> None:
        """Append one row (values already validated)."""
        learners, items, stds = self._codes
        self._learner.append(learners.setdefault(learner, len(learners)))
        self._item.append(items.setdefault(item, len(items)))
        for s in standards:
            self._std_flat.append(stds.setdefault(s, len(stds)))
        self._std_offsets.append(len(self._std_flat))
        self._correct.append(correct)
        self._timestamp.append(timestamp)
        self._line.append(line)
        self._source.append(len(self._sources) - 1)

    def __len__(self) -> int:
        return len(self._learner)

    def rows(self) -> RawRows:
        """All rows added so far."""
        learners, items, stds = self._codes
        return RawRows(
            learner=np.array(self._learner, dtype=np.int64),
            item=np.array(self._item, dtype=np.int64),
            standard_offsets=np.array(self._std_offsets, dtype=np.int64),
            standard_indices=np.array(self._std_flat, dtype=np.int64),
            correct=np.array(self._correct, dtype=np.float32),
            timestamp=np.array(self._timestamp, dtype=np.float64),
            line=np.array(self._line, dtype=np.int64),
            source=np.array(self._source, dtype=np.int16),
            learner_ids=list(learners),
            item_ids=list(items),
            standard_ids=list(stds),
            source_names=list(self._sources),
        )


def _take_rows(raw: RawRows, order: np.ndarray) -> RawRows:
    std_offsets, std_indices = _csr_take(raw.standard_offsets, raw.standard_indices, order)
    return RawRows(
        learner=raw.learner[order],
        item=raw.item[order],
        standard_offsets=std_offsets,
        standard_indices=std_indices,
        correct=raw.correct[order],
        timestamp=raw.timestamp[order],
        line=raw.line[order],
        source=raw.source[order],
        learner_ids=raw.learner_ids,
        item_ids=raw.item_ids,
        standard_ids=raw.standard_ids,
        source_names=raw.source_names,
    )


def _time_order(raw: RawRows, report: LoadReport) -> np.ndarray:
    """Row order: by learner (first appearance), then time where usable, then file order."""
    n_learners = len(raw.learner_ids)
    missing = np.isnan(raw.timestamp)
    n_missing = np.bincount(raw.learner, weights=missing, minlength=n_learners)
    n_rows = np.bincount(raw.learner, minlength=n_learners)
    complete = n_missing == 0
    partial = (n_missing > 0) & (n_missing < n_rows)
    if partial.any():
        report.warn(
            f"{int(partial.sum())} learners have timestamps on only some rows; their rows were kept in file order"
        )
    time_key = np.where(complete[raw.learner], raw.timestamp, 0.0)
    # lexsort sorts by the last key first; arange makes ties keep file order (stable)
    return np.lexsort((np.arange(len(raw.learner)), time_key, raw.learner))


def _conflict_error(raw: RawRows, row: int, values: np.ndarray) -> DataError:
    source = raw.source_names[raw.source[row]]
    shown = ", ".join(f"{v:g}" for v in values)
    return DataError(
        source,
        int(raw.line[row]),
        "outcome",
        f"of consecutive rows of learner {raw.learner_ids[raw.learner[row]]!r} on item "
        f"{raw.item_ids[raw.item[row]]!r} disagree ({shown})",
    )


def _attempt_starts(raw: RawRows, collapse: bool, on_conflict: OnConflict) -> np.ndarray:
    """Boolean (R,): True where a row starts a new attempt."""
    n = len(raw.learner)
    new = np.ones(n, dtype=bool)
    if collapse and n > 1:
        same = (raw.learner[1:] == raw.learner[:-1]) & (raw.item[1:] == raw.item[:-1])
        if on_conflict == "split":
            same &= raw.correct[1:] == raw.correct[:-1]
        new[1:] = ~same
    return new


def _record_conflicts(raw: RawRows, starts: np.ndarray, on_conflict: OnConflict, report: LoadReport) -> None:
    hi = np.maximum.reduceat(raw.correct, starts)
    lo = np.minimum.reduceat(raw.correct, starts)
    conflicted = np.flatnonzero(hi != lo)
    report.outcome_conflicts += len(conflicted)
    ends = np.append(starts[1:], len(raw.correct))
    for g in conflicted[:3]:
        error = _conflict_error(raw, int(starts[g]), raw.correct[starts[g] : ends[g]])
        if on_conflict == "error":
            raise error
        report.add_example("outcome_conflict", f"{error} -> kept the first")


def _union_standards(raw: RawRows, group: np.ndarray, n_attempts: int) -> tuple[np.ndarray, np.ndarray]:
    """CSR of the union of the rows' standards per attempt, each attempt's set sorted by index."""
    n_std = max(len(raw.standard_ids), 1)
    owner = group[np.repeat(np.arange(len(group)), np.diff(raw.standard_offsets))]
    keys = np.unique(owner * n_std + raw.standard_indices)
    offsets = np.zeros(n_attempts + 1, dtype=np.int64)
    np.cumsum(np.bincount(keys // n_std, minlength=n_attempts), out=offsets[1:])
    return offsets, keys % n_std


def _compact(codes: np.ndarray, vocabulary: list[str]) -> tuple[np.ndarray, tuple[str, ...]]:
    """Drop vocabulary entries no row uses (e.g. after skips), keeping their relative order."""
    used, inverse = np.unique(codes, return_inverse=True)
    return inverse.astype(np.int32), tuple(vocabulary[i] for i in used)


def assemble_table(
    raw: RawRows,
    report: LoadReport,
    *,
    collapse: bool = True,
    on_conflict: OnConflict = "first",
) -> InteractionTable:
    """Group, order and collapse parsed rows into a table; fill the counts of ``report``.

    Parameters
    ----------
    raw : RawRows
        Validated rows.
    report : LoadReport
        Receives ``attempts``, ``learners``, ``duplicates_collapsed``, ``outcome_conflicts``.
    collapse : bool, default True
        Merge consecutive rows of one learner on the same item into one attempt.
    on_conflict : {"first", "split", "error"}
        Policy for merged rows that disagree on the outcome (see :data:`OnConflict`).

    Returns
    -------
    InteractionTable
    """
    if on_conflict not in ("first", "split", "error"):
        raise ValueError(f"on_conflict must be 'first', 'split' or 'error', got {on_conflict!r}")
    raw = _take_rows(raw, _time_order(raw, report))
    new = _attempt_starts(raw, collapse, on_conflict)
    starts = np.flatnonzero(new)
    n_attempts = len(starts)
    if n_attempts and collapse:
        _record_conflicts(raw, starts, on_conflict, report)
    group = np.cumsum(new) - 1
    std_offsets, std_flat = _union_standards(raw, group, n_attempts)

    learner, learner_ids = _compact(raw.learner[starts], raw.learner_ids)
    item, item_ids = _compact(raw.item[starts], raw.item_ids)
    std_flat, standard_ids = _compact(std_flat, raw.standard_ids)
    learner_offsets = np.zeros(len(learner_ids) + 1, dtype=np.int64)
    np.cumsum(np.bincount(learner, minlength=len(learner_ids)), out=learner_offsets[1:])

    if n_attempts == 0:
        report.warn("no attempts were loaded")
    report.attempts = n_attempts
    report.learners = len(learner_ids)
    report.duplicates_collapsed = len(raw.learner) - n_attempts
    return InteractionTable(
        learner_ids=learner_ids,
        item_ids=item_ids,
        standard_ids=standard_ids,
        learner_offsets=learner_offsets,
        learner=learner,
        item=item,
        standard_offsets=std_offsets,
        standard_indices=std_flat,
        correct=raw.correct[starts],
        timestamp=raw.timestamp[starts],
    )
