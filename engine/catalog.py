"""The content catalog: items (activities) aligned to one or more standards.

Catalogs load from and save to CSV or JSON; every validation error names the row (CSV line or
JSON index) and the field at fault and what was expected.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from engine.graph import StandardsGraph, UnknownStandardError
from engine.textfiles import TextFileError, open_text, read_text

__all__ = [
    "Catalog",
    "CatalogError",
    "Item",
    "Modality",
    "coverage",
    "load_catalog",
    "parse_item",
    "save_catalog",
]

_LIST_SEPARATOR = ";"
_TRUE = {"1", "true", "yes", "y"}
_FALSE = {"0", "false", "no", "n", ""}


class Modality(StrEnum):
    ONLINE_PRACTICE = "online_practice"
    VIDEO = "video"
    READING = "reading"
    SMALL_GROUP = "small_group"
    TUTORING = "tutoring"
    PROJECT = "project"
    ASSESSMENT = "assessment"

    @property
    def answers(self) -> bool:
        """Whether an activity of this modality usually sends an answer (practice, a project, an
        assessment), rather than only that it was done (a video played, a page read, a lesson
        with the teacher attended): only an answer is a question, or evidence of what the learner
        knows."""
        return self not in _NO_ANSWER


_NO_ANSWER = frozenset({Modality.VIDEO, Modality.READING, Modality.SMALL_GROUP, Modality.TUTORING})


class CatalogError(ValueError):
    """A catalog row is invalid; the message names the file, row and field."""


@dataclass(frozen=True, slots=True)
class Item:
    """One activity. ``difficulty`` runs from 0 (easiest) to 1 (hardest) when known.

    ``mastery_check`` marks items that can confirm mastery (a quiz or mini-assessment);
    ``source`` says where the item came from (``generated`` for demo items made by the engine);
    a ``withdrawn`` item is no longer offered (retired content, a dead link), while the answers
    given on it still count on its standards.
    """

    id: str
    title: str
    standards: tuple[str, ...]
    modality: Modality
    duration_minutes: float
    difficulty: float | None = None
    url: str | None = None
    tags: tuple[str, ...] = ()
    language: str = "en"
    source: str | None = None
    mastery_check: bool = False
    withdrawn: bool = False

    def to_record(self) -> dict[str, Any]:
        record = asdict(self)
        record["modality"] = self.modality.value
        record["standards"] = list(self.standards)
        record["tags"] = list(self.tags)
        return record


def _fail(where: str, field: str, message: str) -> CatalogError:
    return CatalogError(f"{where}: field {field!r} {message}")


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(_LIST_SEPARATOR) if v.strip()]
    if isinstance(value, (list, tuple)):
        return [str(v).strip() for v in value if str(v).strip()]
    raise TypeError


def _number(value: Any, where: str, field: str) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise _fail(where, field, f"must be a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise _fail(where, field, f"must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise _fail(where, field, f"must be a finite number, got {value!r}")
    return number


def parse_item(record: Mapping[str, Any], where: str, graph: StandardsGraph | None = None) -> Item:
    """Validate one item record (a CSV row or a JSON object); ``where`` names it in errors.

    With ``graph``, standard codes in any spelling are resolved to the graph's codes.
    """

    def text(field: str, required: bool = False) -> str | None:
        value = record.get(field)
        if value is None or (isinstance(value, str) and not value.strip()):
            if required:
                raise _fail(where, field, "is missing; it is required")
            return None
        if not isinstance(value, str):
            raise _fail(where, field, f"must be text, got {type(value).__name__}")
        return value.strip()

    def required_text(field: str) -> str:
        value = text(field, required=True)
        assert value is not None  # text() raises on a missing required field
        return value

    item_id = required_text("id")
    title = required_text("title")
    try:
        standards = _as_list(record.get("standards"))
    except TypeError:
        raise _fail(where, "standards", "must be a list of standard codes or a ';'-separated string") from None
    if not standards:
        raise _fail(where, "standards", "is empty; an item must be aligned to at least one standard")
    if graph is not None:
        resolved = []
        for code in standards:
            try:
                resolved.append(graph.resolve(code))
            except UnknownStandardError as exc:
                raise _fail(where, "standards", f"names {exc}") from None
        standards = list(dict.fromkeys(resolved))
    raw_modality = required_text("modality")
    try:
        modality = Modality(raw_modality.lower())
    except ValueError:
        raise _fail(
            where, "modality", f"is {raw_modality!r}; expected one of {', '.join(m.value for m in Modality)}"
        ) from None
    duration = _number(record.get("duration_minutes"), where, "duration_minutes")
    if duration is None:
        raise _fail(where, "duration_minutes", "is missing; it is required (minutes, > 0)")
    if duration <= 0:
        raise _fail(where, "duration_minutes", f"must be > 0, got {duration:g}")
    difficulty = _number(record.get("difficulty"), where, "difficulty")
    if difficulty is not None and not 0.0 <= difficulty <= 1.0:
        raise _fail(where, "difficulty", f"must be between 0 (easiest) and 1 (hardest), got {difficulty:g}")
    try:
        tags = _as_list(record.get("tags"))
    except TypeError:
        raise _fail(where, "tags", "must be a list of words or a ';'-separated string") from None
    return Item(
        id=item_id,
        title=title,
        standards=tuple(standards),
        modality=modality,
        duration_minutes=duration,
        difficulty=difficulty,
        url=text("url"),
        tags=tuple(tags),
        language=text("language") or "en",
        source=text("source"),
        mastery_check=_flag(record, "mastery_check", where),
        withdrawn=_flag(record, "withdrawn", where),
    )


def _flag(record: Mapping[str, Any], field: str, where: str) -> bool:
    """A true/false field (a JSON boolean, or a CSV cell's word); absent, null or empty is false."""
    value = record.get(field)
    if value is None:
        return False
    if isinstance(value, str):
        word = value.strip().lower()
        if word not in _TRUE | _FALSE:
            raise _fail(where, field, f"must be true or false, got {value!r}")
        return word in _TRUE
    if not isinstance(value, bool):
        raise _fail(where, field, f"must be true or false, got {value!r}")
    return value


class Catalog:
    """Items by id, with an index from each standard to the items aligned to it."""

    def __init__(self, items: Iterable[Item] = ()):
        self.items: dict[str, Item] = {}
        self._by_standard: dict[str, list[str]] = {}
        for item in items:
            self.add(item)

    def add(self, item: Item) -> None:
        if item.id in self.items:
            raise CatalogError(f"duplicate item id {item.id!r}")
        self.upsert(item)

    def upsert(self, item: Item) -> None:
        """Insert or replace an item (replacing updates the standard index)."""
        old = self.items.get(item.id)
        if old is not None:
            for code in old.standards:
                self._by_standard[code].remove(item.id)
        self.items[item.id] = item
        for code in item.standards:
            self._by_standard.setdefault(code, []).append(item.id)

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[Item]:
        return iter(self.items.values())

    def __contains__(self, item_id: object) -> bool:
        return item_id in self.items

    def __getitem__(self, item_id: str) -> Item:
        return self.items[item_id]

    def for_standard(self, code: str) -> list[Item]:
        """Items aligned directly to ``code``."""
        return [self.items[i] for i in self._by_standard.get(code, ())]

    def standards_of(self, item_id: str, received: tuple[str, ...]) -> tuple[str, ...]:
        """The standards an answer on ``item_id`` counts on: the item's as the catalog has them
        now (an item moved to other standards, an activity aligned after it was answered, a
        withdrawn item), else those it was ``received`` with. Every reading of an answer's
        standards goes through here: folds, exports, a learner's evidence."""
        item = self.items.get(item_id)
        return received if item is None else item.standards

    @property
    def standards(self) -> set[str]:
        return {code for code, ids in self._by_standard.items() if ids}


# ---------------------------------------------------------------------------- files
_CSV_FIELDS = (
    "id",
    "title",
    "standards",
    "modality",
    "duration_minutes",
    "difficulty",
    "url",
    "tags",
    "language",
    "source",
    "mastery_check",
    "withdrawn",
)


def _csv_records(path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    try:
        with open_text(path) as fh:
            reader = csv.DictReader(fh)
            missing = [
                f
                for f in ("id", "title", "standards", "modality", "duration_minutes")
                if f not in (reader.fieldnames or [])
            ]
            if missing:
                raise CatalogError(
                    f"{path.name}: missing column(s) {', '.join(missing)}; expected a header with {', '.join(_CSV_FIELDS)}"
                )
            line = reader.line_num
            for row in reader:
                yield f"{path.name} line {line + 1}", row
                line = reader.line_num
    except TextFileError as exc:
        raise CatalogError(str(exc)) from None


def _json_records(path: Path) -> Iterator[tuple[str, Mapping[str, Any]]]:
    try:
        data = json.loads(read_text(path))
    except TextFileError as exc:
        raise CatalogError(str(exc)) from None
    except json.JSONDecodeError as exc:
        raise CatalogError(f"{path.name}: not valid JSON: {exc}") from None
    items = data.get("items") if isinstance(data, Mapping) else data
    if not isinstance(items, list):
        raise CatalogError(f"{path.name}: expected a list of items or an object with an 'items' list")
    for index, record in enumerate(items):
        where = f"{path.name} items[{index}]"
        if not isinstance(record, Mapping):
            raise CatalogError(f"{where}: expected an object, got {type(record).__name__}")
        yield where, record


def load_catalog(path: str | Path, graph: StandardsGraph | None = None) -> Catalog:
    """Load a catalog from ``.csv`` or ``.json``; with ``graph``, check every standard code.

    Raises
    ------
    CatalogError
        naming the file, the row (line or index) and the field at fault.
    """
    path = Path(path)
    if not path.is_file():
        raise CatalogError(f"{path}: file not found")
    if path.suffix.lower() == ".csv":
        records: Iterator = _csv_records(path)
    elif path.suffix.lower() == ".json":
        records = _json_records(path)
    else:
        raise CatalogError(f"{path}: unknown catalog format {path.suffix!r}; expected .csv or .json")
    catalog = Catalog()
    first_seen: dict[str, str] = {}
    for where, record in records:
        item = parse_item(record, where, graph)
        if item.id in first_seen:
            raise _fail(where, "id", f"repeats item id {item.id!r} (first at {first_seen[item.id]})")
        first_seen[item.id] = where
        catalog.add(item)
    return catalog


def save_catalog(catalog: Catalog, path: str | Path) -> None:
    """Save to ``.csv`` (lists joined with ';') or ``.json`` (``{"items": [...]}``)."""
    path = Path(path)
    records = [item.to_record() for item in catalog]
    if path.suffix.lower() == ".json":
        path.write_text(json.dumps({"items": records}, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        return
    if path.suffix.lower() != ".csv":
        raise CatalogError(f"{path}: unknown catalog format {path.suffix!r}; expected .csv or .json")
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=_CSV_FIELDS)
        writer.writeheader()
        for record in records:
            record["standards"] = _LIST_SEPARATOR.join(record["standards"])
            record["tags"] = _LIST_SEPARATOR.join(record["tags"])
            record["difficulty"] = "" if record["difficulty"] is None else record["difficulty"]
            record["mastery_check"] = "true" if record["mastery_check"] else "false"
            record["withdrawn"] = "true" if record["withdrawn"] else "false"
            writer.writerow({k: ("" if v is None else v) for k, v in record.items()})


def coverage(catalog: Catalog, graph: StandardsGraph) -> dict[str, dict[str, int]]:
    """For each standard of the graph (source order): item count per modality.

    Items aligned to a parent standard also count for its parts, since practising the whole
    practises each part. Withdrawn items are not offered, so they do not count.
    """
    report: dict[str, dict[str, int]] = {}
    for code in graph.internal_codes:
        counts: dict[str, int] = {}
        for owner in (code, *graph.lineage(code)):
            for item in catalog.for_standard(owner):
                if not item.withdrawn:
                    counts[item.modality.value] = counts.get(item.modality.value, 0) + 1
        report[code] = counts
    return report
