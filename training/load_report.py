"""What a loader did with its input: :class:`DataError` for a bad row and :class:`LoadReport`.

Every loader returns a :class:`LoadReport` next to its table, so a training run can log exactly
how many rows were read, merged and dropped (and why) together with the data fingerprint.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from engine.textfiles import TextFileError

__all__ = ["DataError", "LoadReport", "OnError", "Rejected", "json_lines", "path_list", "unreadable"]

#: ``"raise"`` stops at the first malformed row; ``"skip"`` drops it and counts it by reason.
OnError = Literal["raise", "skip"]


def path_list(paths: str | Path | Sequence[str | Path]) -> list[Path]:
    """The files a loader was given: one path or several."""
    return [Path(paths)] if isinstance(paths, (str, Path)) else [Path(p) for p in paths]


def json_lines(text: str) -> Iterator[tuple[int, Any]]:
    """(line number, decoded JSON or the :class:`json.JSONDecodeError`) of each non-empty line."""
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as exc:
                yield number, exc


class Rejected(Exception):
    """A record a loader refuses: the ``field`` at fault (None: the record), the problem and the
    reason it is counted under; the loader names the file and line (:class:`DataError`)."""

    def __init__(self, field: str | None, problem: str, reason: str) -> None:
        super().__init__(problem)
        self.field, self.problem, self.reason = field, problem, reason


#: how many example locations a report keeps per reason; enough to find the pattern in a file
_EXAMPLES_PER_REASON = 3


class DataError(ValueError):
    """A row of an interaction file is malformed.

    The message names the file, the line (or row, or statement), the field and what was
    expected, e.g. ``assist2009_pid_train1.csv line 7: responses must be 0 or 1, got '2'``.

    Parameters
    ----------
    source : str
        File name shown in the message (the full path is kept in ``path``).
    line : int or None
        1-based line (or row / statement number, see ``unit``); ``None`` for file-level problems.
    field : str or None
        The field at fault (``"responses"``, ``"Outcome"``, ``"result.score.scaled"``).
    problem : str
        What was wrong, phrased to follow the field: ``"must be 0 or 1, got '2'"``.
    path : str, optional
        Full path of the file.
    unit : str, default "line"
        What ``line`` counts: ``"line"``, ``"row"`` (Parquet) or ``"statement"`` (JSON arrays).
    """

    def __init__(
        self,
        source: str,
        line: int | None,
        field: str | None,
        problem: str,
        *,
        path: str | None = None,
        unit: str = "line",
    ) -> None:
        self.source = source
        self.line = line
        self.field = field
        self.problem = problem
        self.path = path if path is not None else source
        self.unit = unit
        super().__init__(f"{self.where}: {self.detail}")

    @property
    def where(self) -> str:
        """``file line N`` (or just the file name for file-level problems)."""
        return self.source if self.line is None else f"{self.source} {self.unit} {self.line}"

    @property
    def detail(self) -> str:
        """The message without its location: ``field problem``."""
        return self.problem if self.field is None else f"{self.field} {self.problem}"


def unreadable(exc: TextFileError) -> DataError:
    """The :class:`DataError` of a file in an unsupported encoding (see :mod:`engine.textfiles`)."""
    return DataError(exc.path.name, exc.line, None, exc.detail, path=str(exc.path))


@dataclass
class LoadReport:
    """Counts of what one load did; returned by every loader next to its table.

    Attributes
    ----------
    format : str
        Loader name (``akt``, ``dedup``, ``csv``, ``parquet``, ``xapi``).
    sources : list of str
        Files read, in order.
    on_error : {"raise", "skip"}
        Policy the load ran with.
    rows_read : int
        Input rows (one interaction each) seen, including the ones skipped. For the AKT line
        formats a row is one position of a learner's sequence.
    attempts : int
        Attempts in the resulting table (after merging).
    learners : int
        Learners in the resulting table.
    duplicates_collapsed : int
        Rows merged into the attempt of the row before them (under ``merge_rule``, e.g. the
        copies of one answer that a multi-skill expansion writes once per skill). Every row read
        is in an attempt of its own, merged into one, or skipped:
        ``rows_read == attempts + duplicates_collapsed + rows_skipped``.
    repeats_kept : int
        Rows that repeat the previous row's item for the same learner and were kept as attempts
        of their own (re-attempts, rows whose outcomes conflict, or merging turned off). Set by
        the loaders that tell these apart (AKT); 0 otherwise.
    outcome_conflicts : int
        Groups of rows that the merge rule would join but that disagree on the outcome; what
        was done with them is ``conflict_rule``.
    merge_rule : str
        Which consecutive rows were merged into one attempt (``"off"``: none).
    conflict_rule : str
        What was done with an outcome conflict (empty when the loader does not say).
    skipped : collections.Counter
        Rows not turned into attempts, by reason (malformed rows under ``on_error="skip"`` and
        rows that are not answers, such as xAPI statements without a result).
    examples : dict of str to list of str
        Up to three ``file line N: message`` examples per reason (skips and conflicts).
    warnings : list of str
        Data oddities that did not drop anything (aggregated: one message per kind).
    seconds : float
        Wall time of the load.
    """

    format: str
    sources: list[str] = field(default_factory=list)
    on_error: OnError = "raise"
    rows_read: int = 0
    attempts: int = 0
    learners: int = 0
    duplicates_collapsed: int = 0
    repeats_kept: int = 0
    outcome_conflicts: int = 0
    merge_rule: str = "consecutive rows of one learner on one item"
    conflict_rule: str = ""
    skipped: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def __post_init__(self) -> None:
        if self.on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {self.on_error!r}")

    @property
    def rows_skipped(self) -> int:
        """Total rows skipped over all reasons."""
        return sum(self.skipped.values())

    @property
    def rows_unaccounted(self) -> int:
        """Rows read that are in no attempt and not skipped: 0 unless a loader lost rows."""
        return self.rows_read - self.attempts - self.duplicates_collapsed - self.rows_skipped

    def reject(self, error: DataError, reason: str, rows: int = 1) -> None:
        """Raise ``error`` or, under ``on_error="skip"``, count ``rows`` skipped for ``reason``."""
        if self.on_error == "raise":
            raise error
        self.skip(reason, str(error), rows)

    def skip(self, reason: str, example: str | None = None, rows: int = 1) -> None:
        """Count ``rows`` skipped for ``reason`` (not an error: e.g. a statement without result)."""
        self.skipped[reason] += rows
        if example is not None:
            self.add_example(reason, example)

    def add_example(self, reason: str, example: str) -> None:
        """Keep ``example`` under ``reason`` unless three are kept already."""
        kept = self.examples.setdefault(reason, [])
        if len(kept) < _EXAMPLES_PER_REASON:
            kept.append(example)

    def warn(self, message: str) -> None:
        """Record a data oddity once (repeated messages are kept once)."""
        if message not in self.warnings:
            self.warnings.append(message)

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready copy, e.g. for ``mlflow.log_dict``."""
        return {
            "format": self.format,
            "sources": list(self.sources),
            "on_error": self.on_error,
            "rows_read": self.rows_read,
            "attempts": self.attempts,
            "learners": self.learners,
            "duplicates_collapsed": self.duplicates_collapsed,
            "repeats_kept": self.repeats_kept,
            "outcome_conflicts": self.outcome_conflicts,
            "merge_rule": self.merge_rule,
            "conflict_rule": self.conflict_rule,
            "rows_skipped": self.rows_skipped,
            "skipped": dict(sorted(self.skipped.items())),
            "examples": {k: list(v) for k, v in sorted(self.examples.items())},
            "warnings": list(self.warnings),
            "seconds": round(self.seconds, 4),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LoadReport:
        """The report that :meth:`to_dict` wrote (keys it does not know are ignored).

        >>> report = LoadReport("akt", rows_read=3, attempts=2, duplicates_collapsed=1)
        >>> LoadReport.from_dict(report.to_dict()) == report
        True
        """
        known = {f.name for f in dataclasses.fields(cls)} - {"skipped", "examples"}
        values = {k: v for k, v in data.items() if k in known}
        values["sources"] = list(values.get("sources", []))
        values["warnings"] = list(values.get("warnings", []))
        examples = {str(k): list(v) for k, v in dict(data.get("examples", {})).items()}
        return cls(**values, skipped=Counter(dict(data.get("skipped", {}))), examples=examples)

    def __str__(self) -> str:
        """Rows read, attempts built, rows merged and skipped (with reasons), conflicts, warnings.

        >>> print(LoadReport("akt", rows_read=5, attempts=3, learners=1, duplicates_collapsed=2))
        akt: 5 rows read -> 3 attempts, 1 learners
          rows: 3 attempts + 2 merged into them + 0 skipped = 5 read
          merged 2 rows into the attempt before them: consecutive rows of one learner on one item
        """
        merged = self.duplicates_collapsed
        balance = f"{self.attempts} attempts + {merged} merged into them + {self.rows_skipped} skipped"
        if self.rows_unaccounted:
            balance += f" + {self.rows_unaccounted} UNACCOUNTED FOR (a loader lost them)"
        lines = [
            f"{self.format}: {self.rows_read} rows read -> {self.attempts} attempts, {self.learners} learners",
            f"  rows: {balance} = {self.rows_read} read",
        ]
        if self.merge_rule == "off":
            lines.append("  merging off: every row that was not skipped is an attempt")
        elif merged:
            lines.append(f"  merged {merged} rows into the attempt before them: {self.merge_rule}")
        if self.repeats_kept:
            lines.append(f"  kept {self.repeats_kept} rows that repeat the previous item as attempts of their own")
        if self.outcome_conflicts:
            rule = f": {self.conflict_rule}" if self.conflict_rule else ""
            lines.append(f"  {self.outcome_conflicts} outcome conflicts{rule}")
            lines.extend(f"    e.g. {e}" for e in self.examples.get("outcome_conflict", []))
        for reason, count in sorted(self.skipped.items()):
            lines.append(f"  skipped {count} rows x {reason}: " + "; ".join(self.examples.get(reason, [])))
        lines.extend(f"  warning: {w}" for w in self.warnings)
        return "\n".join(lines)
