"""Load and write a standards graph as a folder of CSV files, or load a plain edge list.

The folder holds ``standards.csv`` (one row per standard), ``prerequisites.csv``
(``prerequisite,dependent``) and optionally ``related.csv`` (``a,b``), with the columns of the
bundled Coherence Map. ``standards.csv`` may be left out: every code of the edges then becomes a
standard, and a row may leave its prerequisite empty (an exercise that requires nothing). A single
edge table (an exercise graph exported from another tool) loads the same way with
:func:`load_edge_list`; :class:`EdgeColumns` says which of its columns hold what.

Files are read through :mod:`engine.textfiles` (UTF-8 with or without a byte-order mark, or
UTF-16 with one). Every error names the file, the line and the column at fault.
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from engine.codes import CodeStyle, ccss_key, code_key
from engine.graph import (
    GraphError,
    Standard,
    StandardsGraph,
    UnknownStandardError,
    grade_number,
    standard_from_fields,
    standard_identifier,
)
from engine.textfiles import TextFileError, open_text

__all__ = [
    "EDGE_LIST_SUFFIXES",
    "STANDARD_COLUMNS",
    "EdgeColumns",
    "load_csv_graph",
    "load_edge_list",
    "write_csv_graph",
]

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
#: file suffixes read as an edge table; tab-separated unless the suffix is .csv
EDGE_LIST_SUFFIXES = (".csv", ".tsv", ".tab", ".txt")
_ALIAS_SEPARATOR = ";"
_DELIMITER_NAMES = {"tab": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}


@dataclass(frozen=True)
class EdgeColumns:
    """Which columns of an edge table hold the prerequisite and the dependent.

    Parameters
    ----------
    prerequisite : column of the code that must be learned first.
    dependent : column of the code that builds on it.
    delimiter : field separator; default: comma for ``.csv`` files, tab for ``.tsv``, ``.tab``
        and ``.txt``, unless the header line holds tabs and no comma.

    Other columns of the table are ignored.

    >>> EdgeColumns.parse("prerequisite=requires,dependent=exercise")
    EdgeColumns(prerequisite='requires', dependent='exercise', delimiter=None)
    """

    prerequisite: str = "prerequisite"
    dependent: str = "dependent"
    delimiter: str | None = None

    def __post_init__(self) -> None:
        for role in ("prerequisite", "dependent"):
            if not getattr(self, role).strip():
                raise GraphError(f"column mapping: the {role} column name is empty")
        if self.prerequisite == self.dependent:
            raise GraphError(f"column mapping: prerequisite and dependent are both column {self.prerequisite!r}")
        if self.delimiter is not None and len(self.delimiter) != 1:
            raise GraphError(f"column mapping: delimiter must be one character, got {self.delimiter!r}")

    @classmethod
    def parse(cls, spec: str) -> EdgeColumns:
        """Read ``role=column`` pairs separated by commas (roles: prerequisite, dependent,
        delimiter; a delimiter may be named: tab, comma, semicolon, pipe)."""
        fields: dict[str, str] = {}
        for pair in filter(None, (p.strip() for p in spec.split(","))):
            role, sep, column = (part.strip() for part in pair.partition("="))
            if not sep or role not in ("prerequisite", "dependent", "delimiter"):
                raise GraphError(
                    f"column mapping {spec!r}: expected role=column pairs such as "
                    f"prerequisite=requires,dependent=exercise (roles: prerequisite, dependent, delimiter), got {pair!r}"
                )
            fields[role] = _DELIMITER_NAMES.get(column.lower(), column) if role == "delimiter" else column
        return cls.from_mapping(fields, spec)

    @classmethod
    def from_mapping(cls, fields: Mapping[str, object], where: str = "column mapping") -> EdgeColumns:
        """Build from a mapping (a JSON object, a TOML table), naming ``where`` in errors."""
        unknown = sorted(set(fields) - {"prerequisite", "dependent", "delimiter"})
        if unknown:
            raise GraphError(
                f"{where}: unknown key(s) {', '.join(unknown)}; expected prerequisite, dependent, delimiter"
            )
        names = {role: value for role, value in fields.items() if isinstance(value, str)}
        if len(names) != len(fields):
            raise GraphError(f"{where}: every value must be a column name (a string)")
        return cls(**names)


def _delimiter(path: Path, header_line: str, columns: EdgeColumns | None) -> str:
    if columns is not None and columns.delimiter is not None:
        return columns.delimiter
    if path.suffix.lower() in (".tsv", ".tab", ".txt"):
        return "\t"
    # Excel's "Unicode text" is tab-separated whatever the file is called.
    return "\t" if "\t" in header_line and "," not in header_line else ","


def _rows(
    path: Path, required: tuple[str, ...], columns: EdgeColumns | None = None
) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield (line number, row) pairs; line numbers count physical lines as an editor shows them.

    ``columns`` is given for an edge table (its delimiter, and a hint in the missing-column error).
    """
    try:
        fh = open_text(path)
    except FileNotFoundError:
        raise GraphError(f"{path}: file not found") from None
    except TextFileError as exc:
        raise GraphError(str(exc)) from None
    with fh:
        try:
            first = next(fh, "")
            lines = itertools.chain([first] if first else [], fh)
            reader = csv.DictReader(lines, delimiter=_delimiter(path, first, columns))
            header = [h.strip() for h in reader.fieldnames or []]
            reader.fieldnames = header
            missing = [c for c in required if c not in header]
            if missing:
                hint = ""
                if columns is not None:  # an edge table
                    hint = "; a column mapping (prerequisite=COLUMN,dependent=COLUMN) names other columns"
                raise GraphError(
                    f"{path.name}: missing column(s) {', '.join(missing)}; expected a header with "
                    f"{', '.join(required)} (found: {', '.join(header) or 'an empty file'}){hint}"
                )
            line = reader.line_num
            for row in reader:
                if None in row:
                    raise GraphError(f"{path.name} line {line + 1}: more fields than the header has")
                yield line + 1, row
                line = reader.line_num
        except TextFileError as exc:
            raise GraphError(str(exc)) from None


