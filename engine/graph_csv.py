"""Load and write a standards graph as a folder of CSV files.

The folder holds ``standards.csv`` (one row per standard), ``prerequisites.csv``
(``prerequisite,dependent``) and optionally ``related.csv`` (``a,b``), with the columns of the
bundled Coherence Map. Every error names the file, the line and the column at fault.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

from engine.graph import (
    GraphError,
    StandardsGraph,
    UnknownStandardError,
    grade_number,
    standard_from_fields,
    standard_identifier,
)

__all__ = ["STANDARD_COLUMNS", "load_csv_graph", "write_csv_graph"]

#: columns of standards.csv that map onto :class:`engine.graph.Standard` fields; others are kept
#: as attributes. Only ``code`` is required.
STANDARD_COLUMNS = (
    "code",
    "ccss_code",
    "grade",
    "grade_num",
    "domain_code",
    "domain_name",
    "cluster_code",
    "cluster_name",
    "cluster_emphasis",
    "parent_code",
    "description",
    "aliases",
    "identifier",
)
_ALIAS_SEPARATOR = ";"


def _rows(path: Path, required: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield (line number, row) pairs; line numbers count physical lines as an editor shows them."""
    try:
        fh = path.open(newline="", encoding="utf-8-sig")
    except FileNotFoundError:
        raise GraphError(f"{path}: file not found") from None
    with fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        missing = [c for c in required if c not in header]
        if missing:
            raise GraphError(
                f"{path.name}: missing column(s) {', '.join(missing)}; expected a header with "
                f"{', '.join(required)} (found: {', '.join(header) or 'an empty file'})"
            )
        line = reader.line_num
        for row in reader:
            if None in row:
                raise GraphError(f"{path.name} line {line + 1}: more fields than the header has")
            yield line + 1, row
            line = reader.line_num


def _read_standards(path: Path) -> tuple[list, dict[str, int]]:
    fields_by_code: dict[str, dict] = {}
    lines: dict[str, int] = {}
    for line, row in _rows(path, ("code",)):
        code = (row.get("code") or "").strip()
        if not code:
            raise GraphError(f"{path.name} line {line}: column 'code' is empty; every standard needs a code")
        if code in lines:
            raise GraphError(
                f"{path.name} line {line}: duplicate standard code {code!r} (first defined on line {lines[code]})"
            )
        lines[code] = line
        grade = (row.get("grade") or "").strip() or None
        raw_num = (row.get("grade_num") or "").strip()
        grade_num: int | None
        if raw_num:
            try:
                grade_num = int(raw_num)
            except ValueError:
                raise GraphError(
                    f"{path.name} line {line}: column 'grade_num' must be an integer, got {raw_num!r}"
                ) from None
        else:
            grade_num = grade_number(grade)
        aliases = [a.strip() for a in (row.get("aliases") or "").split(_ALIAS_SEPARATOR)]
        aliases.append(row.get("ccss_code") or "")
        fields_by_code[code] = {
            "description": row.get("description"),
            "grade": grade,
            "grade_num": grade_num,
            "domain_code": row.get("domain_code"),
            "domain_name": row.get("domain_name"),
            "cluster_code": row.get("cluster_code"),
            "cluster_name": row.get("cluster_name"),
            "cluster_emphasis": row.get("cluster_emphasis"),
            "parent": row.get("parent_code"),
            "aliases": tuple(dict.fromkeys(a.strip() for a in aliases if a and a.strip())),
            "identifier": (row.get("identifier") or "").strip() or standard_identifier(code),
            "attributes": {k: v for k, v in row.items() if k not in STANDARD_COLUMNS and v not in (None, "")},
        }
    for code, fields in fields_by_code.items():
        parent = (fields["parent"] or "").strip()
        if parent and parent not in fields_by_code:
            raise GraphError(f"{path.name} line {lines[code]}: column 'parent_code' names unknown standard {parent!r}")
    return [standard_from_fields(code, f) for code, f in fields_by_code.items()], lines


def _read_pairs(path: Path, columns: tuple[str, str], graph_codes: StandardsGraph) -> list[tuple[str, str, int]]:
    pairs = []
    for line, row in _rows(path, columns):
        ends = []
        for column in columns:
            raw = (row.get(column) or "").strip()
            if not raw:
                raise GraphError(f"{path.name} line {line}: column {column!r} is empty; expected a standard code")
            try:
                ends.append(graph_codes.resolve(raw))
            except UnknownStandardError as exc:
                raise GraphError(
                    f"{path.name} line {line}: column {column!r} names unknown standard {raw!r} "
                    f"(not in standards.csv){'; did you mean ' + ', '.join(exc.suggestions) + '?' if exc.suggestions else ''}"
                ) from None
        if ends[0] == ends[1]:
            raise GraphError(f"{path.name} line {line}: self-loop, {ends[0]!r} is linked to itself")
        pairs.append((ends[0], ends[1], line))
    return pairs


def load_csv_graph(folder: str | Path) -> StandardsGraph:
    """Load a graph from a folder of CSV files.

    Raises
    ------
    GraphError
        naming the file, line and column at fault (missing columns, duplicate codes, unknown
        codes, self-loops) or listing the codes on a prerequisite cycle.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise GraphError(f"{folder}: not a folder; expected standards.csv and prerequisites.csv in it")
    standards, _ = _read_standards(folder / "standards.csv")
    # A graph with no edges yet gives alias resolution to the edge readers.
    nodes_only = StandardsGraph(standards, ())
    edges = _read_pairs(folder / "prerequisites.csv", ("prerequisite", "dependent"), nodes_only)
    warnings = []
    seen: dict[tuple[str, str], int] = {}
    for a, b, line in edges:
        if (a, b) in seen:
            warnings.append(f"prerequisites.csv line {line}: repeats the edge {a} -> {b} of line {seen[(a, b)]}")
        seen.setdefault((a, b), line)
    related_path = folder / "related.csv"
    related = _read_pairs(related_path, ("a", "b"), nodes_only) if related_path.exists() else []
    try:
        return StandardsGraph(
            standards,
            list(seen),
            [(a, b) for a, b, _ in related],
            title=folder.name,
            identifier=standard_identifier(f"document/{folder.name}"),
            warnings=warnings,
        )
    except GraphError as exc:
        raise GraphError(f"{folder / 'prerequisites.csv'}: {exc}") from None


def write_csv_graph(graph: StandardsGraph, folder: str | Path) -> None:
    """Write ``graph`` as standards.csv, prerequisites.csv and related.csv in ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    extra = sorted({name for s in graph.standards.values() for name, _ in s.attributes})
    header = [*STANDARD_COLUMNS, *extra]
    with (folder / "standards.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        for std in graph.standards.values():
            attrs = dict(std.attributes)
            writer.writerow(
                [
                    std.code,
                    "",
                    std.grade or "",
                    "" if std.grade_num is None else std.grade_num,
                    std.domain_code or "",
                    std.domain_name or "",
                    std.cluster_code or "",
                    std.cluster_name or "",
                    std.cluster_emphasis or "",
                    std.parent or "",
                    std.description or "",
                    _ALIAS_SEPARATOR.join(std.aliases),
                    std.identifier or "",
                    *(attrs.get(name, "") for name in extra),
                ]
            )
    with (folder / "prerequisites.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["prerequisite", "dependent"])
        edges: list[tuple[str, str]] = sorted(
            graph.prereq.edges, key=lambda e: (graph.order_of(e[0]), graph.order_of(e[1]))
        )
        writer.writerows(edges)
    with (folder / "related.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["a", "b"])
        writer.writerows(sorted(graph.sort(pair) for pair in graph.related))
