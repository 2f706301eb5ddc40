"""Loaders for one-row-per-interaction tables: CSV/TSV/Parquet (incl. DataShop) and Gervet TSV.

The column mapping and its presets live in :mod:`training.columns`; this module reads rows,
validates every field (errors name file, line and column) and hands them to
:func:`training.assembly.assemble_table`.
"""

from __future__ import annotations

import csv
import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Literal

import numpy as np

from engine.textfiles import TextFileError, open_text
from training.assembly import Loaded, OnConflict, RowCollector, assemble_table
from training.columns import DEDUP_COLUMNS, CsvColumns, datashop_columns, parse_timestamp
from training.load_report import DataError, LoadReport, OnError, path_list, unreadable

__all__ = ["load_csv", "load_dedup"]

_MILLISECONDS_HINT = 1e11  # epoch seconds pass this in the year 5138; larger values are milliseconds


class _RowProblem(Exception):
    """A field of one row is invalid; turned into a :class:`DataError` with file and line."""

    def __init__(self, field_name: str | None, problem: str, reason: str) -> None:
        super().__init__(problem)
        self.field_name, self.problem, self.reason = field_name, problem, reason


class _RowReader:
    """Validates rows of one mapping; keeps the counts that become report warnings."""

    def __init__(
        self,
        columns: CsvColumns,
        header: Sequence[str],
        source: str,
        unit: str,
        standards_of_item: Callable[[str], list[str]] | None,
    ) -> None:
        self.columns = columns
        missing = [c for c in columns.required() if c not in header]
        if missing:
            raise DataError(
                source, 1, "header", f"lacks column(s) {missing}; columns present: {list(header)[:30]}", unit=unit
            )
        pos = {name: i for i, name in enumerate(header)}
        self.width = len(header)
        self.i_learner = pos[columns.learner]
        self.i_items = [pos[c] for c in columns.item_columns]
        self.i_standards = [pos[c] for c in columns.standard_columns]
        self.i_outcome = pos[columns.correct if columns.correct is not None else columns.score]  # type: ignore[index]
        self.i_time = pos[columns.timestamp] if columns.timestamp is not None else None
        self.outcomes = {k.lower(): float(v) for k, v in columns.correct_values.items()}
        self.standards_of_item = standards_of_item
        self.naive_times = 0

    def parse(self, row: Sequence[str]) -> tuple[str, str, list[str], float, float]:
        c = self.columns
        if len(row) != self.width:
            raise _RowProblem(None, f"expected {self.width} fields, got {len(row)}", "wrong_field_count")
        learner = row[self.i_learner].strip()
        if not learner:
            raise _RowProblem(c.learner, "is empty; expected a learner id", "missing_learner")
        parts = [row[i].strip() for i in self.i_items]
        if not all(parts):
            raise _RowProblem(" + ".join(c.item_columns), "is empty; expected an item id", "missing_item")
        item = c.item_joiner.join(parts)
        standards = self._standards(row, item)
        return learner, item, standards, self._outcome(row[self.i_outcome].strip()), self._time(row)

    def _standards(self, row: Sequence[str], item: str) -> list[str]:
        if self.standards_of_item is not None:
            try:
                return self.standards_of_item(item)
            except ValueError as exc:
                raise _RowProblem(self.columns.item_columns[0], str(exc), "unknown_item") from None
        out: list[str] = []
        for i in self.i_standards:
            cell = row[i]
            values = cell.split(self.columns.standards_sep) if self.columns.standards_sep else [cell]
            out.extend(v.strip() for v in values if v.strip())
        return out

    def _outcome(self, text: str) -> float:
        c = self.columns
        if c.correct is not None:
            value = self.outcomes.get(text.lower())
            if value is None:
                raise _RowProblem(c.correct, f"must be one of {sorted(self.outcomes)}, got {text!r}", "bad_outcome")
            return value
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not 0.0 <= value <= 1.0:  # also rejects NaN
            raise _RowProblem(c.score, f"must be a number in [0, 1], got {text!r}", "bad_score")
        return value

    def _time(self, row: Sequence[str]) -> float:
        if self.i_time is None:
            return math.nan
        try:
            value, naive = parse_timestamp(row[self.i_time], self.columns.timestamp_format)
        except ValueError as exc:
            raise _RowProblem(self.columns.timestamp, f"{exc}, got {row[self.i_time]!r}", "bad_timestamp") from None
        self.naive_times += naive
        if value == 0.0 and self.columns.zero_time_is_missing:
            return math.nan
        return value


