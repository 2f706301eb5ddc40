"""Loader for IMS Caliper events: JSON lines of envelopes or events, or one JSON document (an
envelope, an event, or a list of either), as sensors send them and event stores export them.

Every event is read by :func:`engine.caliper.parse_event`, the reader the API uses: the same
learners (a Person's ``id``, or ``learner_identifier``), activities, outcomes (a grade's
``scoreGiven / maxScore``) and event kinds (``actions``, merged over
:data:`engine.caliper.DEFAULT_ACTIONS`). An answer's skills are its activity's
``learningObjectives`` (their ids; the name of one without an id). What the API does not fold is
skipped and counted: ``entity`` (an envelope's described entities), ``not_evidence`` (events the
actions do not read, answers without their grade, a grade without a usable score),
``no_learner`` (a grade whose Attempt names no Person). Delivery is at-least-once: a repeated
event ``id`` (the content names an event without one, as in Caliper 1.0) with the same content
is skipped as ``duplicate_event``; with other content it is a conflict and raises
:class:`DataError` (``on_error="skip"`` keeps the first and counts ``conflicting_event``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from engine.caliper import DEFAULT_ACTIONS, ENTITY, parse_event, skipped
from engine.textfiles import TextFileError, read_text
from engine.xapi import StatementError, comparable
from training.assembly import Loaded, OnConflict, RowCollector, assemble_table
from training.load_report import DataError, LoadReport, OnError, Rejected, json_lines, path_list, unreadable

__all__ = ["load_caliper"]


def _documents(path: Path) -> tuple[str, Iterator[tuple[int, Any]]]:
    """(unit, iterator of (number, decoded envelope or event, or a JSONDecodeError)): a file that
    is one JSON document is read whole, anything else as JSON lines."""
    try:
        text = read_text(path)
    except TextFileError as exc:
        raise unreadable(exc) from None
    if text.lstrip().startswith(("{", "[")):
        try:
            doc = json.loads(text)
        except json.JSONDecodeError:
            doc = None  # JSON lines, or a broken document: read line by line, errors by line
        if isinstance(doc, list):
            return "entry", iter(enumerate(doc, start=1))
        if isinstance(doc, dict):
            return "document", iter([(1, doc)])

    return "line", json_lines(text)


def load_caliper(
    paths: str | Path | Sequence[str | Path],
    *,
    tenant: str = "",
    actions: Mapping[str, str] | None = None,
    learner_identifier: str = "id",
    collapse: bool = True,
    on_conflict: OnConflict = "first",
    on_error: OnError = "raise",
) -> Loaded:
    """Load Caliper events (see the module docstring for every convention).

    Parameters
    ----------
    paths : path or sequence of paths
        JSON-lines files (an envelope or an event per line) or JSON documents.
    tenant : str
        The salt of hashed learner ids (the API uses the tenant's name; use it to match ids).
    actions, learner_identifier
        As ``[caliper]`` configures the API (see :mod:`engine.caliper`).
    collapse, on_conflict
        Consecutive repeats of one activity (see :func:`training.assembly.assemble_table`).
    on_error : {"raise", "skip"}
        Malformed events and conflicting duplicate ids raise :class:`DataError` or are skipped
        and counted by reason.
    """
    t0 = time.perf_counter()
    files = path_list(paths)
    report = LoadReport("caliper", sources=[str(p) for p in files], on_error=on_error)
    reader = _EventReader(report, tenant, {**DEFAULT_ACTIONS, **(actions or {})}, learner_identifier)
    collector = RowCollector()
    for path in files:
        collector.start_source(path.name)
        reader.read(path, collector)
    if reader.clamped:
        report.warn(f"{reader.clamped} scores above their maximum (extra credit) were read as full marks")
    table = assemble_table(collector.rows(), report, collapse=collapse, on_conflict=on_conflict)
    report.seconds = time.perf_counter() - t0
    return Loaded(table, report)


class _EventReader:
    def __init__(self, report: LoadReport, tenant: str, actions: Mapping[str, str], learner_identifier: str) -> None:
        self.report, self.tenant, self.actions, self.identifier = report, tenant, actions, learner_identifier
        self.seen: dict[str, tuple[str, str]] = {}  # event id -> (content, where)
        self.clamped = 0

    def read(self, path: Path, collector: RowCollector) -> None:
        if not path.exists():
            raise DataError(path.name, None, None, "file not found", path=str(path))
        unit, documents = _documents(path)
        for number, doc in documents:
            if isinstance(doc, dict) and isinstance(doc.get("data"), list) and "sensor" in doc:
                entries = [(f"data[{j}]", event) for j, event in enumerate(doc["data"])]  # an envelope
            else:
                entries = [("", doc)]
            for inner, event in entries:
                self.report.rows_read += 1
                where = f"{path.name} {unit} {number}" + (f" {inner}" if inner else "")
                try:
                    row = self._one(event, inner or "event", where)
                except Rejected as r:
                    field = r.field
                    if not inner and field is not None:  # a bare event: its own fields
                        field = None if field == "event" else field.removeprefix("event.")
                    error = DataError(path.name, number, field, r.problem, path=str(path), unit=unit)
                    self.report.reject(error, r.reason)
                    continue
                if isinstance(row, str):
                    self.report.skip(row, where)
                else:
                    collector.add(*row, line=number)

    def _one(self, event: Any, where: str, location: str) -> tuple[str, str, list[str], float, float] | str:
        """The row of one event, or why it is skipped; ``where`` prefixes its fields, ``location``
        (file, line, place in the envelope) names it."""
        if isinstance(event, json.JSONDecodeError):
            raise Rejected(None, f"is not valid JSON: {event.msg} (column {event.colno})", "bad_json")
        why = skipped(event, self.actions)
        if why is not None:
            return "entity" if why.startswith((ENTITY, "not an object")) else "not_evidence"
        try:
            parsed = parse_event(
                event, tenant=self.tenant, actions=self.actions, learner_identifier=self.identifier, where=where
            )
        except StatementError as exc:
            if exc.reason == "no_learner":
                return "no_learner"
            raise Rejected(exc.field, exc.problem, exc.reason) from None
        assert parsed.id is not None  # every Caliper event is named (by its content when it has no id)
        content = comparable(event)
        first = self.seen.setdefault(parsed.id, (content, location))
        if first[1] != location:
            if first[0] == content:
                return "duplicate_event"
            raise Rejected(
                f"{where}.id", f"{parsed.id!r} was already used at {first[1]} by a different event", "conflicting_event"
            )
        if parsed.kind != "answer" or parsed.outcome is None or parsed.timestamp is None:
            return "not_evidence"
        self.clamped += parsed.clamped
        return parsed.learner, parsed.item, list(parsed.extra["objectives"]), parsed.outcome, parsed.timestamp
