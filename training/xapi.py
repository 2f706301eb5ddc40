"""Loader for xAPI statements (JSON lines, or one JSON array / ``{"statements": [...]}``).

Conventions
-----------
learner
    ``actor.account.name`` (``homePage`` is ignored: one file = one tenant); else
    ``"mbox_sha1sum:<hex>"``; else ``"openid:<uri>"``. An actor identified only by a raw
    ``mbox`` (an e-mail address) is rejected: we store pseudonymous ids only.
item
    ``object.id``.
outcome
    ``result.success`` (true/false) when present; else ``result.score.scaled`` (in [-1, 1])
    clamped to [0, 1]; else ``(raw - min) / (max - min)`` from ``result.score``. A statement
    without ``result`` (``launched``, ``experienced``...) or without any of these is not an
    answer and is skipped with reason ``no_result`` / ``no_outcome``.
standards
    The extension :data:`STANDARDS_EXTENSION` (a string or a list of strings) in
    ``object.definition.extensions``, else in ``context.extensions``; absent = no standard.
timestamp
    ``timestamp``, ISO-8601; naive times are read as UTC (and counted in a warning).
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
from typing import Any, TypeGuard

from training.assembly import Loaded, OnConflict, RowCollector, assemble_table
from training.columns import parse_timestamp
from training.load_report import DataError, LoadReport, OnError

__all__ = ["STANDARDS_EXTENSION", "VOIDED_VERB", "load_xapi"]

#: extension key listing the standards (codes or CASE identifiers) an activity assesses
STANDARDS_EXTENSION = "https://w3id.org/zpd-engine/xapi/extensions/standards"
VOIDED_VERB = "http://adlnet.gov/expapi/verbs/voided"
_LRS_FIELDS = ("stored", "authority", "version")  # set by the LRS, may differ between deliveries
#: one answer: (learner, item, standards, outcome, timestamp), as RowCollector.add takes them
_Row = tuple[str, str, list[str], float, float]


class _Reject(Exception):
    def __init__(self, field: str | None, problem: str, reason: str) -> None:
        super().__init__(problem)
        self.field, self.problem, self.reason = field, problem, reason


def _statements(path: Path) -> tuple[str, Iterator[tuple[int, Any]]]:
    """(unit, iterator of (number, decoded statement or a JSONDecodeError))."""
    text = path.read_text(encoding="utf-8-sig")
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

    def lines() -> Iterator[tuple[int, Any]]:
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    yield number, json.loads(line)
                except json.JSONDecodeError as exc:
                    yield number, exc

    return "line", lines()


def _get(obj: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def _learner(st: dict[str, Any]) -> str:
    actor = st.get("actor")
    if not isinstance(actor, dict):
        raise _Reject("actor", "must be an object", "bad_actor")
    name = _get(actor, "account", "name")
    if isinstance(name, str) and name.strip():
        return name.strip()
    if isinstance(actor.get("mbox_sha1sum"), str):
        return "mbox_sha1sum:" + actor["mbox_sha1sum"].strip().lower()
    if isinstance(actor.get("openid"), str):
        return "openid:" + actor["openid"].strip()
    if "mbox" in actor:
        raise _Reject(
            "actor", "identifies the learner only by e-mail (mbox); send account.name or mbox_sha1sum", "bad_actor"
        )
    raise _Reject("actor.account.name", "is missing; expected a pseudonymous learner id", "bad_actor")


def _is_number(value: object) -> TypeGuard[float]:
    """An int or a float, not a bool (a JSON number)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _outcome(result: dict[str, Any], counts: dict[str, int]) -> float | None:
    success = result.get("success")
    if success is not None:
        if not isinstance(success, bool):
            raise _Reject("result.success", f"must be true or false, got {success!r}", "bad_result")
        return 1.0 if success else 0.0
    score = result.get("score")
    if score is None:
        return None
    if not isinstance(score, dict):
        raise _Reject("result.score", "must be an object", "bad_result")
    scaled = score.get("scaled")
    if scaled is not None:
        if isinstance(scaled, bool) or not isinstance(scaled, (int, float)) or not -1.0 <= scaled <= 1.0:
            raise _Reject("result.score.scaled", f"must be a number in [-1, 1], got {scaled!r}", "bad_result")
        if scaled < 0:
            counts["clamped"] += 1  # a penalty score means "not correct" for learning purposes
        return float(min(max(scaled, 0.0), 1.0))
    raw, lo, hi = score.get("raw"), score.get("min"), score.get("max")
    if _is_number(raw) and _is_number(lo) and _is_number(hi) and hi > lo:
        return float(min(max((raw - lo) / (hi - lo), 0.0), 1.0))
    return None


