"""Read and write 1EdTech CASE packages (CFPackage JSON, CASE 1.0 and 1.1).

Reading maps associations onto the graph:

* the configured prerequisite types (default ``precedes``): origin is a prerequisite of destination;
* ``isChildOf`` / ``isPartOf``: hierarchy. Between two standards it makes a sub-standard (part);
  a grouping item (Domain, Cluster...) gives the standard its domain and cluster; never an edge;
* ``isRelatedTo`` / ``isPeerOf`` / ``exactMatchOf``: undirected related links;
* ``exemplar``: a resource linked to the origin standard.

A prerequisite, related or exemplar association that names a grouping item or the document is
skipped with a warning naming it: a grouping is not a standard, and spreading its links over
its parts would invent edges the package does not state.

Endpoints outside the package are *external standards*, keyed by their identifier (or the tail of
their ``uri``); an endpoint's ``title`` is only a label (OpenSALT titles every one of them
"Origin" or "Destination"). An external endpoint that is the ``exactMatchOf`` of a standard of the
package *is* that standard: its associations apply to it. The others stay in the graph as
external standards, which are never learnable units (see :mod:`engine.graph`).

Real exports have other quirks that are tolerated (legacy ``educationalLevel`` string,
``sequenceNumber`` as a string, null fields, a ``CFPackage`` wrapper). Broken packages raise
:class:`GraphError` naming the identifier of the item or association at fault.

Writing keeps what reading keeps: ``notes``, ``listEnumeration`` and ``language`` of an item
travel as the standard's attributes ``notes``, ``list_enumeration`` and ``language``, so
export, load and export again gives the same package.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx

from engine.graph import (
    ZPD_NAMESPACE,
    GraphError,
    Resource,
    Standard,
    StandardsGraph,
    grade_number,
    standard_from_fields,
)

__all__ = ["CaseOptions", "graph_to_case", "load_case", "parse_case", "write_case"]

HIERARCHY_TYPES = frozenset({"ischildof", "ispartof"})
RELATED_TYPES = frozenset({"isrelatedto", "ispeerof", "exactmatchof"})
EXACT_MATCH_TYPE = "exactmatchof"
EXEMPLAR_TYPE = "exemplar"
#: titles that name an endpoint's role, not the endpoint (OpenSALT's for nodes outside the package)
ROLE_TITLES = frozenset({"origin", "destination"})
#: CFItem fields kept as attributes of the standard (CASE name -> attribute name)
ITEM_ATTRIBUTES = {"listEnumeration": "list_enumeration", "notes": "notes", "language": "language"}
#: attribute of an external standard holding its ``uri`` (when not the default ``urn:uuid:<identifier>``)
EXTERNAL_URI = "uri"
_HS_LEVELS = ("09", "10", "11", "12")
_GROUP_FIELDS = ("domain_code", "domain_name", "cluster_code", "cluster_name", "cluster_emphasis")
_LEVEL_RANGE = re.compile(r"^(\w+)\s*-\s*(\w+)$")
_LISTED_IDS = 10  # association identifiers listed in one warning before "and N more"


@dataclass(frozen=True)
class CaseOptions:
    """How to read a package; mirrors :class:`configs.GraphConfig`."""

    prerequisite_association_types: tuple[str, ...] = ("precedes",)
    grouping_item_types: tuple[str, ...] = ("Domain", "Cluster")


@dataclass
class _Item:
    index: int
    raw: Mapping[str, Any]
    identifier: str
    code: str
    item_type: str | None
    grouping: bool
    parent: str | None = None  # identifier of a parent item
    parent_via: str | None = None  # identifier of the association that made it
    sequence: int | None = None
    groups: list[str] = field(default_factory=list)  # identifiers of grouping parents


@dataclass
class _External:
    """An association endpoint outside the package."""

    identifier: str
    label: str | None  # its title, unless the title only names the endpoint's role
    uri: str | None
    associations: list[str] = field(default_factory=list)  # identifiers of the associations naming it


@dataclass(frozen=True)
class _Prerequisite:
    origin: str  # identifiers
    dest: str
    association: str


# ---------------------------------------------------------------------------- reading helpers
def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _mapping(value: Any) -> Mapping[str, Any]:
    """``value`` if it is a JSON object, else an empty one."""
    return value if isinstance(value, Mapping) else {}


def _item_type(raw: Mapping[str, Any]) -> str | None:
    if _text(raw.get("CFItemType")):
        return _text(raw.get("CFItemType"))
    type_uri = raw.get("CFItemTypeURI")
    return _text(type_uri.get("title")) if isinstance(type_uri, Mapping) else None


def education_levels(raw: Mapping[str, Any]) -> list[str]:
    """The item's education levels, from ``educationLevel`` (a list) or a legacy
    ``educationalLevel`` string such as ``"KG,01"`` or ``"09-12"``."""
    value = raw.get("educationLevel")
    if value is None:
        value = raw.get("educationalLevel")
    if value is None:
        return []
    tokens = value if isinstance(value, list) else re.split(r"[,;|\s]+", str(value))
    levels: list[str] = []
    for token in (str(t).strip() for t in tokens if t is not None):
        span = _LEVEL_RANGE.match(token)
        if span and span.group(1).isdigit() and span.group(2).isdigit():
            levels += [f"{n:02d}" for n in range(int(span.group(1)), int(span.group(2)) + 1)]
        elif token.isdigit():
            levels.append(f"{int(token):02d}")
        elif token:
            levels.append(token.upper())
    return levels


def grade_from_levels(levels: list[str]) -> str | None:
    """``["KG"]`` -> ``"K"``, ``["04"]`` -> ``"4"``, ``["09", .., "12"]`` -> ``"HS"``."""
    if not levels:
        return None
    if len(levels) > 1 and all(level in _HS_LEVELS for level in levels):
        return "HS"
    first = levels[0]
    if first == "KG":
        return "K"
    return str(int(first)) if first.isdigit() else first


def levels_from_grade(grade: str | None) -> list[str]:
    if grade is None:
        return []
    if grade == "HS":
        return list(_HS_LEVELS)
    if grade == "K":
        return ["KG"]
    return [f"{int(grade):02d}"] if grade.isdigit() else [grade]


def _sequence(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(str(value).strip())
    except ValueError:
        return None


def _node_identifier(node: Any) -> str | None:
    """The identifier of an association endpoint: its ``identifier``, else the tail of its ``uri``."""
    if not isinstance(node, Mapping):
        return None
    ident = _text(node.get("identifier"))
    if ident:
        return ident
    uri = _text(node.get("uri"))
    if uri is None:
        return None
    return re.split(r"[:/]", uri.rstrip("/"))[-1] or None


def _package(data: Any, where: str) -> Mapping[str, Any]:
    if isinstance(data, Mapping) and isinstance(data.get("CFPackage"), Mapping):
        data = data["CFPackage"]
    if not isinstance(data, Mapping) or not isinstance(data.get("CFItems"), list):
        raise GraphError(
            f"{where}: not a CASE package; expected a JSON object with CFDocument, CFItems (a list) and CFAssociations"
        )
    return data


# ---------------------------------------------------------------------------- parsing
class _Reader:
    def __init__(self, data: Any, where: str, options: CaseOptions):
        self.where = where
        self.package = _package(data, where)
        self.prereq_types = {t.lower() for t in options.prerequisite_association_types}
        self.grouping_types = {t.lower() for t in options.grouping_item_types}
        self.warnings: list[str] = []
        self.document = _mapping(self.package.get("CFDocument"))
        self.document_id = _text(self.document.get("identifier"))
        self.items: dict[str, _Item] = {}
        self.by_uri: dict[str, str] = {}  # uri -> identifier of an item
        self.codes: dict[str, str] = {}  # code -> identifier of a standard
        self.matches: dict[str, str] = {}  # external identifier -> the standard it is an exact match of
        self.external: dict[str, _External] = {}

    def error(self, message: str) -> GraphError:
        return GraphError(f"{self.where}: {message}")

    def read_items(self) -> None:
        for index, raw in enumerate(self.package["CFItems"]):
            if not isinstance(raw, Mapping):
                raise self.error(f"CFItems[{index}] is not an object")
            ident = _text(raw.get("identifier"))
            if ident is None:
                raise self.error(f"CFItems[{index}] has no 'identifier'; every CFItem needs one")
            if ident in self.items:
                raise self.error(
                    f"CFItems[{index}]: duplicate identifier {ident} (also CFItems[{self.items[ident].index}])"
                )
            item_type = _item_type(raw)
            grouping = item_type is not None and item_type.lower() in self.grouping_types
            code = _text(raw.get("humanCodingScheme"))
            if code is None:
                code = ident
                if not grouping:
                    self.warnings.append(f"CFItem {ident} has no humanCodingScheme; its identifier is used as its code")
            if not grouping:
                if code in self.codes:
                    raise self.error(
                        f"CFItem {ident}: duplicate code {code!r} (also CFItem {self.codes[code]}); "
                        "each standard needs its own humanCodingScheme"
                    )
                self.codes[code] = ident
            self.items[ident] = _Item(index, raw, ident, code, item_type, grouping)
            uri = _text(raw.get("uri"))
            if uri is not None:
                self.by_uri.setdefault(uri, ident)

    def _associations(self) -> Iterator[tuple[Mapping[str, Any], str, str]]:
        """Each association with its identifier (or position) and its type in lower case."""
        found = self.package.get("CFAssociations") or []
        if not isinstance(found, list):
            raise self.error("CFAssociations is not a list")
        for index, raw in enumerate(found):
            if not isinstance(raw, Mapping):
                raise self.error(f"CFAssociations[{index}] is not an object")
            assoc_id = _text(raw.get("identifier")) or f"CFAssociations[{index}]"
            kind = (_text(raw.get("associationType")) or "").lower()
            if not kind:
                raise self.error(f"CFAssociation {assoc_id} has no associationType")
            yield raw, assoc_id, kind

    def _locate(self, assoc_id: str, raw: Mapping[str, Any], role: str, *, matched: bool = True) -> str:
        """The identifier an endpoint stands for: an item's, the document's or an external one
        (with ``matched``, an external exact match of a standard stands for that standard)."""
        node = raw.get(f"{role}NodeURI")
        ident = _node_identifier(node)
        if ident is None:
            raise self.error(
                f'CFAssociation {assoc_id}: {role} has no identifier or uri; expected {{"identifier": ..., "uri": ...}}'
            )
        if ident not in self.items:
            ident = self.by_uri.get(_text(_mapping(node).get("uri")) or "", ident)
        return self.matches.get(ident, ident) if matched else ident

    def _is_standard(self, ident: str) -> bool:
        return ident in self.items and not self.items[ident].grouping

    def read_exact_matches(self) -> None:
        """Find the external endpoints that an ``exactMatchOf`` equates with a standard of the package."""
        found: dict[str, tuple[str, str]] = {}  # external -> (standard, association)
        ambiguous: set[str] = set()
        for raw, assoc_id, kind in self._associations():
            if kind != EXACT_MATCH_TYPE:
                continue
            ends = [self._locate(assoc_id, raw, role, matched=False) for role in ("origin", "destination")]
            inside = [end for end in ends if self._is_standard(end)]
            outside = [end for end in ends if end not in self.items and end != self.document_id]
            if len(inside) != 1 or len(outside) != 1:
                continue
            (std,), (ext,) = inside, outside
            first = found.setdefault(ext, (std, assoc_id))
            if first[0] != std and ext not in ambiguous:
                ambiguous.add(ext)
                self.warnings.append(
                    f"CFAssociations {first[1]}, {assoc_id}: {ext}, outside this package, is an exact match of "
                    f"both {self.code_of(first[0])!r} and {self.code_of(std)!r}; kept as an external standard"
                )
        self.matches = {ext: std for ext, (std, _) in found.items() if ext not in ambiguous}

    def read_associations(self) -> tuple[list[_Prerequisite], list[tuple[str, str]], list[tuple[str, str, str | None]]]:
        prereqs: list[_Prerequisite] = []
        related: list[tuple[str, str]] = []
        resources: list[tuple[str, str, str | None]] = []
        ignored: dict[str, list[str]] = {}
        for raw, assoc_id, kind in self._associations():
            name = str(raw["associationType"]).strip()  # as written, for messages
            if kind in HIERARCHY_TYPES:
                self._read_hierarchy(assoc_id, raw)
            elif kind == EXEMPLAR_TYPE:
                resource = self._read_exemplar(assoc_id, raw, name)
                if resource is not None:
                    resources.append(resource)
            elif kind in self.prereq_types or kind in RELATED_TYPES:
                origin = self._locate(assoc_id, raw, "origin")
                dest = self._locate(assoc_id, raw, "destination")
                if not self._between_standards(assoc_id, name, (origin, dest)):
                    continue
                for end, role in ((origin, "origin"), (dest, "destination")):
                    if end not in self.items:
                        self._note_external(assoc_id, raw, role, end)
                if kind in self.prereq_types:
                    if origin == dest:
                        raise self.error(
                            f"CFAssociation {assoc_id}: self-loop, {self.code_of(origin)!r} precedes itself"
                        )
                    prereqs.append(_Prerequisite(origin, dest, assoc_id))
                elif origin != dest:
                    related.append((origin, dest))
            else:
                ignored.setdefault(name, []).append(assoc_id)
        for ext in self.external.values():
            label = f" ({ext.label!r})" if ext.label else ""
            self.warnings.append(
                f"{_named('CFAssociation', ext.associations)}: endpoint {ext.identifier}{label} is not in this "
                "package; kept as an external standard (not a learnable unit)"
            )
        for name, ids in sorted(ignored.items()):
            self.warnings.append(
                f"{len(ids)} association(s) of type {name!r} ignored (not used by the graph): {_listing(ids)}"
            )
        return prereqs, related, resources

    def _between_standards(self, assoc_id: str, name: str, ends: tuple[str, ...]) -> bool:
        """False, with a warning, when an association names the document or a grouping item."""
        for end in ends:
            item = self.items.get(end)
            if end == self.document_id:
                self.warnings.append(
                    f"CFAssociation {assoc_id}: {name} names the document {end}, not a standard; ignored"
                )
                return False
            if item is not None and item.grouping:
                self.warnings.append(
                    f"CFAssociation {assoc_id}: {name} on grouping item {item.code!r} ({item.item_type}) ignored"
                )
                return False
        return True

    def _note_external(self, assoc_id: str, raw: Mapping[str, Any], role: str, ident: str) -> None:
        if ident in self.codes:
            raise self.error(
                f"CFAssociation {assoc_id}: {role} {ident} is not an item of this package but is the code of "
                f"CFItem {self.codes[ident]}; name that item by its identifier"
            )
        node = _mapping(raw.get(f"{role}NodeURI"))
        ext = self.external.setdefault(ident, _External(ident, None, None))
        title = _text(node.get("title"))
        if ext.label is None and title and title != ident and title.lower() not in ROLE_TITLES:
            ext.label = title
        ext.uri = ext.uri or _text(node.get("uri"))
        if assoc_id not in ext.associations:
            ext.associations.append(assoc_id)

    def _read_exemplar(self, assoc_id: str, raw: Mapping[str, Any], name: str) -> tuple[str, str, str | None] | None:
        origin = self._locate(assoc_id, raw, "origin")
        if not self._between_standards(assoc_id, name, (origin,)):
            return None
        if origin not in self.items:
            self.warnings.append(f"CFAssociation {assoc_id}: {name} of {origin}, which is not in this package; ignored")
            return None
        dest = _mapping(raw.get("destinationNodeURI"))
        url = _text(dest.get("uri"))
        if url is None:
            self.warnings.append(
                f"CFAssociation {assoc_id}: {name} of {self.code_of(origin)!r} has no destination uri; ignored"
            )
            return None
        return origin, url, _text(dest.get("title"))

    def _read_hierarchy(self, assoc_id: str, raw: Mapping[str, Any]) -> None:
        child = self._locate(assoc_id, raw, "origin", matched=False)
        parent = self._locate(assoc_id, raw, "destination", matched=False)
        if child not in self.items:
            return
        item = self.items[child]
        if item.sequence is None:
            item.sequence = _sequence(raw.get("sequenceNumber"))
        if parent not in self.items:
            return  # a child of the document, or of something outside the package
        if self.items[parent].grouping:
            item.groups.append(parent)
        elif item.parent is None:
            item.parent, item.parent_via = parent, assoc_id
        elif item.parent != parent:
            self.warnings.append(
                f"CFAssociation {assoc_id}: {item.code!r} already has parent "
                f"{self.items[item.parent].code!r}; second parent {self.items[parent].code!r} ignored"
            )

    def check_hierarchy(self) -> None:
        """Name the associations of a hierarchy cycle (the graph would only name the codes)."""
        for item in self.items.values():
            chain = [item.identifier]
            parent = item.parent
            while parent is not None:
                if parent in chain:
                    loop = chain[chain.index(parent) :]
                    via = [self.items[ident].parent_via or ident for ident in loop]
                    codes = " -> ".join(self.code_of(ident) for ident in [*loop, parent])
                    raise self.error(
                        f"{_named('CFAssociation', via)} make a hierarchy cycle (each is a part of the next): {codes}"
                    )
                chain.append(parent)
                parent = self.items[parent].parent

    def check_prerequisites(self, prereqs: list[_Prerequisite]) -> None:
        """Name the association behind a prerequisite edge the graph would refuse."""
        for edge in prereqs:
            if edge.origin in self._lineage(edge.dest) or edge.dest in self._lineage(edge.origin):
                raise self.error(
                    f"CFAssociation {edge.association}: {self.code_of(edge.origin)!r} precedes "
                    f"{self.code_of(edge.dest)!r}, a standard and its own part; parts roll up into their parent, "
                    "so such an edge is a cycle"
                )
        graph = nx.DiGraph()
        for edge in prereqs:
            graph.add_edge(edge.origin, edge.dest, association=edge.association)
        try:
            cycle = nx.find_cycle(graph)
        except nx.NetworkXNoCycle:
            return
        via = [graph.edges[a, b]["association"] for a, b in cycle]
        codes = " -> ".join(self.code_of(ident) for ident in [*(a for a, _ in cycle), cycle[0][0]])
        raise self.error(f"{_named('CFAssociation', via)} make a prerequisite cycle: {codes}")

    def blame(self, message: str) -> str:
        """A message of the graph, which speaks in codes, with the identifier of each standard it names."""
        named = []
        for item in self.items.values():
            if item.grouping or item.code == item.identifier:
                continue
            found = re.search(rf"(?<![\w.-]){re.escape(item.code)}(?![\w.-])", message)
            if found:
                named.append((found.start(), f"{item.code} is CFItem {item.identifier}"))
        return f"{message} ({'; '.join(text for _, text in sorted(named))})" if named else message

    def _lineage(self, ident: str) -> list[str]:
        """Identifiers of the parents of an item, nearest first (the hierarchy is checked acyclic)."""
        chain: list[str] = []
        parent = self.items[ident].parent if ident in self.items else None
        while parent is not None:
            chain.append(parent)
            parent = self.items[parent].parent
        return chain

    def code_of(self, ident: str) -> str:
        return self.items[ident].code if ident in self.items else ident

    def external_record(self, ext: _External) -> Standard:
        uri = ext.uri if ext.uri and ext.uri != f"urn:uuid:{ext.identifier}" else None
        return standard_from_fields(
            ext.identifier,
            {
                "identifier": ext.identifier,
                "external": True,
                "description": ext.label,
                "attributes": {EXTERNAL_URI: uri} if uri else {},
            },
        )

    def _grouping_ancestors(self, item: _Item) -> list[_Item]:
        found, frontier, seen = [], list(item.groups), set()
        while frontier:
            ident = frontier.pop(0)
            if ident in seen:
                continue
            seen.add(ident)
            found.append(self.items[ident])
            frontier.extend(self.items[ident].groups)
        return found

    def standard_fields(self, item: _Item) -> dict[str, Any]:
        raw = item.raw
        ext = _mapping(raw.get("extensions"))
        zpd = _mapping(ext.get("zpd"))
        cm = _mapping(ext.get("coherenceMap"))
        grade = grade_from_levels(education_levels(raw))
        fields: dict[str, Any] = {
            "description": _text(raw.get("fullStatement")) or _text(raw.get("abbreviatedStatement")),
            "grade": grade,
            "grade_num": grade_number(grade),
            "parent": self.items[item.parent].code if item.parent else None,
            "identifier": item.identifier,
            "aliases": tuple(a for a in [_text(cm.get("ccssCode"))] if a),
            "attributes": {**_item_attributes(raw), **_coherence_attributes(cm)},
        }
        # Of the grouping ancestors, a Cluster gives the cluster, a Domain the domain; in other
        # frameworks the nearest grouping is the cluster and the next one the domain.
        groups = self._grouping_ancestors(item)
        by_type = {(g.item_type or "").lower(): g for g in groups}
        cluster = by_type.get("cluster") or (groups[0] if groups else None)
        domain = by_type.get("domain") or next((g for g in groups if g is not cluster), None)
        if cluster is not None:
            cluster_ext = _mapping(_mapping(cluster.raw.get("extensions")).get("coherenceMap"))
            fields.update(
                cluster_code=cluster.code,
                cluster_name=_text(cluster.raw.get("fullStatement")),
                cluster_emphasis=_text(cluster_ext.get("emphasis")),
            )
        if domain is not None:
            fields.update(domain_code=domain.code, domain_name=_text(domain.raw.get("fullStatement")))
        for key in (
            "grade",
            "grade_num",
            "domain_code",
            "domain_name",
            "cluster_code",
            "cluster_name",
            "cluster_emphasis",
            "description",
        ):
            if key in zpd:
                fields[key] = zpd[key]
        if isinstance(zpd.get("aliases"), list):
            fields["aliases"] = tuple(zpd["aliases"])
        # the CASE fields stay where CASE puts them; the extension carries the other attributes
        fields["attributes"].update({str(k): str(v) for k, v in _mapping(zpd.get("attributes")).items()})
        return fields


def _named(kind: str, ids: list[str]) -> str:
    """``CFAssociation a1`` or ``CFAssociations a1, a2``."""
    return f"{kind}{'s' if len(ids) > 1 else ''} {_listing(ids)}"


def _listing(ids: list[str]) -> str:
    shown = ", ".join(ids[:_LISTED_IDS])
    return f"{shown} and {len(ids) - _LISTED_IDS} more" if len(ids) > _LISTED_IDS else shown


def _item_attributes(raw: Mapping[str, Any]) -> dict[str, str]:
    """The CFItem fields kept as attributes (:data:`ITEM_ATTRIBUTES`)."""
    return {name: text for key, name in ITEM_ATTRIBUTES.items() if (text := _text(raw.get(key))) is not None}


def _coherence_attributes(cm: Mapping[str, Any]) -> dict[str, str]:
    """Attributes carried by the Coherence Map's own CASE extension, named as in its CSV."""
    names = {
        "widelyApplicablePrerequisite": "widely_applicable_prereq",
        "modeling": "modeling_star",
        "sourceId": "source_id",
    }
    out = {}
    for key, name in names.items():
        if cm.get(key) is not None:
            value = cm[key]
            out[name] = str(int(value)) if isinstance(value, bool) else str(value)
    return out


