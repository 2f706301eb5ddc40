"""Column mappings for one-row-per-interaction tables, their presets, and time parsing.

A :class:`CsvColumns` says which column of a CSV/TSV/Parquet table holds what. Presets:

- :func:`datashop_columns`: PSLC DataShop tab-delimited transaction exports (``Anon Student
  Id``, ``Problem Name`` + ``Step Name``, ``Outcome`` CORRECT/INCORRECT/HINT, ``KC (model)``
  with ``~~`` between several KCs, ``Time``).
- :data:`DEDUP_COLUMNS`: the de-duplicated ASSISTments 2009 TSV of Gervet et al.
  (``user_id item_id timestamp correct skill_id``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

__all__ = ["DEDUP_COLUMNS", "DEFAULT_CORRECT_VALUES", "CsvColumns", "datashop_columns", "parse_timestamp"]

#: outcome spellings understood by default (compared case-insensitively)
DEFAULT_CORRECT_VALUES: Mapping[str, float] = {
    "1": 1.0,
    "0": 0.0,
    "true": 1.0,
    "false": 0.0,
    "correct": 1.0,
    "incorrect": 0.0,
}


@dataclass(frozen=True)
class CsvColumns:
    """Which column of a table holds what.

    Parameters
    ----------
    learner : str
        Learner id column.
    item : str or tuple of str
        Item id column; several columns are joined with ``item_joiner`` (DataShop problem + step).
    correct : str, optional
        Outcome column read through ``correct_values`` (exactly one of ``correct``/``score``).
    score : str, optional
        Score column, a number in [0, 1].
    standards : str or tuple of str, optional
        Standard (skill, KC) columns; empty cells mean no standard.
    standards_sep : str, optional
        Separator of several standards in one cell (DataShop: ``"~~"``).
    timestamp : str, optional
        Time column: ISO-8601 (naive times are taken as UTC) or epoch seconds.
    timestamp_format : {"auto", "iso", "epoch"}
        ``auto`` reads numbers as epoch seconds and anything else as ISO-8601.
    correct_values : mapping of str to float
        Outcome spellings (case-insensitive) and their value.
    zero_time_is_missing : bool
        Treat a timestamp of 0 as unknown (exports that write 0 for "no time").
    delimiter : str, optional
        Field separator; default: tab for ``.tsv``/``.txt`` files, comma otherwise.
    """

    learner: str
    item: str | tuple[str, ...]
    correct: str | None = None
    score: str | None = None
    standards: str | tuple[str, ...] | None = None
    standards_sep: str | None = None
    timestamp: str | None = None
    timestamp_format: Literal["auto", "iso", "epoch"] = "auto"
    correct_values: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_CORRECT_VALUES))
    item_joiner: str = " :: "
    zero_time_is_missing: bool = False
    delimiter: str | None = None

    def __post_init__(self) -> None:
        if (self.correct is None) == (self.score is None):
            raise ValueError("CsvColumns needs exactly one of correct= or score=")
        if self.timestamp_format not in ("auto", "iso", "epoch"):
            raise ValueError(f"timestamp_format must be auto, iso or epoch, got {self.timestamp_format!r}")

    @property
    def item_columns(self) -> tuple[str, ...]:
        return (self.item,) if isinstance(self.item, str) else tuple(self.item)

    @property
    def standard_columns(self) -> tuple[str, ...]:
        if self.standards is None:
            return ()
        return (self.standards,) if isinstance(self.standards, str) else tuple(self.standards)

    def required(self) -> tuple[str, ...]:
        """Every column the mapping reads."""
        cols = [self.learner, *self.item_columns, *self.standard_columns]
        cols += [c for c in (self.correct, self.score, self.timestamp) if c is not None]
        return tuple(cols)


def datashop_columns(kc_model: str = "Default", item_level: Literal["step", "problem"] = "step") -> CsvColumns:
    """Column mapping for a DataShop tab-delimited transaction export.

    Parameters
    ----------
    kc_model : str
        KC model whose column ``KC (<kc_model>)`` gives the standards.
    item_level : {"step", "problem"}
        ``"step"`` (default) makes ``Problem Name :: Step Name`` the item: a step is what a student
        attempts, and with ``"problem"`` all steps of a problem would collapse into one attempt.

    Notes
    -----
    ``HINT`` counts as incorrect; with collapsing, a step's transactions become one attempt
    labelled by the first one, which is DataShop's "correct on first attempt".
    """
    item: tuple[str, ...] = ("Problem Name", "Step Name") if item_level == "step" else ("Problem Name",)
    return CsvColumns(
        learner="Anon Student Id",
        item=item,
        correct="Outcome",
        standards=f"KC ({kc_model})",
        standards_sep="~~",
        timestamp="Time",
        correct_values={"correct": 1.0, "incorrect": 0.0, "hint": 0.0},
        delimiter="\t",
    )


#: the Gervet et al. de-duplicated ASSISTments TSV (timestamps there are all 0 = unknown)
DEDUP_COLUMNS = CsvColumns(
    learner="user_id",
    item="item_id",
    correct="correct",
    timestamp="timestamp",
    timestamp_format="epoch",
    zero_time_is_missing=True,
    delimiter="\t",
    correct_values={"0": 0.0, "1": 1.0},
)


def parse_timestamp(text: str, fmt: str = "auto") -> tuple[float, bool]:
    """Epoch seconds of ``text`` and whether it lacked a time zone (then read as UTC).

    Empty text is unknown (NaN). Raises ``ValueError`` for text that is neither.

    Examples
    --------
    >>> parse_timestamp("2024-03-01T12:00:00Z")
    (1709294400.0, False)
    >>> parse_timestamp("1709294400")
    (1709294400.0, False)
    """
    text = text.strip()
    if not text:
        return math.nan, False
    if fmt in ("auto", "epoch"):
        try:
            value = float(text)
        except ValueError:
            if fmt == "epoch":
                raise ValueError("must be epoch seconds") from None
        else:
            if not math.isfinite(value):
                raise ValueError("must be a finite number of epoch seconds")
            return value, False
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError("must be ISO-8601 (2024-03-01T12:00:00Z) or epoch seconds") from None
    naive = moment.tzinfo is None
    if naive:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp(), naive