def _standards(st: dict[str, Any], key: str) -> list[str]:
    value = _get(st, "object", "definition", "extensions", key)
    if value is None:
        value = _get(st, "context", "extensions", key)
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise _Reject(f"extensions[{key}]", f"must be a string or a list of strings, got {value!r}", "bad_standards")
    return [v.strip() for v in value]


def _parse(st: Any, key: str, verbs: Collection[str] | None, counts: dict[str, int]) -> _Row | str:
    """The row of one statement, or the reason it is not an answer."""
    if not isinstance(st, dict):
        raise _Reject(None, "must be a JSON object (a statement)", "not_a_statement")
    verb = _get(st, "verb", "id")
    if not isinstance(verb, str):
        raise _Reject("verb.id", "is missing", "bad_verb")
    if verb == VOIDED_VERB or (verbs is not None and verb not in verbs):
        return "voiding" if verb == VOIDED_VERB else "verb_filtered"
    learner = _learner(st)
    item = _get(st, "object", "id")
    if not isinstance(item, str) or not item.strip():
        raise _Reject("object.id", "is missing; expected the activity id", "bad_object")
    result = st.get("result")
    if result is None:
        return "no_result"
    if not isinstance(result, dict):
        raise _Reject("result", "must be an object", "bad_result")
    outcome = _outcome(result, counts)
    if outcome is None:
        return "no_outcome"
    stamp = st.get("timestamp", "")
    try:
        ts, naive = parse_timestamp(stamp if isinstance(stamp, str) else "?", "iso")
    except ValueError as exc:
        raise _Reject("timestamp", f"{exc}, got {stamp!r}", "bad_timestamp") from None
    counts["naive"] += naive
    return learner, item.strip(), _standards(st, key), outcome, ts


def _comparable(st: Any) -> str:
    if isinstance(st, dict):
        st = {k: v for k, v in st.items() if k not in _LRS_FIELDS}
    return json.dumps(st, sort_keys=True)


def load_xapi(
    paths: str | Path | Sequence[str | Path],
    *,
    standards_extension: str = STANDARDS_EXTENSION,
    verbs: Collection[str] | None = None,
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
        Keep only statements with these ``verb.id`` (default: any statement with a result).
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
    path_list = [Path(paths)] if isinstance(paths, (str, Path)) else [Path(p) for p in paths]
    report = LoadReport("xapi", sources=[str(p) for p in path_list], on_error=on_error)
    reader = _StatementReader(report, standards_extension, verbs)
    for index, path in enumerate(path_list):
        reader.read(path, index)
    collector = reader.collect([p.name for p in path_list])
    table = assemble_table(collector.rows(), report, collapse=collapse, on_conflict=on_conflict)
    report.seconds = time.perf_counter() - t0
    return Loaded(table, report)


class _StatementReader:
    """Parses statements file by file; voiding is applied at the end (a void may come first)."""

    def __init__(self, report: LoadReport, standards_extension: str, verbs: Collection[str] | None) -> None:
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
            except _Reject as r:
                error = DataError(path.name, number, r.field, r.problem, path=str(path), unit=unit)
                self.report.reject(error, r.reason)

    def _one(self, st: Any, where: str, number: int, index: int) -> None:
        if isinstance(st, json.JSONDecodeError):
            raise _Reject(None, f"is not valid JSON: {st.msg} (column {st.colno})", "bad_json")
        sid = st.get("id") if isinstance(st, dict) else None
        if not isinstance(sid, str):
            sid = None
            self.counts["no_id"] += 1
        elif _is_repeat(sid, st, self.seen, where):
            self.report.skip("duplicate_statement", f"{where}: id {sid}")
            return
        parsed = _parse(st, self.key, self.verbs, self.counts)
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
    """True for an identical re-delivery; raises :class:`_Reject` for a conflicting one."""
    content = _comparable(st)
    if sid not in seen:
        seen[sid] = (content, where)
        return False
    if seen[sid][0] == content:
        return True
    raise _Reject("id", f"{sid!r} was already used at {seen[sid][1]} by a different statement", "conflicting_statement")