@dataclass
class _Standards:
    """What standards.csv said, with the line of every code (for errors found later)."""

    records: list[Standard]
    lines: dict[str, int]
    parents: dict[str, str]


def _standard_fields(path: Path, line: int, code: str, row: dict[str, str]) -> dict:
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
    return {
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


def _read_standards(path: Path, codes: CodeStyle) -> _Standards:
    fields_by_code: dict[str, dict] = {}
    lines: dict[str, int] = {}
    keys: dict[str, str] = {}  # lookup key -> the code whose spelling it is
    for line, row in _rows(path, ("code",)):
        code = (row.get("code") or "").strip()
        if not code:
            raise GraphError(f"{path.name} line {line}: column 'code' is empty; every standard needs a code")
        if code in lines:
            raise GraphError(
                f"{path.name} line {line}: duplicate standard code {code!r} (first defined on line {lines[code]})"
            )
        lines[code] = line
        fields = fields_by_code[code] = _standard_fields(path, line, code, row)
        for spelling in (code, *fields["aliases"]):
            key = code_key(spelling, codes)
            other = keys.setdefault(key, code)
            if other != code:
                raise _spelling_clash(path.name, line, spelling, code, other, lines[other], codes)
    parents = {code: (f["parent"] or "").strip() for code, f in fields_by_code.items()}
    parents = {code: parent for code, parent in parents.items() if parent}
    for code, parent in parents.items():
        if parent not in fields_by_code:
            raise GraphError(f"{path.name} line {lines[code]}: column 'parent_code' names unknown standard {parent!r}")
    _check_hierarchy(path, parents, lines)
    records = [standard_from_fields(code, f) for code, f in fields_by_code.items()]
    return _Standards(records, lines, parents)


def _spelling_clash(
    name: str, line: int, spelling: str, code: str, other: str, other_line: int, codes: CodeStyle
) -> GraphError:
    key = ccss_key(spelling) if codes == "ccss" else None
    if key is not None and spelling != other:
        return GraphError(
            f"{name} line {line}: {spelling!r} and {other!r} of line {other_line} are two spellings of one CCSS "
            f"standard (both read as {key!r}); give each standard a distinct code, or compare codes exactly "
            '(codes = "exact")'
        )
    return GraphError(
        f"{name} line {line}: {spelling!r} names two standards, {code!r} here and {other!r} of line {other_line} "
        "(as a code or an alias); give each spelling to one standard"
    )


def _check_hierarchy(path: Path, parents: dict[str, str], lines: dict[str, int]) -> None:
    """Refuse a standard that is (through its parents) a part of itself, naming the row that
    closes the loop: the last of its rows in the file."""
    done: set[str] = set()
    for code in parents:
        chain = [code]
        while chain[-1] in parents and chain[-1] not in done:
            parent = parents[chain[-1]]
            if parent in chain:
                loop = chain[chain.index(parent) :]
                last = max(loop, key=lines.__getitem__)
                start = loop.index(last)
                order = [*loop[start:], *loop[:start]]
                raise GraphError(
                    f"{path.name} line {lines[last]}: column 'parent_code' closes a hierarchy cycle "
                    f"(each is a part of the next): {' -> '.join([*order, last])}"
                )
            chain.append(parent)
        done.update(chain)


def _raw_pairs(
    path: Path, columns: tuple[str, str], mapping: EdgeColumns | None = None, half_rows: bool = False
) -> list[tuple[int, str, str]]:
    """(line, first code, second code) of every row, as written. With ``half_rows``, a row may
    leave one end empty (an exercise with no prerequisite); that end is then ``""``."""
    pairs = []
    for line, row in _rows(path, columns, mapping):
        ends = [(row.get(column) or "").strip() for column in columns]
        for column, end in zip(columns, ends, strict=True):
            if not end and not (half_rows and any(ends)):
                raise GraphError(f"{path.name} line {line}: column {column!r} is empty; expected a standard code")
        pairs.append((line, ends[0], ends[1]))
    return pairs


def _resolve_pairs(
    path: Path, columns: tuple[str, str], raw: list[tuple[int, str, str]], graph_codes: StandardsGraph, known: str
) -> list[tuple[str, str, int]]:
    """The rows' edges in canonical codes (rows with an empty end give none); ``known`` says
    where the codes come from, for errors."""
    pairs = []
    for line, *ends in raw:
        if not all(ends):
            continue
        resolved = []
        for column, code in zip(columns, ends, strict=True):
            try:
                resolved.append(graph_codes.resolve(code))
            except UnknownStandardError as exc:
                hint = f"; did you mean {', '.join(exc.suggestions)}?" if exc.suggestions else ""
                raise GraphError(
                    f"{path.name} line {line}: column {column!r} names unknown standard {code!r} (not in {known}){hint}"
                ) from None
        if resolved[0] == resolved[1]:
            raise GraphError(f"{path.name} line {line}: self-loop, {resolved[0]!r} is linked to itself")
        pairs.append((resolved[0], resolved[1], line))
    return pairs


def _inferred_standards(raw: list[tuple[int, str, str]], codes: CodeStyle) -> list[Standard]:
    """One standard per code of the edges, in order of first appearance (the first spelling of
    a CCSS standard is its code)."""
    first: dict[str, str] = {}
    for _, a, b in raw:
        for code in filter(None, (a, b)):
            first.setdefault(code_key(code, codes), code)
    return [Standard(code, identifier=standard_identifier(code)) for code in first.values()]


def _edge_rows(
    exc: GraphError, lines: dict[tuple[str, str], int], graph: StandardsGraph
) -> list[tuple[int, tuple[str, str]] | None]:
    """For each edge of an error, the (line, edge) of the row behind it: the row itself, or for
    an edge between parts, the first row whose standards hold those parts."""
    rows: list[tuple[int, tuple[str, str]] | None] = []
    for a, b in exc.edges:
        if (a, b) in lines:
            rows.append((lines[(a, b)], (a, b)))
            continue
        behind = [(n, (p, d)) for (p, d), n in lines.items() if a in graph.leaves(p) and b in graph.leaves(d)]
        rows.append(min(behind) if behind else None)
    return rows


def _located(
    exc: GraphError,
    edges_name: str,
    lines: dict[tuple[str, str], int],
    graph: StandardsGraph,
    standards: _Standards | None,
) -> GraphError:
    """``exc`` with the line of the row at fault: the edge into a part (and the row that makes it
    a part), or the edge that closes a cycle (the last of its edges in the file)."""
    rows = _edge_rows(exc, lines, graph)
    found = [row for row in rows if row is not None]
    if not found:
        return GraphError(f"{edges_name}: {exc}", exc.edges)
    closing, (a, b) = max(found)
    if len(exc.edges) == 1:
        part = b if a in graph.lineage(b) else a
        made = ""
        if standards is not None and part in standards.lines:
            made = f" (standards.csv line {standards.lines[part]} makes {part} a part of {standards.parents[part]})"
        return GraphError(f"{edges_name} line {closing}: {exc}{made}", exc.edges)
    last = rows.index((closing, (a, b)))
    cycle = [*exc.edges[last + 1 :], *exc.edges[: last + 1]]
    chain = " -> ".join([*(u for u, _ in cycle), cycle[0][0]])
    others = sorted({n for n, _ in found} - {closing})
    note = f" (its other edges are on line(s) {', '.join(map(str, others))})" if others else ""
    if any(edge not in lines for edge in exc.edges):
        note += "; an edge into or out of a standard with parts counts for each of its parts"
    return GraphError(
        f"{edges_name} line {closing}: the edge {a} -> {b} closes a cycle{note}; prerequisite cycle: {chain}",
        exc.edges,
    )


def _build(
    name: str,
    edges_path: Path,
    standards_path: Path | None,
    related_path: Path | None,
    columns: EdgeColumns | None,
    codes: CodeStyle,
) -> StandardsGraph:
    mapping = columns or EdgeColumns()
    edge_columns = (mapping.prerequisite, mapping.dependent)
    raw = _raw_pairs(edges_path, edge_columns, mapping, half_rows=standards_path is None)
    warnings = []
    standards: _Standards | None = None
    if standards_path is not None:
        standards = _read_standards(standards_path, codes)
        records = standards.records
        known = standards_path.name
    else:
        records = _inferred_standards(raw, codes)
        known = f"the codes of {edges_path.name}"
        warnings.append(f"no standards table: {len(records)} standards inferred from the codes in {edges_path.name}")
    # A graph with no edges yet gives alias resolution to the edge readers.
    try:
        nodes_only = StandardsGraph(records, (), codes=codes)
    except GraphError as exc:
        raise GraphError(f"{(standards_path or edges_path).name}: {exc}") from None
    edges = _resolve_pairs(edges_path, edge_columns, raw, nodes_only, known)
    seen: dict[tuple[str, str], int] = {}
    for a, b, line in edges:
        if (a, b) in seen:
            warnings.append(f"{edges_path.name} line {line}: repeats the edge {a} -> {b} of line {seen[(a, b)]}")
        seen.setdefault((a, b), line)
    related = []
    if related_path is not None and related_path.exists():
        related = _resolve_pairs(related_path, ("a", "b"), _raw_pairs(related_path, ("a", "b")), nodes_only, known)
    try:
        return StandardsGraph(
            records,
            list(seen),
            [(a, b) for a, b, _ in related],
            title=name,
            identifier=standard_identifier(f"document/{name}"),
            warnings=warnings,
            codes=codes,
        )
    except GraphError as exc:
        raise _located(exc, edges_path.name, seen, nodes_only, standards) from None


def load_csv_graph(
    folder: str | Path, *, columns: EdgeColumns | None = None, codes: CodeStyle = "ccss"
) -> StandardsGraph:
    """Load a graph from a folder of CSV files.

    Parameters
    ----------
    folder : holds ``prerequisites.csv`` and, optionally, ``standards.csv`` (without it every
        code of the edges becomes a standard) and ``related.csv``.
    columns : the columns of ``prerequisites.csv`` (default ``prerequisite,dependent``).
    codes : how codes compare (:mod:`engine.codes`).

    Raises
    ------
    GraphError
        naming the file, line and column at fault (missing columns, duplicate codes, unknown
        codes, self-loops, an edge into a part, the edge that closes a cycle, an encoding that
        is neither UTF-8 nor UTF-16 with a byte-order mark).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise GraphError(f"{folder}: not a folder; expected prerequisites.csv (and standards.csv) in it")
    edges_path = folder / "prerequisites.csv"
    if not edges_path.exists():
        found = ", ".join(sorted(p.name for p in folder.iterdir())[:10]) or "nothing"
        raise GraphError(
            f"{folder}: no prerequisites.csv; expected prerequisites.csv, optionally with standards.csv and "
            f"related.csv (found: {found})"
        )
    standards_path = folder / "standards.csv"
    return _build(
        folder.name,
        edges_path,
        standards_path if standards_path.exists() else None,
        folder / "related.csv",
        columns,
        codes,
    )


def load_edge_list(
    path: str | Path, *, columns: EdgeColumns | None = None, codes: CodeStyle = "ccss"
) -> StandardsGraph:
    """Load a graph from one edge table; every code of the edges becomes a standard.

    A row with one end empty declares its code without an edge (an exercise that requires
    nothing). The file's name (without suffix) is the graph's title.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = Path(folder) / "exercises.csv"
    ...     _ = path.write_text("exercise,requires,weight\\nadd_l2,add_l1,1\\nadd_l3,add_l2,1\\n")
    ...     graph = load_edge_list(path, columns=EdgeColumns(prerequisite="requires", dependent="exercise"))
    >>> sorted(graph.prereq.edges)
    [('add_l1', 'add_l2'), ('add_l2', 'add_l3')]
    """
    path = Path(path)
    return _build(path.stem, path, None, None, columns, codes)


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
