"""Read and write 1EdTech CASE packages (CFPackage JSON, CASE 1.0 and 1.1).

Reading maps associations onto the graph:

* the configured prerequisite types (default ``precedes``): origin is a prerequisite of destination;
* ``isChildOf`` / ``isPartOf``: hierarchy. Between two standards it makes a sub-standard (part);
  a grouping item (Domain, Cluster...) gives the standard its domain and cluster; never an edge;
* ``isRelatedTo`` / ``isPeerOf`` / ``exactMatchOf``: undirected related links;
* ``exemplar``: a resource linked to the origin standard.

Real exports have quirks that are tolerated (legacy ``educationalLevel`` string, ``sequenceNumber``
as a string, null fields, a ``CFPackage`` wrapper, endpoints outside the package, which become
external standards with a warning). Broken packages raise :class:`GraphError` naming the
identifier at fault.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.graph import (
    ZPD_NAMESPACE,
    GraphError,
    Resource,
    StandardsGraph,
    grade_number,
    standard_from_fields,
)

__all__ = ["CaseOptions", "graph_to_case", "load_case", "parse_case", "write_case"]

HIERARCHY_TYPES = frozenset({"ischildof", "ispartof"})
RELATED_TYPES = frozenset({"isrelatedto", "ispeerof", "exactmatchof"})
EXEMPLAR_TYPE = "exemplar"
_HS_LEVELS = ("09", "10", "11", "12")
_GROUP_FIELDS = ("domain_code", "domain_name", "cluster_code", "cluster_name", "cluster_emphasis")
_LEVEL_RANGE = re.compile(r"^(\w+)\s*-\s*(\w+)$")


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
    sequence: int | None = None
    groups: list[str] = field(default_factory=list)  # identifiers of grouping parents


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
        self.document = self.package.get("CFDocument") or {}
        self.items: dict[str, _Item] = {}
        self.external: dict[str, str] = {}  # identifier -> code

    def error(self, message: str) -> GraphError:
        return GraphError(f"{self.where}: {message}")

    def read_items(self) -> None:
        codes: dict[str, str] = {}
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
                if code in codes:
                    raise self.error(
                        f"CFItem {ident}: duplicate code {code!r} (also CFItem {codes[code]}); "
                        "each standard needs its own humanCodingScheme"
                    )
                codes[code] = ident
            self.items[ident] = _Item(index, raw, ident, code, item_type, grouping)

    def _endpoint(self, assoc_id: str, node: Any, role: str, keep_external: bool) -> str | None:
        ident = _node_identifier(node)
        if ident is None:
            raise self.error(
                f'CFAssociation {assoc_id}: {role} has no identifier or uri; expected {{"identifier": ..., "uri": ...}}'
            )
        if ident in self.items or ident == _text(self.document.get("identifier")):
            return ident
        if not keep_external:
            return None
        if ident not in self.external:
            title = _text(node.get("title")) if isinstance(node, Mapping) else None
            code = title or ident
            if any(item.code == code and not item.grouping for item in self.items.values()):
                code = ident
            self.external[ident] = code
            self.warnings.append(
                f"CFAssociation {assoc_id}: {role} {ident} ({code}) is not in this package; "
                "kept as an external standard"
            )
        return ident

    def read_associations(self) -> tuple[list, list, list]:
        prereqs, related, resources = [], [], []
        ignored: dict[str, int] = {}
        for index, raw in enumerate(self.package.get("CFAssociations") or []):
            if not isinstance(raw, Mapping):
                raise self.error(f"CFAssociations[{index}] is not an object")
            assoc_id = _text(raw.get("identifier")) or f"CFAssociations[{index}]"
            kind = (_text(raw.get("associationType")) or "").lower()
            if not kind:
                raise self.error(f"CFAssociation {assoc_id} has no associationType")
            if kind == EXEMPLAR_TYPE:
                origin = self._endpoint(assoc_id, raw.get("originNodeURI"), "origin", False)
                dest = raw.get("destinationNodeURI") or {}
                url = _text(dest.get("uri")) if isinstance(dest, Mapping) else None
                if origin in self.items and url:
                    resources.append((origin, url, _text(dest.get("title"))))
                continue
            if kind in HIERARCHY_TYPES:
                self._read_hierarchy(assoc_id, raw)
                continue
            if kind not in self.prereq_types and kind not in RELATED_TYPES:
                raw_type = raw["associationType"]  # present: kind is not empty
                ignored[raw_type] = ignored.get(raw_type, 0) + 1
                continue
            origin = self._endpoint(assoc_id, raw.get("originNodeURI"), "origin", True)
            dest = self._endpoint(assoc_id, raw.get("destinationNodeURI"), "destination", True)
            assert origin is not None and dest is not None  # keep_external=True: _endpoint never returns None
            for end in (origin, dest):
                if end in self.items and self.items[end].grouping:
                    self.warnings.append(
                        f"CFAssociation {assoc_id}: {raw['associationType']} on grouping item "
                        f"{self.items[end].code!r} ({self.items[end].item_type}) ignored"
                    )
                    break
            else:
                if kind in self.prereq_types:
                    if origin == dest:
                        raise self.error(f"CFAssociation {assoc_id}: self-loop, {self._code(origin)!r} precedes itself")
                    prereqs.append((origin, dest, assoc_id))
                elif origin != dest:
                    related.append((origin, dest))
        for kind, count in sorted(ignored.items()):
            self.warnings.append(f"{count} association(s) of type {kind!r} ignored (not used by the graph)")
        return prereqs, related, resources

    def _read_hierarchy(self, assoc_id: str, raw: Mapping[str, Any]) -> None:
        child = self._endpoint(assoc_id, raw.get("originNodeURI"), "origin", False)
        parent = self._endpoint(assoc_id, raw.get("destinationNodeURI"), "destination", False)
        if child is None or child not in self.items:
            return
        item = self.items[child]
        if item.sequence is None:
            item.sequence = _sequence(raw.get("sequenceNumber"))
        if parent is None or parent not in self.items:
            return  # a child of the document, or of something outside the package
        if self.items[parent].grouping:
            item.groups.append(parent)
        elif item.parent is None:
            item.parent = parent
        elif item.parent != parent:
            self.warnings.append(
                f"CFAssociation {assoc_id}: {item.code!r} already has parent "
                f"{self.items[item.parent].code!r}; second parent {self.items[parent].code!r} ignored"
            )

    def _code(self, ident: str) -> str:
        return self.items[ident].code if ident in self.items else self.external[ident]

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
            "attributes": _coherence_attributes(cm),
        }
        # Of the grouping ancestors, a Cluster gives the cluster, a Domain the domain; in other
        # frameworks the nearest grouping is the cluster and the next one the domain.
        groups = self._grouping_ancestors(item)
        by_type = {(g.item_type or "").lower(): g for g in groups}
        cluster = by_type.get("cluster") or (groups[0] if groups else None)
        domain = by_type.get("domain") or next((g for g in groups if g is not cluster), None)
        if cluster is not None:
            cluster_ext = (cluster.raw.get("extensions") or {}).get("coherenceMap") or {}
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
        if "aliases" in zpd:
            fields["aliases"] = tuple(zpd["aliases"])
        if "attributes" in zpd:
            fields["attributes"] = {str(k): str(v) for k, v in zpd["attributes"].items()}
        return fields


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
    prereqs, related, resources = reader.read_associations()
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
    records += [
        standard_from_fields(code, {"identifier": ident, "external": True}) for ident, code in reader.external.items()
    ]
    code = reader._code
    try:
        return StandardsGraph(
            records,
            [(code(a), code(b)) for a, b, _ in prereqs],
            [(code(a), code(b)) for a, b in related],
            [Resource(code(o), url, title) for o, url, title in resources],
            title=_text(reader.document.get("title")),
            identifier=_text(reader.document.get("identifier")),
            warnings=reader.warnings,
        )
    except GraphError as exc:
        raise reader.error(str(exc)) from None


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


def _node(ident: str, title: str) -> dict[str, str]:
    return {"title": title, "identifier": ident, "uri": f"urn:uuid:{ident}"}


def graph_to_case(graph: StandardsGraph, *, created: str = "2026-01-01T00:00:00+00:00") -> dict[str, Any]:
    """Export ``graph`` as a CASE 1.1 CFPackage (a plain dict ready for ``json.dump``).

    Domains and clusters become grouping CFItems; fields CASE has no place for travel in an
    ``extensions.zpd`` object, so ``parse_case(graph_to_case(g)) == g``.
    """
    doc_id = graph.identifier or _uid("document", graph.title or "")
    title = graph.title or "Standards framework"
    items: list[dict[str, Any]] = []
    assocs: list[dict[str, Any]] = []
    ids = {code: std.identifier or _uid("standard", code) for code, std in graph.standards.items()}
    groups: dict[tuple[str, str], str] = {}

    def associate(kind: str, origin: tuple[str, str], dest: tuple[str, str], seq: int | None = None) -> None:
        entry: dict[str, Any] = {
            "identifier": _uid(kind, origin[0], dest[0]),
            "uri": f"urn:uuid:{_uid(kind, origin[0], dest[0])}",
            "associationType": kind,
            "originNodeURI": _node(*origin),
            "destinationNodeURI": _node(*dest),
            "lastChangeDateTime": created,
        }
        if seq is not None:
            entry["sequenceNumber"] = seq
        assocs.append(entry)

    def group(
        kind: str, code: str | None, name: str | None, levels: list[str], parent: tuple[str, str]
    ) -> tuple[str, str]:
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
            associate("isChildOf", (ident, code or ""), parent, len(assocs) + 1)
        return groups[key], code or ""

    document = (doc_id, "document")
    for code, std in graph.standards.items():
        if std.external:
            continue
        levels = levels_from_grade(std.grade)
        parent: tuple[str, str] = document
        if std.parent is not None:
            parent = (ids[std.parent], std.parent)
        else:
            if std.domain_code or std.domain_name:
                parent = group("Domain", _domain_group_code(std), std.domain_name, levels, parent)
            if std.cluster_code or std.cluster_name:
                parent = group("Cluster", std.cluster_code, std.cluster_name, levels, parent)
        items.append(
            {
                "identifier": ids[code],
                "uri": f"urn:uuid:{ids[code]}",
                "humanCodingScheme": code,
                "fullStatement": std.description or code,
                "CFItemType": "Component" if std.parent else "Standard",
                "educationLevel": levels,
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
                        "attributes": dict(std.attributes),
                    }
                },
            }
        )
        associate("isChildOf", (ids[code], code), parent, len(assocs) + 1)
    for a, b in sorted(graph.prereq.edges, key=lambda e: (graph.order_of(e[0]), graph.order_of(e[1]))):
        associate("precedes", (ids[a], a), (ids[b], b))
    for a, b in sorted(graph.sort(pair) for pair in graph.related):
        associate("isRelatedTo", (ids[a], a), (ids[b], b))
    for res in graph.resources:
        entry_id = _uid("exemplar", res.standard, res.url)
        assocs.append(
            {
                "identifier": entry_id,
                "uri": f"urn:uuid:{entry_id}",
                "associationType": "exemplar",
                "originNodeURI": _node(ids[res.standard], res.standard),
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


def _domain_group_code(std) -> str | None:
    """Grouping code for a domain: ``4.NF`` for K-8 (domains repeat across grades), ``F-IF`` for HS."""
    if std.domain_code and std.grade and std.grade != "HS" and not std.domain_code.startswith(f"{std.grade}."):
        return f"{std.grade}.{std.domain_code}"
    return std.domain_code


def write_case(graph: StandardsGraph, path: str | Path) -> None:
    """Write ``graph`` as a CASE package JSON file."""
    Path(path).write_text(json.dumps(graph_to_case(graph), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
