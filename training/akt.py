"""Loader for the AKT / pyKT / DKVMN line formats (one learner = a block of 3 or 4 lines).

4 lines per learner (``assist2009_pid``)::

    row_index,original_user_id
    problem ids          (item)
    skill ids            (the problem's standard; a multi-skill problem repeats on consecutive lines)
    responses            (0/1)

3 lines per learner (``assist2015``, ``statics2011``)::

    row_index,original_user_id   or   sequence length (statics: no learner id at all)
    ids                  (ASSIST2015: skill ids; Statics: question = problem + step ids)
    responses

In 3-line files the single id becomes both the item and its only standard. Statics headers
carry only a length, so learners get a synthetic id ``<file stem>#<block number>``: the same
student cannot be matched across files (and ``statics.csv`` holds three byte-identical
learner sequences, two of which the fold files leave out).

Which rows are one attempt. A 4-line file writes a problem tagged with k skills as k consecutive
rows, one per skill, with the same response: one answer. The same problem on consecutive rows is
also what a re-attempt looks like (ASSIST2017 has many), and merging those would drop answers. So
by default consecutive rows of one learner on one problem are merged only when they are a
multi-skill expansion:

* the problem is multi-skill: the files loaded together tag it with more than one skill;
* each row carries a skill the group does not have yet (a skill seen again starts a new answer,
  e.g. ``274,274,274,274,274,274`` with skills ``2,47,31,2,47,31`` is two answers);
* all rows have the same response.

Everything else is an attempt of its own: a single-skill problem twice in a row is a re-attempt.
A group that passes the first two tests but disagrees on the response (``1,0``) cannot be copies
of one answer; by default each of its rows is kept as an attempt and the group is counted as an
outcome conflict. In 3-line files the id is its own only skill, so nothing is merged (ASSIST2015:
a run ``68,68,68`` is three different problems of skill 68; Statics repeats are retries of one
step after feedback, ``0,1``). ``collapse=False`` turns merging off, ``collapse=True`` merges every
consecutive repeat (only for data whose repeats are known re-deliveries of one answer). The
:class:`~training.load_report.LoadReport` counts the rows merged, the repeats kept and the
conflicts, so that ``rows_read == attempts + duplicates_collapsed + rows_skipped``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from engine.textfiles import TextFileError, read_text
from training.assembly import Loaded, OnConflict, RawRows, assemble_table
from training.load_report import DataError, LoadReport, OnError, path_list, unreadable

__all__ = ["FoldPaths", "akt_fold_paths", "load_akt"]

_FIELDS = {4: ("problem ids", "skill ids", "responses"), 3: ("ids", "responses")}
_DETECT_BLOCKS = 8  # blocks inspected to tell 3-line from 4-line files


class FoldPaths(NamedTuple):
    """The files of one AKT fold; ``valid`` is ``None`` when the folder has no valid files."""

    train: Path
    valid: Path | None
    test: Path


def akt_fold_paths(folder: str | Path, fold: int) -> FoldPaths:
    """Find ``*_train{fold}.csv``, ``*_valid{fold}.csv`` and ``*_test{fold}.csv`` in ``folder``.

    Examples
    --------
    >>> paths = akt_fold_paths("data/kt_sample/assist2015", 1)
    >>> paths.train.name, paths.test.name
    ('assist2015_train1.csv', 'assist2015_test1.csv')

    Raises
    ------
    FileNotFoundError
        If the folder or the train or test file is missing.
    ValueError
        If a pattern matches several files.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: not a folder")
    found: dict[str, Path | None] = {}
    for split in ("train", "valid", "test"):
        matches = sorted(folder.glob(f"*_{split}{fold}.csv"))
        if len(matches) > 1:
            raise ValueError(f"{folder}: several {split} files for fold {fold}: {[m.name for m in matches]}")
        if not matches and split != "valid":
            present = sorted(p.name for p in folder.glob("*.csv"))[:10]
            raise FileNotFoundError(f"{folder}: no *_{split}{fold}.csv (csv files present: {present})")
        found[split] = matches[0] if matches else None
    train, test = found["train"], found["test"]
    assert train is not None and test is not None  # checked in the loop
    return FoldPaths(train=train, valid=found["valid"], test=test)


