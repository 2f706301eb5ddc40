"""Loader for xAPI statements (JSON lines, or one JSON array / ``{"statements": [...]}``).

Every statement is read by :func:`engine.xapi.parse_statement`, the reader the API uses: the
same actors (``account`` names kept when they are plain ids; ``mbox``, ``mbox_sha1sum`` and
``openid`` hashed with ``tenant``), the same verbs (what each is evidence of), the same outcomes
(``result.success``, else ``score.scaled`` clamped to [0, 1], else ``raw`` out of ``max``; a
result that contradicts the verb is skipped as ``contradiction``, a statement of an anonymous
group as ``anonymous_group``: no one learner's answer) and the same standards extension
(:data:`engine.xapi.STANDARDS_EXTENSION`). Statements that are not answers (``launched``,
``experienced``, ``completed`` without a result, ``initialized``...) are skipped as
``not_evidence``. Training needs the ``timestamp`` of every answer; naive times are read as UTC
(and counted in a warning).

statement ids
    Delivery is at-least-once: a repeated ``id`` with the same content (ignoring the LRS fields
    ``stored``, ``authority``, ``version``) is skipped as ``duplicate_statement``; a repeated id
    with different content is a conflict and raises :class:`DataError` (``on_error="skip"``
    keeps the first and counts ``conflicting_statement``). ``voided`` statements remove the
    statement they point at.
"""

from __future__ import annotations

import json
import time
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path
from typing import Any

from engine.textfiles import TextFileError, read_text
from engine.xapi import STANDARDS_EXTENSION, VOIDED, StatementError, comparable, parse_statement
from training.assembly import Loaded, OnConflict, RowCollector, assemble_table
from training.load_report import DataError, LoadReport, OnError, Rejected, json_lines, path_list, unreadable

__all__ = ["STANDARDS_EXTENSION", "VOIDED_VERB", "load_xapi"]  # the first two re-exported from engine.xapi

#: extension key listing the standards (codes or CASE identifiers) an activity assesses
VOIDED_VERB = VOIDED
#: one answer: (learner, item, standards, outcome, timestamp), as RowCollector.add takes them
_Row = tuple[str, str, list[str], float, float]


def _statements(path: Path) -> tuple[str, Iterator[tuple[int, Any]]]:
    """(unit, iterator of (number, decoded statement or a JSONDecodeError))."""
    try:
        text = read_text(path)
    except TextFileError as exc:
        raise unreadable(exc) from None
    stripped = text.lstrip()
    if stripped.startswith("[") or (stripped.startswith("{") and '"statements"' in stripped[:200]):
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(path.name, exc.lineno, None, f"is not valid JSON: {exc.msg}", path=str(path)) from None
        items = doc.get("statements") if isinstance(doc, dict) else doc
        if not isinstance(items, list):
            raise DataError(path.name, None, None, "must hold a JSON array of statements", path=str(path))
        return "statement", iter(enumerate(items, start=1))

    return "line", json_lines(text)


def _parse(st: Any, key: str, verbs: Collection[str] | None, counts: dict[str, int], tenant: str) -> _Row | str:
    """The row of one statement, or why it is not an answer (the shared reader: engine.xapi)."""
    try:
        # read as the API reads what an LRS forwards: what xAPI allows is no error; a group's
        # statement and one whose result contradicts its verb are no one's answer, so skipped
        parsed = parse_statement(st, tenant=tenant, standards_extension=key, context_activities=False, lenient=True)
    except StatementError as exc:
        raise Rejected(exc.field, exc.problem, exc.reason) from None
    reasons = {aside.reason for aside in parsed.set_aside}
    if "bad_standards" in reasons:  # the extension is where training reads an answer's standards
        try:  # the strict reading's error: the file must be fixed
            parse_statement(st, tenant=tenant, standards_extension=key, context_activities=False)
        except StatementError as exc:
            raise Rejected(exc.field, exc.problem, exc.reason) from None
    for reason in ("anonymous_group", "contradiction"):
        if reason in reasons:
            return reason
    if parsed.kind == "void":
        return "voiding"
    if verbs is not None and parsed.verb not in verbs:
        return "verb_filtered"
    if parsed.kind != "answer":
        return "not_evidence"  # exposure (launched, experienced...) or ignored (initialized...)
    if parsed.timestamp is None:
        raise Rejected("timestamp", "is missing; training needs the time of every answer", "bad_timestamp")
    counts["clamped"] += parsed.clamped
    counts["naive"] += parsed.naive_time
    assert parsed.outcome is not None  # an answer always has one
    return parsed.learner, parsed.item, list(parsed.standards), parsed.outcome, parsed.timestamp