def _in_sequence(items: list[_Item]) -> list[_Item]:
    """Order siblings (parts of one parent) by their ``sequenceNumber``, keeping their places."""
    ordered = list(items)
    siblings: dict[str | None, list[int]] = {}
    for pos, item in enumerate(ordered):
        siblings.setdefault(item.parent, []).append(pos)
    for parent, positions in siblings.items():
        if parent is None:
            continue
        group = sorted(
            (ordered[p] for p in positions), key=lambda it: (it.sequence is None, it.sequence or 0, it.index)
        )
        for pos, item in zip(positions, group):
            ordered[pos] = item
    return ordered


def parse_case(data: Any, where: str = "CASE package", options: CaseOptions | None = None) -> StandardsGraph:
    """Build a graph from an already-parsed CASE package (``where`` names it in errors)."""
    reader = _Reader(data, where, options or CaseOptions())
    reader.read_items()
    reader.read_exact_matches()
    prereqs, related, resources = reader.read_associations()
    reader.check_hierarchy()
    reader.check_prerequisites(prereqs)
    standards = _in_sequence([it for it in reader.items.values() if not it.grouping])
    fields = {it.identifier: reader.standard_fields(it) for it in standards}
    for it in standards:  # a part without its own grouping sits in its parent's domain and cluster
        ancestor = it.parent
        while ancestor is not None and ancestor in fields:
            for key in _GROUP_FIELDS:
                if fields[it.identifier].get(key) is None and fields[ancestor].get(key) is not None:
                    fields[it.identifier][key] = fields[ancestor][key]
            ancestor = reader.items[ancestor].parent
    records = [standard_from_fields(it.code, fields[it.identifier]) for it in standards]
    # externals in identifier order, so that a package written from the graph reads back the same
    records += [reader.external_record(ext) for _, ext in sorted(reader.external.items())]
    code = reader.code_of
    try:
        return StandardsGraph(
            records,
            [(code(edge.origin), code(edge.dest)) for edge in prereqs],
            [(code(a), code(b)) for a, b in related],
            [Resource(code(o), url, title) for o, url, title in resources],
            title=_text(reader.document.get("title")),
            identifier=reader.document_id,
            warnings=reader.warnings,
        )
    except GraphError as exc:
        raise reader.error(reader.blame(str(exc))) from None