def _tokens(line: str) -> list[str]:
    """Comma-separated values; an empty line is an empty sequence; one trailing comma is tolerated."""
    line = line.strip()
    if line.endswith(","):
        line = line[:-1]
    return line.split(",") if line else []


def _block_checks(block: list[str]) -> tuple[bool, bool, bool]:
    """(header looks like a header, sequence lengths agree, last line is 0/1) for one block."""
    head = block[0].strip().split(",")
    header_ok = len(head) <= 2 and head[0].strip().isdigit()
    counts = {len(_tokens(s)) for s in block[1:]}
    lengths_ok = len(counts) == 1 and (len(head) != 1 or not header_ok or int(head[0]) in counts)
    return header_ok, lengths_ok, set(_tokens(block[-1])) <= {"0", "1"}


def _detect_lines_per_learner(lines: list[str], name: str) -> int:
    """3 or 4, from the first blocks.

    Structure (line count, header positions, equal lengths) decides first, because broken files
    are usually broken in their values; the 0/1 responses line breaks ties. Only when neither
    layout is structurally sound does the share of passed checks decide.
    """
    checks = {}
    for n in (4, 3):
        blocks = [lines[b * n : (b + 1) * n] for b in range(min(len(lines) // n, _DETECT_BLOCKS))]
        checks[n] = [_block_checks(block) for block in blocks]
    sound = [n for n in (4, 3) if checks[n] and len(lines) % n == 0 and all(h and ln for h, ln, _ in checks[n])]
    if len(sound) > 1:
        sound = [n for n in sound if all(r for _, _, r in checks[n])]
    if len(sound) == 1:
        return sound[0]
    if not sound:  # a broken file: the layout under which most checks pass (line count breaks ties)
        share = {n: (sum(map(sum, c)) / (3 * len(c)) if c else 0.0, len(lines) % n == 0) for n, c in checks.items()}
        if share[4] != share[3] and max(share.values())[0] > 0.5:
            return max(share, key=share.__getitem__)
    raise DataError(
        name,
        None,
        None,
        "cannot tell whether this is the 3-line or the 4-line AKT format "
        "(header / ids [/ skill ids] / 0-1 responses); pass lines_per_learner=3 or 4",
    )


@dataclass
class _FileBlocks:
    """Well-formed blocks of one file, before value conversion."""

    name: str
    learner_ids: list[str] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)
    response_lines: list[int] = field(default_factory=list)  # 1-based line of the responses line
    columns: list[list[str]] = field(default_factory=list)  # per sequence field: the raw lines


class _Parser:
    """Parses the files of one load; errors are collected so the earliest in a file is raised."""

    def __init__(self, n: int | None, report: LoadReport) -> None:
        self.n = n
        self.report = report
        self.errors: list[tuple[int, int, DataError, str, int]] = []  # (file, line, error, reason, rows)
        self.seen: dict[str, str] = {}  # learner id -> "file line N" of its first block
        self.file_index = 0

    def error(self, error: DataError, reason: str, rows: int) -> None:
        self.errors.append((self.file_index, error.line or 0, error, reason, rows))

    def read_file(self, path: Path) -> _FileBlocks:
        name = path.name
        try:
            lines = read_text(path).splitlines()
        except FileNotFoundError:
            raise DataError(name, None, None, "file not found", path=str(path)) from None
        except TextFileError as exc:
            raise unreadable(exc) from None
        while lines and not lines[-1].strip():
            lines.pop()
        if not lines:
            raise DataError(name, None, None, "is empty", path=str(path))
        n = self.n or _detect_lines_per_learner(lines, name)
        if self.n is None:
            self.n = n  # every file of one load must share the layout
        out = _FileBlocks(name, columns=[[] for _ in range(n - 1)])
        complete = len(lines) - len(lines) % n
        for start in range(0, complete, n):
            self._block(path, lines[start : start + n], start + 1, out)
        if complete < len(lines):
            rows = max((len(_tokens(s)) for s in lines[complete + 1 :]), default=0)
            self.report.rows_read += rows
            problem = f"incomplete learner block: expected {n} lines, the file ends after {len(lines) - complete}"
            self.error(DataError(name, complete + 1, None, problem), "incomplete_block", rows)
        return out

    def _block(self, path: Path, block: list[str], first_line: int, out: _FileBlocks) -> None:
        counts = [len(_tokens(s)) for s in block[1:]]
        rows = max(counts)
        self.report.rows_read += rows
        try:
            learner_id = _check_block(path, block, first_line, counts)
            if learner_id in self.seen:
                raise _BlockProblem(
                    first_line,
                    "learner id",
                    f"{learner_id!r} already has a block at {self.seen[learner_id]}",
                    "duplicate_learner",
                )
        except _BlockProblem as p:
            self.error(DataError(path.name, p.line, p.field, p.problem, path=str(path)), p.reason, rows)
            return
        self.seen[learner_id] = f"{path.name} line {first_line}"
        if rows == 0:
            self.report.warn("learners with an empty sequence were dropped")
            return
        out.learner_ids.append(learner_id)
        out.counts.append(rows)
        out.response_lines.append(first_line + len(block) - 1)
        for k, line in enumerate(block[1:]):
            out.columns[k].append(line)


class _BlockProblem(Exception):
    def __init__(self, line: int, field: str | None, problem: str, reason: str) -> None:
        super().__init__(problem)
        self.line, self.field, self.problem, self.reason = line, field, problem, reason


def _check_block(path: Path, block: list[str], first_line: int, counts: list[int]) -> str:
    """The block's learner id; raises :class:`_BlockProblem` for a bad header or unequal lengths."""
    n, fields = len(block), _FIELDS[len(block)]
    head = [h.strip() for h in block[0].split(",")]
    first_seq = f"{fields[0]} (line {first_line + 1}) has {counts[0]}"
    if len(head) == 2 and head[1]:
        learner_id = head[1]
    elif len(head) == 1 and head[0].isdigit():
        # Statics-style header: a length and no id, so the id is the block's place in its file
        learner_id = f"{path.stem}#{(first_line - 1) // n + 1}"
        if int(head[0]) != counts[0]:
            raise _BlockProblem(first_line, "length", f"says {head[0]} interactions but {first_seq}", "length_mismatch")
    else:
        raise _BlockProblem(
            first_line,
            "header",
            f"must be 'index,learner_id' or a sequence length, got {block[0][:60]!r}",
            "bad_header",
        )
    for k in range(1, n - 1):
        if counts[k] != counts[0]:
            raise _BlockProblem(
                first_line + 1 + k,
                fields[k],
                f"has {counts[k]} values but {first_seq} (learner {learner_id!r}, block starting at line {first_line})",
                "length_mismatch",
            )
    return learner_id


def _to_ints(lines: list[str]) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Integers of comma-joined lines; ``bad`` marks tokens that are not integers (value 0),
    including integers beyond 64 bits (no id or response is that long)."""
    tokens = [t for line in lines for t in _tokens(line)]
    try:
        return np.array(tokens, dtype=np.int64), tokens, np.zeros(len(tokens), dtype=bool)
    except (ValueError, OverflowError):  # slow path only for broken files: find every bad token
        values, bad = np.zeros(len(tokens), dtype=np.int64), np.zeros(len(tokens), dtype=bool)
        for i, t in enumerate(tokens):
            try:
                values[i] = int(t)
            except (ValueError, OverflowError):
                bad[i] = True
        return values, tokens, bad


def _convert(parser: _Parser, fb: _FileBlocks, file_index: int, n: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Value columns of one file and the mask of positions to keep; value errors go to ``parser``."""
    offsets = np.concatenate([[0], np.cumsum(fb.counts)]).astype(np.int64)
    keep = np.ones(int(offsets[-1]), dtype=bool)
    columns = []
    for k, fname in enumerate(_FIELDS[n]):
        values, tokens, bad = _to_ints(fb.columns[k])
        if fname == "responses":
            bad |= (values != 0) & (values != 1)
            problem = "must be 0 or 1, got {tok!r} (value {pos} of {count})"
            reason = "response_not_binary"
        else:
            problem = "must be an integer id, got {tok!r} (value {pos} of {count})"
            reason = "id_not_integer"
        # a position is one row: it is skipped (and counted) once, for its first bad value
        for pos in np.flatnonzero(bad & keep):
            b = int(np.searchsorted(offsets, pos, side="right") - 1)
            line = fb.response_lines[b] - (n - 2 - k)
            msg = problem.format(tok=tokens[pos], pos=int(pos - offsets[b]) + 1, count=fb.counts[b])
            parser.errors.append((file_index, line, DataError(fb.name, line, fname, msg), reason, 1))
        keep &= ~bad
        columns.append(values)
    return columns, keep


def load_akt(
    paths: str | Path | Sequence[str | Path],
    *,
    lines_per_learner: int | None = None,
    collapse: bool | None = None,
    on_conflict: OnConflict | None = None,
    on_error: OnError = "raise",
) -> Loaded:
    """Load one or more AKT line-format files into one table.

    Parameters
    ----------
    paths : path or sequence of paths
        Files of one layout (e.g. a fold's train and valid files). A learner id may appear once.
    lines_per_learner : {3, 4}, optional
        Layout; detected from the first blocks when omitted.
    collapse : bool, optional
        Which consecutive rows of one learner on one item become one attempt (see the module
        doc). ``None`` (default): multi-skill expansions only, so re-attempts stay attempts.
        ``False``: none, every row is an attempt. ``True``: every consecutive repeat.
    on_conflict : {"first", "split", "error"}, optional
        What to do with a group of rows that would be merged but disagree on the response.
        Default: keep each row as an attempt (``collapse=None``) or ``"first"``
        (``collapse=True``). ``"first"`` merges them with the first row's response, ``"split"``
        starts a new attempt where the response changes, ``"error"`` raises :class:`DataError`.
        Conflicts are counted in the report either way.
    on_error : {"raise", "skip"}
        A malformed block (header, lengths) or value raises :class:`DataError`, or is skipped
        and counted in the report (a bad value skips that position, a bad block the block).

    Returns
    -------
    Loaded
        ``(table, report)``.

    Examples
    --------
    >>> table, report = load_akt("data/kt_sample/assist2009_pid/assist2009_pid_train1_head150.csv")
    >>> report.rows_read, report.duplicates_collapsed, report.repeats_kept, table.n_attempts
    (10982, 1755, 3, 9227)
    """
    t0 = time.perf_counter()
    files = path_list(paths)
    if lines_per_learner not in (None, 3, 4):
        raise ValueError(f"lines_per_learner must be 3 or 4, got {lines_per_learner!r}")
    if collapse not in (None, True, False):
        raise ValueError(f"collapse must be None, True or False, got {collapse!r}")
    if on_conflict not in (None, "first", "split", "error"):
        raise ValueError(f"on_conflict must be 'first', 'split' or 'error', got {on_conflict!r}")
    report = LoadReport("akt", sources=[str(p) for p in files], on_error=on_error)
    parser = _Parser(lines_per_learner, report)
    parsed = []
    for i, path in enumerate(files):
        parser.file_index = i
        parsed.append(parser.read_file(path))
    n = parser.n or 4
    converted = [_convert(parser, fb, i, n) for i, fb in enumerate(parsed)]
    for _, _, error, reason, rows in sorted(parser.errors, key=lambda e: (e[0], e[1])):
        report.reject(error, reason, rows)

    raw, position = _raw_rows(parsed, converted, n)
    new = _attempt_starts(raw, position, collapse, on_conflict, report)
    if n == 3 and collapse is not True and report.repeats_kept:
        report.warn(
            f"{report.repeats_kept} consecutive repeats of the same id were kept as separate attempts "
            "(3-line ids may be skills, as in ASSIST2015); pass collapse=True only if a repeat is a "
            "re-delivery of the same answer"
        )
    # the groups are final: assembly orders the rows (file order, there are no times) and counts
    table = assemble_table(_one_row_per_attempt(raw, new), report, collapse=False)
    report.duplicates_collapsed = len(raw.item) - table.n_attempts
    report.seconds = time.perf_counter() - t0
    return Loaded(table, report)


_MERGE_RULES = {
    None: "multi-skill expansions (a multi-skill problem's consecutive rows, one per skill, with one response)",
    True: "every consecutive repeat of an item (collapse=True)",
    False: "off",
}
_CONFLICT_RULES = {
    "separate": "kept one attempt per row (rows that disagree are not copies of one answer)",
    "first": "merged into one attempt with the first row's response",
    "split": "a new attempt where the response changes",
    "error": "raise DataError",
}


def _attempt_starts(
    raw: RawRows, position: np.ndarray, collapse: bool | None, on_conflict: OnConflict | None, report: LoadReport
) -> np.ndarray:
    """Boolean (R,): True where a row starts an attempt; fills the merge counts of ``report``.

    Rows come one learner after another in file order; ``position`` is each row's place in its
    learner's line, so that rows around a skipped value are not taken for neighbours.
    """
    n_rows = len(raw.item)
    repeat = np.zeros(n_rows, dtype=bool)
    repeat[1:] = (
        (raw.learner[1:] == raw.learner[:-1]) & (raw.item[1:] == raw.item[:-1]) & (position[1:] == position[:-1] + 1)
    )
    if collapse is None:
        joins = _skill_expansion_joins(raw, repeat)
    else:
        joins = repeat.copy() if collapse else np.zeros(n_rows, dtype=bool)
    policy = on_conflict or ("first" if collapse else "separate")
    conflicted = _record_conflicts(raw, position, joins, policy, report)
    if policy == "separate":
        joins &= ~conflicted
    elif policy == "split":
        joins[1:] &= raw.correct[1:] == raw.correct[:-1]
    report.merge_rule = _MERGE_RULES[collapse]
    report.conflict_rule = _CONFLICT_RULES[policy] if collapse is not False else ""
    report.repeats_kept = int((repeat & ~joins).sum())
    return ~joins


def _skill_expansion_joins(raw: RawRows, repeat: np.ndarray) -> np.ndarray:
    """Boolean (R,): the row continues a multi-skill expansion begun on an earlier row.

    Outcomes are not looked at here (see :func:`_record_conflicts`).
    """
    skill = raw.standard_indices  # AKT rows carry exactly one skill
    width = max(len(raw.standard_ids), 1)
    pairs = np.unique(raw.item * width + skill)
    skills_per_item = np.bincount(pairs // width, minlength=len(raw.item_ids))
    joins = repeat & (skills_per_item[raw.item] > 1)
    skills = skill.tolist()
    seen: set[int] = set()
    for i in np.flatnonzero(joins).tolist():  # rows of multi-skill runs only: a few per cent
        if not joins[i - 1]:  # row i - 1 starts the group
            seen = {skills[i - 1]}
        if skills[i] in seen:  # the skill again: the problem's next answer
            joins[i] = False
            seen = {skills[i]}
        else:
            seen.add(skills[i])
    return joins


def _record_conflicts(
    raw: RawRows, position: np.ndarray, joins: np.ndarray, policy: str, report: LoadReport
) -> np.ndarray:
    """Count the groups of ``joins`` whose responses disagree; boolean (R,) of their rows.

    Raises the first conflict as :class:`DataError` when ``policy`` is ``"error"``.
    """
    if not joins.any():
        return np.zeros(len(joins), dtype=bool)
    starts = np.flatnonzero(~joins)
    ends = np.append(starts[1:], len(joins))
    disagree = np.maximum.reduceat(raw.correct, starts) != np.minimum.reduceat(raw.correct, starts)
    report.outcome_conflicts = int(disagree.sum())
    for g in np.flatnonzero(disagree)[:3].tolist():
        error = _conflict_error(raw, position, int(starts[g]), int(ends[g]))
        if policy == "error":
            raise error
        report.add_example("outcome_conflict", str(error))
    return np.repeat(disagree, ends - starts)


def _conflict_error(raw: RawRows, position: np.ndarray, lo: int, hi: int) -> DataError:
    skills = ", ".join(raw.standard_ids[s] for s in raw.standard_indices[lo:hi])
    shown = ", ".join(f"{v:g}" for v in raw.correct[lo:hi])
    return DataError(
        raw.source_names[raw.source[lo]],
        int(raw.line[lo]),
        "responses",
        f"of learner {raw.learner_ids[raw.learner[lo]]!r} on item {raw.item_ids[raw.item[lo]]!r} "
        f"(values {position[lo] + 1}-{position[hi - 1] + 1}, skills {skills}) disagree ({shown})",
    )


def _one_row_per_attempt(raw: RawRows, new: np.ndarray) -> RawRows:
    """Rows whose ``new`` is False joined to the row before: its standards, the first response."""
    first = np.flatnonzero(new)
    bounds = np.append(first, len(raw.item))
    return RawRows(
        learner=raw.learner[first],
        item=raw.item[first],
        standard_offsets=raw.standard_offsets[bounds],
        standard_indices=raw.standard_indices,
        correct=raw.correct[first],
        timestamp=raw.timestamp[first],
        line=raw.line[first],
        source=raw.source[first],
        learner_ids=raw.learner_ids,
        item_ids=raw.item_ids,
        standard_ids=raw.standard_ids,
        source_names=raw.source_names,
    )


def _raw_rows(
    parsed: list[_FileBlocks], converted: list[tuple[list[np.ndarray], np.ndarray]], n: int
) -> tuple[RawRows, np.ndarray]:
    """The kept rows of every file, and each row's 0-based position in its learner's line."""
    learner, lines, sources, items, stds, responses, positions = [], [], [], [], [], [], []
    learner_ids: list[str] = []
    for i, (fb, (columns, keep)) in enumerate(zip(parsed, converted)):
        counts = np.array(fb.counts, dtype=np.int64)
        learner.append((np.repeat(np.arange(len(counts)), counts) + len(learner_ids))[keep])
        lines.append(np.repeat(np.array(fb.response_lines, dtype=np.int64), counts)[keep])
        positions.append((np.arange(len(keep)) - np.repeat(np.cumsum(counts) - counts, counts))[keep])
        sources.append(np.full(int(keep.sum()), i, dtype=np.int16))
        items.append(columns[0][keep])
        stds.append(columns[-2][keep])  # 4-line: skill ids; 3-line: the id itself
        responses.append(columns[-1][keep])
        learner_ids.extend(fb.learner_ids)
    item_values, item_codes = np.unique(np.concatenate(items), return_inverse=True)
    std_values, std_codes = np.unique(np.concatenate(stds), return_inverse=True)
    n_rows = len(item_codes)
    raw = RawRows(
        learner=np.concatenate(learner),
        item=item_codes.astype(np.int64),
        standard_offsets=np.arange(n_rows + 1, dtype=np.int64),
        standard_indices=std_codes.astype(np.int64),
        correct=np.concatenate(responses).astype(np.float32),
        timestamp=np.full(n_rows, np.nan),
        line=np.concatenate(lines),
        source=np.concatenate(sources),
        learner_ids=learner_ids,
        item_ids=[str(v) for v in item_values],
        standard_ids=[str(v) for v in std_values],
        source_names=[fb.name for fb in parsed],
    )
    return raw, np.concatenate(positions).astype(np.int64)
