"""The standards knowledge graph: standards, prerequisite edges, hierarchy, related links.

A :class:`StandardsGraph` is immutable once built and validated. Loaders (``engine.graph_csv``,
``engine.case``) parse files and report errors with file and line; the constructor checks what
only the whole graph can tell (cycles, edges between a standard and its own part).

Sub-standards roll up: a standard with parts (``4.NF.B.3`` with ``4.NF.B.3.a`` ...) is learned
through its parts. The *learning graph* therefore has one node per **learnable unit** (a
standard without parts) and expands every prerequisite edge: an edge into a parent applies to
each of its parts, and an edge out of a parent requires all of its parts.

An *external* standard (an endpoint outside a CASE package) is never a learnable unit: nobody
learns it from this framework. The order it implies between the framework's own standards is
kept (``A -> external -> B`` puts ``A`` before ``B`` in the learning graph).
"""

from __future__ import annotations

import difflib
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from engine.codes import CODE_STYLES, CodeStyle, code_key

__all__ = [
    "GraphError",
    "Resource",
    "Standard",
    "StandardsGraph",
    "UnknownStandardError",
    "grade_number",
    "standard_from_fields",
    "standard_identifier",
]

#: Namespace for deterministic identifiers of standards that arrive without one (CSV).
ZPD_NAMESPACE = uuid.UUID("6f1c9a52-8a0e-4f43-9d0e-3b7c2b1f5a10")

_GRADE_NUMBERS = {"PK": -1, "K": 0, "KG": 0, "HS": 9}


def grade_number(grade: str | None) -> int | None:
    """Order key of a grade label: PK=-1, K=0, 1..8, HS=9; None when unknown.

    >>> [grade_number(g) for g in ("K", "3", "HS", "Algebra")]
    [0, 3, 9, None]
    """
    if grade is None:
        return None
    label = grade.strip().upper()
    if label in _GRADE_NUMBERS:
        return _GRADE_NUMBERS[label]
    return int(label) if label.isdigit() else None


def standard_identifier(code: str) -> str:
    """Deterministic identifier for a standard known only by its code."""
    return str(uuid.uuid5(ZPD_NAMESPACE, code))


class GraphError(ValueError):
    """A standards graph is invalid. The message names the file, line or identifier at fault.

    ``edges`` holds the prerequisite edges at fault (an edge into a part, the edges of a cycle,
    as pairs of codes of the graph at fault), so a loader can name the lines they came from.
    """

    def __init__(self, message: str, edges: Iterable[tuple[str, str]] = ()):
        super().__init__(message)
        self.edges: tuple[tuple[str, str], ...] = tuple(edges)


class UnknownStandardError(KeyError):
    """A code names no standard of the graph."""

    def __init__(self, code: str, suggestions: Iterable[str] = ()):
        self.code = code
        self.suggestions = tuple(suggestions)
        super().__init__(code)

    def __str__(self) -> str:
        hint = f"; did you mean {', '.join(self.suggestions)}?" if self.suggestions else ""
        return f"unknown standard {self.code!r}{hint}"


@dataclass(frozen=True, slots=True)
class Standard:
    """One node of the graph. Empty strings are stored as None so every source compares equal."""

    code: str
    description: str | None = None
    grade: str | None = None
    grade_num: int | None = None
    domain_code: str | None = None
    domain_name: str | None = None
    cluster_code: str | None = None
    cluster_name: str | None = None
    cluster_emphasis: str | None = None
    parent: str | None = None
    aliases: tuple[str, ...] = ()
    identifier: str | None = None
    external: bool = False
    #: other source columns / extension fields, sorted (name, value) pairs
    attributes: tuple[tuple[str, str], ...] = field(default=())

    def attribute(self, name: str, default: str | None = None) -> str | None:
        return dict(self.attributes).get(name, default)


@dataclass(frozen=True, slots=True)
class Resource:
    """A resource linked to a standard (a CASE ``exemplar`` association)."""

    standard: str
    url: str
    title: str | None = None