def _csv_rows(fh: Iterable[str], delimiter: str) -> tuple[list[str], Iterator[tuple[int, list[str]]]]:
    reader = csv.reader(fh, delimiter=delimiter)
    header = [h.strip() for h in next(reader, [])]

    def rows() -> Iterator[tuple[int, list[str]]]:
        for row in reader:
            if row and any(cell.strip() for cell in row):  # blank lines carry nothing
                yield reader.line_num, row

    return header, rows()


def _parquet_rows(path: Path) -> tuple[list[str], Iterator[tuple[int, list[str]]]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        try:
            import pandas as pd
        except ImportError:
            raise ImportError(
                f"{path.name}: reading Parquet needs pyarrow (pip install pyarrow) or pandas with a "
                "Parquet engine; or export the table to CSV"
            ) from None
        frame = pd.read_parquet(path)
        data = {str(k): frame[k].tolist() for k in frame.columns}
    else:
        data = pq.read_table(path).to_pydict()
    header = list(data)

    def text(v: object) -> str:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return ""
        return v.isoformat() if isinstance(v, datetime) else str(v)

    def rows() -> Iterator[tuple[int, list[str]]]:
        for i, values in enumerate(zip(*data.values())):
            yield i + 1, [text(v) for v in values]

    return header, rows()


def _collect(
    paths: list[Path],
    columns: CsvColumns,
    report: LoadReport,
    standards_of_item: Callable[[str], list[str]] | None = None,
) -> RowCollector:
    collector = RowCollector()
    naive = 0
    for path in paths:
        if not path.exists():
            raise DataError(path.name, None, None, "file not found", path=str(path))
        parquet = path.suffix.lower() in (".parquet", ".pq")
        unit = "row" if parquet else "line"
        delimiter = columns.delimiter or ("\t" if path.suffix.lower() in (".tsv", ".txt", ".tab") else ",")
        with ExitStack() as stack:
            try:
                if parquet:
                    header, rows = _parquet_rows(path)
                else:  # UTF-8 with or without a byte-order mark (Excel, DataShop), or UTF-16 with one
                    fh = stack.enter_context(open_text(path))
                    header, rows = _csv_rows(fh, delimiter)
                reader = _RowReader(columns, header, path.name, unit, standards_of_item)
                collector.start_source(path.name)
                for line, row in rows:
                    report.rows_read += 1
                    try:
                        collector.add(*reader.parse(row), line=line)
                    except _RowProblem as p:
                        error = DataError(path.name, line, p.field_name, p.problem, path=str(path), unit=unit)
                        report.reject(error, p.reason)
            except TextFileError as exc:
                raise unreadable(exc) from None
        naive += reader.naive_times
    if naive:
        report.warn(f"{naive} timestamps had no time zone and were read as UTC")
    return collector


def _finish(collector: RowCollector, report: LoadReport, collapse: bool, on_conflict: OnConflict, t0: float) -> Loaded:
    raw = collector.rows()
    if np.nanmax(raw.timestamp, initial=-np.inf) > _MILLISECONDS_HINT:
        report.warn("timestamps exceed 1e11: they look like epoch milliseconds, not seconds")
    table = assemble_table(raw, report, collapse=collapse, on_conflict=on_conflict)
    report.seconds = time.perf_counter() - t0
    return Loaded(table, report)


def load_csv(
    paths: str | Path | Sequence[str | Path],
    columns: CsvColumns | Literal["datashop"],
    *,
    collapse: bool = True,
    on_conflict: OnConflict = "first",
    on_error: OnError = "raise",
) -> Loaded:
    """Load CSV/TSV (or Parquet, by suffix ``.parquet``) files with a column mapping.

    Parameters
    ----------
    paths : path or sequence of paths
        Files with the same columns; rows of one learner may be spread over files.
    columns : CsvColumns or "datashop"
        Column mapping; ``"datashop"`` is :func:`datashop_columns` with defaults.
    collapse, on_conflict
        Consecutive repeats of one item (see :func:`training.assembly.assemble_table`).
    on_error : {"raise", "skip"}
        Malformed rows raise :class:`DataError` or are skipped and counted by reason.

    Examples
    --------
    >>> cols = CsvColumns(learner="student", item="question", correct="right",
    ...                   standards="skills", standards_sep=";", timestamp="time")
    >>> table, report = load_csv("answers.csv", cols)         # doctest: +SKIP
    """
    t0 = time.perf_counter()
    if isinstance(columns, str):
        if columns != "datashop":
            raise ValueError(f"columns must be a CsvColumns or 'datashop', got {columns!r}")
        columns = datashop_columns()
    files = path_list(paths)
    fmt = "parquet" if all(p.suffix.lower() in (".parquet", ".pq") for p in files) else "csv"
    report = LoadReport(fmt, sources=[str(p) for p in files], on_error=on_error)
    return _finish(_collect(files, columns, report), report, collapse, on_conflict, t0)


def _q_matrix(path: Path) -> tuple[np.ndarray, np.ndarray, int]:
    """(indptr, indices, n_items) of a scipy ``save_npz`` CSR matrix, read without scipy or pickle."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            fmt = npz["format"].item()
            fmt = fmt.decode() if isinstance(fmt, bytes) else str(fmt)
            if fmt != "csr":
                raise DataError(path.name, None, "format", f"must be 'csr', got {fmt!r}", path=str(path))
            return npz["indptr"].astype(np.int64), npz["indices"].astype(np.int64), int(npz["shape"][0])
    except FileNotFoundError:
        raise DataError(path.name, None, None, "file not found (the Q-matrix q_mat.npz)", path=str(path)) from None
    except KeyError as exc:
        raise DataError(path.name, None, None, f"is not a scipy sparse .npz (missing {exc})", path=str(path)) from None


def load_dedup(
    paths: str | Path | Sequence[str | Path],
    *,
    q_mat: str | Path | None = None,
    standards: Literal["q_mat", "skill_id"] = "q_mat",
    collapse: bool = True,
    on_conflict: OnConflict = "first",
    on_error: OnError = "raise",
) -> Loaded:
    """Load the Gervet et al. one-row-per-attempt TSV (``assist2009_dedup``).

    Parameters
    ----------
    paths : path or sequence of paths
        ``preprocessed_data_{train,test}.csv`` (tab-separated despite the suffix).
    q_mat : path, optional
        Item x skill Q-matrix; default ``q_mat.npz`` next to the first file.
    standards : {"q_mat", "skill_id"}
        ``"q_mat"`` (default): the item's skills from the Q-matrix (column indices, so a
        multi-skill item has several standards). ``"skill_id"``: the row's ``skill_id``, which
        in this data set names a skill *combination*, one per item.
    collapse, on_conflict, on_error
        As in :func:`load_csv`. The file still has a few consecutive repeats of one item.

    Notes
    -----
    Timestamps are 0 throughout this data set and are read as unknown, so file order is kept.
    """
    t0 = time.perf_counter()
    files = path_list(paths)
    report = LoadReport("dedup", sources=[str(p) for p in files], on_error=on_error)
    lookup = None
    columns = DEDUP_COLUMNS
    if standards == "skill_id":
        columns = replace(DEDUP_COLUMNS, standards="skill_id")
    elif standards == "q_mat":
        q_path = Path(q_mat) if q_mat is not None else files[0].parent / "q_mat.npz"
        indptr, indices, n_items = _q_matrix(q_path)
        # one small list per item, built once: rows then only look it up
        per_item = [[str(s) for s in indices[indptr[i] : indptr[i + 1]]] for i in range(n_items)]

        def lookup(item: str) -> list[str]:
            if not item.isdigit() or int(item) >= n_items:
                raise ValueError(f"must be an item index below {n_items} (rows of {q_path.name}), got {item!r}")
            return per_item[int(item)]

        report.sources.append(str(q_path))
    else:
        raise ValueError(f"standards must be 'q_mat' or 'skill_id', got {standards!r}")
    return _finish(_collect(files, columns, report, lookup), report, collapse, on_conflict, t0)
