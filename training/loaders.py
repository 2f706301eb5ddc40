"""One entry point for every interaction format: :func:`load_interactions`.

Each format has its own module and loader; this module dispatches and re-exports them::

    akt      training.akt.load_akt          AKT/pyKT 3- and 4-line files (assist2009_pid, assist2015, statics)
    dedup    training.tabular.load_dedup    Gervet et al. TSV + q_mat.npz (assist2009_dedup)
    csv      training.tabular.load_csv      CSV/TSV/Parquet with a CsvColumns mapping or the DataShop preset
    xapi     training.xapi.load_xapi        xAPI statements (JSON lines or a statement array)
    caliper  training.caliper.load_caliper  Caliper envelopes or events (JSON lines or one document)

Every loader returns ``Loaded(table, report)``; every loader collapses consecutive rows of one
learner on one item into a single attempt (see :mod:`training.assembly`), so each attempt is
predicted once.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from training.akt import FoldPaths, akt_fold_paths, load_akt
from training.assembly import Loaded, OnConflict
from training.caliper import load_caliper
from training.columns import DEDUP_COLUMNS, CsvColumns, datashop_columns
from training.interactions import InteractionTable, LearnerSequence
from training.load_report import DataError, LoadReport, OnError
from training.tabular import load_csv, load_dedup
from training.xapi import STANDARDS_EXTENSION, load_xapi

__all__ = [
    "DEDUP_COLUMNS",
    "FORMATS",
    "STANDARDS_EXTENSION",
    "CsvColumns",
    "DataError",
    "FoldPaths",
    "InteractionTable",
    "LearnerSequence",
    "LoadReport",
    "Loaded",
    "OnConflict",
    "OnError",
    "akt_fold_paths",
    "datashop_columns",
    "load_akt",
    "load_csv",
    "load_dedup",
    "load_interactions",
    "load_xapi",
    "load_caliper",
]

Format = Literal["akt", "dedup", "csv", "xapi", "caliper"]
FORMATS: tuple[str, ...] = ("akt", "dedup", "csv", "xapi", "caliper")
_SPLITS = ("train", "valid", "test")


def load_interactions(
    path: str | Path | Sequence[str | Path],
    format: Format,  # noqa: A002 - the natural name at call sites: load_interactions(p, format="akt")
    **options: Any,
) -> Loaded:
    """Load interaction data of any supported format.

    Parameters
    ----------
    path : path or sequence of paths
        File(s) to read. For ``format="akt"`` a folder is accepted together with the options
        ``fold=K`` and ``split="train" | "valid" | "test"`` (see :func:`akt_fold_paths`).
    format : {"akt", "dedup", "csv", "xapi", "caliper"}
        Input format.
    **options
        Passed to the format's loader (:func:`load_akt`, :func:`load_dedup`, :func:`load_csv`,
        :func:`load_xapi`, :func:`load_caliper`); all take ``on_error``, ``collapse`` and ``on_conflict``. ``csv``
        needs ``columns`` (a :class:`CsvColumns` or ``"datashop"``).

    Returns
    -------
    Loaded
        ``(table, report)``.

    Examples
    --------
    >>> table, report = load_interactions("data/kt_sample/assist2015", "akt", fold=1, split="test")
    >>> report.format, table.n_learners
    ('akt', 60)
    """
    if format == "akt":
        if isinstance(path, (str, Path)) and Path(path).is_dir():
            path = _fold_file(Path(path), options.pop("fold", None), options.pop("split", "train"))
        return load_akt(path, **options)
    if format == "dedup":
        return load_dedup(path, **options)
    if format == "csv":
        if "columns" not in options:
            raise TypeError("format='csv' needs columns=CsvColumns(...) or columns='datashop'")
        return load_csv(path, **options)
    if format == "xapi":
        return load_xapi(path, **options)
    if format == "caliper":
        return load_caliper(path, **options)
    raise ValueError(f"unknown format {format!r}; expected one of {FORMATS}")


def _fold_file(folder: Path, fold: int | None, split: str) -> Path:
    if fold is None:
        raise TypeError(f"{folder} is a folder: pass fold=K (and split='train'|'valid'|'test')")
    if split not in _SPLITS:
        raise ValueError(f"split must be one of {_SPLITS}, got {split!r}")
    chosen = getattr(akt_fold_paths(folder, fold), split)
    if chosen is None:
        raise FileNotFoundError(f"{folder}: no *_{split}{fold}.csv")
    return chosen