def load_case(path: str | Path, options: CaseOptions | None = None) -> StandardsGraph:
    """Load a CASE package JSON file (CASE 1.0 or 1.1)."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        raise GraphError(f"{path}: file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise GraphError(f"{path}: not valid JSON: {exc}") from None
    return parse_case(data, str(path), options)


# ---------------------------------------------------------------------------- writing
def _uid(*parts: str) -> str:
    return str(uuid.uuid5(ZPD_NAMESPACE, "/".join(parts)))


def _node(ident: str, title: str, uri: str | None = None) -> dict[str, str]:
    return {"title": title, "identifier": ident, "uri": uri or f"urn:uuid:{ident}"}


def graph_to_case(graph: StandardsGraph, *, created: str = "2026-01-01T00:00:00+00:00") -> dict[str, Any]:
    """Export ``graph`` as a CASE 1.1 CFPackage (a plain dict ready for ``json.dump``).

    Domains and clusters become grouping CFItems; external standards are association endpoints
    outside the package, as they came; fields CASE has no place for travel in an
    ``extensions.zpd`` object, so ``parse_case(graph_to_case(g)) == g``.
    """
    doc_id = graph.identifier or _uid("document", graph.title or "")
    title = graph.title or "Standards framework"
    items: list[dict[str, Any]] = []
    assocs: list[dict[str, Any]] = []
    ids = {code: std.identifier or _uid("standard", code) for code, std in graph.standards.items()}
    groups: dict[tuple[str, str], str] = {}

    def node(code: str) -> dict[str, str]:
        std = graph.standards[code]
        if std.external:  # titled by its label; its own uri is the way to find it
            return _node(ids[code], std.description or code, std.attribute(EXTERNAL_URI))
        return _node(ids[code], code)

    def associate(kind: str, origin: dict[str, str], dest: dict[str, str], seq: int | None = None) -> None:
        ident = _uid(kind, origin["identifier"], dest["identifier"])
        entry: dict[str, Any] = {
            "identifier": ident,
            "uri": f"urn:uuid:{ident}",
            "associationType": kind,
            "originNodeURI": origin,
            "destinationNodeURI": dest,
            "lastChangeDateTime": created,
        }
        if seq is not None:
            entry["sequenceNumber"] = seq
        assocs.append(entry)

    def group(
        kind: str, code: str | None, name: str | None, levels: list[str], parent: dict[str, str]
    ) -> dict[str, str]:
        key = (kind, code or name or "")
        if key not in groups:
            ident = _uid(kind, key[1])
            groups[key] = ident
            items.append(
                {
                    "identifier": ident,
                    "uri": f"urn:uuid:{ident}",
                    "humanCodingScheme": code,
                    "fullStatement": name or code,
                    "CFItemType": kind,
                    "educationLevel": levels,
                    "lastChangeDateTime": created,
                }
            )
            associate("isChildOf", _node(ident, code or ""), parent, len(assocs) + 1)
        return _node(groups[key], code or "")

    document = _node(doc_id, "document")
    for code, std in graph.standards.items():
        if std.external:
            continue
        levels = levels_from_grade(std.grade)
        parent = document
        if std.parent is not None:
            parent = node(std.parent)
        else:
            if std.domain_code or std.domain_name:
                parent = group("Domain", _domain_group_code(std), std.domain_name, levels, parent)
            if std.cluster_code or std.cluster_name:
                parent = group("Cluster", std.cluster_code, std.cluster_name, levels, parent)
        items.append(_standard_item(std, ids[code], levels, created))
        associate("isChildOf", node(code), parent, len(assocs) + 1)
    for a, b in sorted(graph.prereq.edges, key=lambda e: (graph.order_of(e[0]), graph.order_of(e[1]))):
        associate("precedes", node(a), node(b))
    for a, b in sorted(graph.sort(pair) for pair in graph.related):
        associate("isRelatedTo", node(a), node(b))
    for res in graph.resources:
        entry_id = _uid("exemplar", res.standard, res.url)
        assocs.append(
            {
                "identifier": entry_id,
                "uri": f"urn:uuid:{entry_id}",
                "associationType": "exemplar",
                "originNodeURI": node(res.standard),
                "destinationNodeURI": {
                    "title": res.title or res.url,
                    "identifier": _uid("resource", res.url),
                    "uri": res.url,
                },
                "lastChangeDateTime": created,
            }
        )
    return {
        "CFDocument": {
            "identifier": doc_id,
            "uri": f"urn:uuid:{doc_id}",
            "creator": "zpd-engine export",
            "title": title,
            "lastChangeDateTime": created,
            "caseVersion": "1.1",
        },
        "CFItems": items,
        "CFAssociations": assocs,
    }


def _standard_item(std: Standard, ident: str, levels: list[str], created: str) -> dict[str, Any]:
    """The CFItem of a standard: CASE fields, then an ``extensions.zpd`` object with the rest."""
    attributes = dict(std.attributes)
    case_fields = {key: attributes.pop(name) for key, name in ITEM_ATTRIBUTES.items() if name in attributes}
    return {
        "identifier": ident,
        "uri": f"urn:uuid:{ident}",
        "humanCodingScheme": std.code,
        "fullStatement": std.description or std.code,
        "CFItemType": "Component" if std.parent else "Standard",
        "educationLevel": levels,
        **case_fields,
        "lastChangeDateTime": created,
        "extensions": {
            "zpd": {
                "grade": std.grade,
                "grade_num": std.grade_num,
                "domain_code": std.domain_code,
                "domain_name": std.domain_name,
                "cluster_code": std.cluster_code,
                "cluster_name": std.cluster_name,
                "cluster_emphasis": std.cluster_emphasis,
                "description": std.description,
                "aliases": list(std.aliases),
                "attributes": attributes,
            }
        },
    }


def _domain_group_code(std: Standard) -> str | None:
    """Grouping code for a domain: ``4.NF`` for K-8 (domains repeat across grades), ``F-IF`` for HS."""
    if std.domain_code and std.grade and std.grade != "HS" and not std.domain_code.startswith(f"{std.grade}."):
        return f"{std.grade}.{std.domain_code}"
    return std.domain_code


def write_case(graph: StandardsGraph, path: str | Path) -> None:
    """Write ``graph`` as a CASE package JSON file."""
    Path(path).write_text(json.dumps(graph_to_case(graph), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