def _get(obj: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def load_xapi(
    paths: str | Path | Sequence[str | Path],
    *,
    standards_extension: str = STANDARDS_EXTENSION,
    verbs: Collection[str] | None = None,
    tenant: str = "",
    collapse: bool = True,
    on_conflict: OnConflict = "first",
    on_error: OnError = "raise",
) -> Loaded:
    """Load xAPI statements (see the module docstring for every convention).

    Parameters
    ----------
    paths : path or sequence of paths
        JSON-lines files (one statement per line) or JSON documents with a statement array.
    standards_extension : str
        Extension key holding the standards of an activity.
    verbs : collection of str, optional
        Keep only statements with these ``verb.id`` (default: every answer).
    tenant : str
        The salt of hashed learner ids (the API uses the tenant's name; use it to match ids).
    collapse, on_conflict
        Consecutive repeats of one activity (see :func:`training.assembly.assemble_table`).
    on_error : {"raise", "skip"}
        Malformed statements and conflicting duplicate ids raise :class:`DataError` or are
        skipped and counted by reason.

    Examples
    --------
    >>> table, report = load_xapi("statements.jsonl")               # doctest: +SKIP
    >>> report.skipped["duplicate_statement"]                        # doctest: +SKIP
    2
    """
    t0 = time.perf_counter()
    files = path_list(paths)
    report = LoadReport("xapi", sources=[str(p) for p in files], on_error=on_error)
    reader = _StatementReader(report, standards_extension, verbs, tenant)
    for index, path in enumerate(files):
        reader.read(path, index)
    collector = reader.collect([p.name for p in files])
    table = assemble_table(collector.rows(), report, collapse=collapse, on_conflict=on_conflict)
    report.seconds = time.perf_counter() - t0
    return Loaded(table, report)


class _StatementReader:
    """Parses statements file by file; voiding is applied at the end (a void may come first)."""

    def __init__(
        self, report: LoadReport, standards_extension: str, verbs: Collection[str] | None, tenant: str = ""
    ) -> None:
        self.tenant = tenant
        self.report = report
        self.key = standards_extension
        self.verbs = verbs
        self.counts = {"clamped": 0, "naive": 0, "no_id": 0}
        self.seen: dict[str, tuple[str, str]] = {}  # statement id -> (comparable content, "file line N")
        self.voided: set[str] = set()
        self.rows: list[tuple[str | None, str, int, int, _Row]] = []  # (id, where, line, file index, row)

    def read(self, path: Path, index: int) -> None:
        if not path.exists():
            raise DataError(path.name, None, None, "file not found", path=str(path))
        unit, statements = _statements(path)
        for number, st in statements:
            self.report.rows_read += 1
            where = f"{path.name} {unit} {number}"
            try:
                self._one(st, where, number, index)
            except Rejected as r:
                error = DataError(path.name, number, r.field, r.problem, path=str(path), unit=unit)
                self.report.reject(error, r.reason)

    def _one(self, st: Any, where: str, number: int, index: int) -> None:
        if isinstance(st, json.JSONDecodeError):
            raise Rejected(None, f"is not valid JSON: {st.msg} (column {st.colno})", "bad_json")
        sid = st.get("id") if isinstance(st, dict) else None
        if not isinstance(sid, str):
            sid = None
            self.counts["no_id"] += 1
        elif _is_repeat(sid, st, self.seen, where):
            self.report.skip("duplicate_statement", f"{where}: id {sid}")
            return
        parsed = _parse(st, self.key, self.verbs, self.counts, self.tenant)
        if parsed == "voiding":
            self.voided.add(str(_get(st, "object", "id")))
            self.report.skip("voiding_statement")
        elif isinstance(parsed, str):
            self.report.skip(parsed, where)
        else:
            self.rows.append((sid, where, number, index, parsed))

    def collect(self, source_names: list[str]) -> RowCollector:
        """The answers that were not voided, plus the aggregated warnings."""
        collector = RowCollector()
        current = -1
        for sid, where, number, index, row in self.rows:
            if sid in self.voided:
                self.report.skip("voided", f"{where}: id {sid}")
                continue
            while current < index:  # keep source numbering aligned with the file list
                current += 1
                collector.start_source(source_names[current])
            collector.add(*row, line=number)
        if self.counts["clamped"]:
            self.report.warn(f"{self.counts['clamped']} negative result.score.scaled values were clamped to 0")
        if self.counts["naive"]:
            self.report.warn(f"{self.counts['naive']} timestamps had no time zone and were read as UTC")
        if self.counts["no_id"]:
            self.report.warn(f"{self.counts['no_id']} statements without an id could not be de-duplicated")
        return collector


def _is_repeat(sid: str, st: dict[str, Any], seen: dict[str, tuple[str, str]], where: str) -> bool:
    """True for an identical re-delivery; raises :class:`Rejected` for a conflicting one."""
    content = comparable(st)
    if sid not in seen:
        seen[sid] = (content, where)
        return False
    if seen[sid][0] == content:
        return True
    raise Rejected(
        "id", f"{sid!r} was already used at {seen[sid][1]} by a different statement", "conflicting_statement"
    )