class StandardsGraph:
    """A validated, immutable standards graph.

    Parameters
    ----------
    standards : the standards in their source order (the order breaks ties in learning order).
    prerequisites : ``(prerequisite, dependent)`` code pairs.
    related : unordered code pairs.
    resources : exemplar resources.
    title, identifier : framework metadata (a CASE CFDocument's title and identifier).
    warnings : non-fatal problems the loader found (kept for ``zpd graph validate``).
    codes : how codes compare (:mod:`engine.codes`): ``"ccss"`` reads every spelling of a CCSS
        standard as one code and other codes exactly; ``"exact"`` reads every code exactly.

    Raises
    ------
    GraphError
        On a duplicate code, an edge naming an unknown standard, a self-loop, an edge between a
        standard and its own part, a hierarchy cycle or a prerequisite cycle (codes listed).
    """

    def __init__(
        self,
        standards: Iterable[Standard],
        prerequisites: Iterable[tuple[str, str]],
        related: Iterable[tuple[str, str]] = (),
        resources: Iterable[Resource] = (),
        *,
        title: str | None = None,
        identifier: str | None = None,
        warnings: Iterable[str] = (),
        codes: CodeStyle = "ccss",
    ):
        if codes not in CODE_STYLES:
            raise GraphError(f"codes must be one of {', '.join(CODE_STYLES)}, got {codes!r}")
        self.codes: CodeStyle = codes
        self.title = title
        self.identifier = identifier
        self.warnings: tuple[str, ...] = tuple(warnings)
        self.standards: dict[str, Standard] = {}
        for std in standards:
            if std.code in self.standards:
                raise GraphError(f"duplicate standard code {std.code!r}")
            self.standards[std.code] = std
        self._order = {code: i for i, code in enumerate(self.standards)}
        self._index_aliases()
        self._build_hierarchy()
        self.prereq = nx.DiGraph()
        self.prereq.add_nodes_from(self.standards)
        for a, b in prerequisites:
            self._check_edge(a, b)
            self.prereq.add_edge(a, b)
        self.related: frozenset[frozenset[str]] = frozenset(
            frozenset((self._known(a), self._known(b))) for a, b in related if a != b
        )
        self.resources: tuple[Resource, ...] = tuple(resources)
        for res in self.resources:
            self._known(res.standard)
        self._check_acyclic(self.prereq)
        self._build_learning_graph()

    # ------------------------------------------------------------------ construction
    def _index_aliases(self) -> None:
        self._alias: dict[str, str] = {}
        for std in self.standards.values():
            for spelling in (std.code, *std.aliases):
                key = code_key(spelling, self.codes)
                other = self._alias.get(key)
                if other is not None and other != std.code:
                    raise GraphError(
                        f"codes {other!r} and {std.code!r} are two spellings of one standard "
                        f"(both read as {key!r}); give each standard a distinct code"
                    )
                self._alias[key] = std.code

    def _build_hierarchy(self) -> None:
        parts: dict[str, list[str]] = {}
        for std in self.standards.values():
            if std.parent is None:
                continue
            if std.parent not in self.standards:
                raise GraphError(f"standard {std.code!r} names unknown parent {std.parent!r}")
            parts.setdefault(std.parent, []).append(std.code)
        self.parts: dict[str, tuple[str, ...]] = {p: tuple(c) for p, c in parts.items()}
        for code in self.standards:
            seen = [code]
            parent = self.standards[code].parent
            while parent is not None:
                if parent in seen:
                    chain = " -> ".join([*seen, parent])
                    raise GraphError(f"hierarchy cycle (each is a part of the next): {chain}")
                seen.append(parent)
                parent = self.standards[parent].parent

    def _known(self, code: str) -> str:
        if code not in self.standards:
            raise GraphError(f"edge names unknown standard {code!r}")
        return code

    def _check_edge(self, a: str, b: str) -> None:
        self._known(a)
        self._known(b)
        if a == b:
            raise GraphError(f"self-loop: {a!r} cannot be its own prerequisite", [(a, b)])
        if a in self.lineage(b) or b in self.lineage(a):
            raise GraphError(
                f"prerequisite edge {a} -> {b} joins a standard and its own part; "
                "parts roll up into their parent, so such an edge is a cycle",
                [(a, b)],
            )

    @staticmethod
    def _check_acyclic(graph: nx.DiGraph) -> None:
        try:
            cycle = nx.find_cycle(graph)
        except nx.NetworkXNoCycle:
            return
        codes = [edge[0] for edge in cycle] + [cycle[0][0]]
        raise GraphError(f"prerequisite cycle: {' -> '.join(codes)}", [(edge[0], edge[1]) for edge in cycle])

    def _build_learning_graph(self) -> None:
        learning = nx.DiGraph()
        learning.add_nodes_from(c for c in self.standards if c not in self.parts)
        for a, b in self.prereq.edges:
            for la in self._passage(a):
                for lb in self._passage(b):
                    learning.add_edge(la, lb)
        self._check_acyclic(learning)
        for code in [c for c in learning if self.standards[c].external]:
            learning.add_edges_from((p, s) for p in learning.predecessors(code) for s in learning.successors(code))
            learning.remove_node(code)
        self.learning = learning
        self._learning_prereqs = {n: tuple(self.sort(learning.predecessors(n))) for n in learning}

    # ------------------------------------------------------------------ lookups
    def __contains__(self, code: object) -> bool:
        return isinstance(code, str) and code_key(code, self.codes) in self._alias

    def __len__(self) -> int:
        return len(self.standards)

    def __getitem__(self, code: str) -> Standard:
        return self.standards[self.resolve(code)]

    def resolve(self, code: str) -> str:
        """Canonical code for any spelling; raises :class:`UnknownStandardError` with suggestions."""
        key = code_key(code, self.codes)
        found = self._alias.get(key)
        if found is None:
            close = difflib.get_close_matches(key, list(self._alias), n=3, cutoff=0.75)
            raise UnknownStandardError(code, dict.fromkeys(self._alias[k] for k in close))
        return found

    def lineage(self, code: str) -> tuple[str, ...]:
        """The chain of parents of ``code`` (nearest first)."""
        chain = []
        parent = self.standards[code].parent
        while parent is not None:
            chain.append(parent)
            parent = self.standards[parent].parent
        return tuple(chain)

    def leaves(self, code: str) -> tuple[str, ...]:
        """The learnable units of ``code``: itself, or its parts (recursively) if it has any;
        none for an external standard."""
        if self.standards[code].external:
            return ()
        if code not in self.parts:
            return (code,)
        return tuple(leaf for part in self.parts[code] for leaf in self.leaves(part))

    def is_learnable(self, code: str) -> bool:
        """True for a learnable unit: a standard of the framework without parts."""
        return code in self.learning

    def learning_prerequisites(self, code: str) -> tuple[str, ...]:
        """Direct prerequisites of a learnable unit in the learning graph (parents expanded)."""
        return self._learning_prereqs[code]

    def _passage(self, code: str) -> tuple[str, ...]:
        """The nodes an edge of ``code`` goes through while the learning graph is built."""
        return (code,) if self.standards[code].external else self.leaves(code)

    def sort(self, codes: Iterable[str]) -> list[str]:
        """Codes in source order (grade, domain, cluster for the bundled graph)."""
        return sorted(codes, key=self._order.__getitem__)

    def order_of(self, code: str) -> int:
        return self._order[code]

    @property
    def internal_codes(self) -> list[str]:
        return [c for c, s in self.standards.items() if not s.external]

    # ------------------------------------------------------------------ comparison
    def to_dict(self) -> dict:
        """A canonical plain-data form; two graphs are equal when these are equal."""
        return {
            "title": self.title,
            "identifier": self.identifier,
            "standards": [_standard_dict(s) for s in self.standards.values()],
            "prerequisites": sorted(self.prereq.edges),
            "related": sorted(tuple(sorted(pair)) for pair in self.related),
            "resources": sorted((r.standard, r.url, r.title or "") for r in self.resources),
        }

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StandardsGraph) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"StandardsGraph({self.title!r}, standards={len(self.standards)}, "
            f"prerequisite_edges={self.prereq.number_of_edges()})"
        )


def _standard_dict(std: Standard) -> dict:
    return {
        "code": std.code,
        "description": std.description,
        "grade": std.grade,
        "grade_num": std.grade_num,
        "domain_code": std.domain_code,
        "domain_name": std.domain_name,
        "cluster_code": std.cluster_code,
        "cluster_name": std.cluster_name,
        "cluster_emphasis": std.cluster_emphasis,
        "parent": std.parent,
        "aliases": list(std.aliases),
        "identifier": std.identifier,
        "external": std.external,
        "attributes": dict(std.attributes),
    }


def standard_from_fields(code: str, fields: Mapping[str, object]) -> Standard:
    """Build a :class:`Standard`, turning empty strings into None (shared by the loaders)."""

    def clean(value: object) -> object:
        if isinstance(value, str):
            value = value.strip()
            return value or None
        return value

    # one value per Standard field, each of its own type
    values: dict[str, Any] = {k: clean(v) for k, v in fields.items()}
    values["aliases"] = tuple(a for a in values.get("aliases") or () if a and a != code)
    values["attributes"] = tuple(sorted((values.get("attributes") or {}).items()))
    return Standard(code=code, **values)
