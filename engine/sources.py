"""Where graphs and catalogs come from: the bundled Coherence Map, a CSV folder, an edge-list
file or a CASE file.

The bundled default catalog is built from the Coherence Map's 1,303 real task, lesson and
assessment links; where a learnable standard has no real item of a kind the planner needs, a demo
item is generated and marked ``source="generated"``.
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections.abc import Iterable
from pathlib import Path

from configs import GraphConfig
from engine.case import CaseOptions, load_case
from engine.catalog import Catalog, Item, Modality, load_catalog
from engine.codes import CODE_STYLES, CodeStyle
from engine.graph import GraphError, StandardsGraph
from engine.graph_csv import EDGE_LIST_SUFFIXES, EdgeColumns, load_csv_graph, load_edge_list

__all__ = [
    "BUNDLED",
    "BUNDLED_GRAPH",
    "build_default_catalog",
    "graph_from_config",
    "link_url",
    "load_catalog_source",
    "load_graph",
]

BUNDLED = "bundled"
DATA_DIR = Path(__file__).resolve().parent.parent / "data"
BUNDLED_GRAPH = DATA_DIR / "standards" / "coherence_map"
CONTENT_LINKS = BUNDLED_GRAPH / "content_links.csv"

#: Coherence Map link category -> (modality, minutes, can confirm mastery)
_CATEGORIES: dict[str, tuple[Modality, float, bool]] = {
    "tasks": (Modality.ONLINE_PRACTICE, 15, False),
    "prior grade-level tasks": (Modality.ONLINE_PRACTICE, 15, False),
    "example problem": (Modality.READING, 10, False),
    "lessons": (Modality.SMALL_GROUP, 25, False),
    "assessment item": (Modality.ASSESSMENT, 10, True),
    "assessment items": (Modality.ASSESSMENT, 10, True),
    "assessments": (Modality.ASSESSMENT, 20, True),
}
_THEMES = ("sports", "music", "animals", "space", "cooking", "games", "art", "nature")
_LEADING_CODES = re.compile(
    r"^((?:[0-9K]\.[A-Z]{1,3}\.[A-Z]\.\d+[a-z]?)(?:\s*,\s*[0-9K]\.[A-Z]{1,3}\.[A-Z]\.\d+[a-z]?)*)\s+"
)


def load_graph(
    source: str | Path = BUNDLED,
    options: CaseOptions | None = None,
    *,
    columns: EdgeColumns | None = None,
    codes: CodeStyle | None = None,
) -> StandardsGraph:
    """Load a graph from ``"bundled"``, a folder of CSV files, an edge-list file (``.csv``,
    ``.tsv``, ``.tab``, ``.txt``) or a CASE package ``.json`` file.

    Parameters
    ----------
    source : where the graph is.
    options : how a CASE package is read.
    columns : the columns of the edge table (a folder's ``prerequisites.csv`` or an edge-list
        file); default ``prerequisite`` and ``dependent``.
    codes : how codes compare (:mod:`engine.codes`), default ``"ccss"``. The bundled Coherence Map
        is always read as ``"ccss"``; CASE packages are read as ``"ccss"`` for now.
    """
    if codes is not None and codes not in CODE_STYLES:
        raise GraphError(f"codes must be one of {', '.join(CODE_STYLES)}, got {codes!r}")
    if str(source) == BUNDLED:
        _csv_only(columns, "the bundled graph")
        return load_csv_graph(BUNDLED_GRAPH)
    path = Path(source)
    if path.is_dir():
        return load_csv_graph(path, columns=columns, codes=codes or "ccss")
    suffix = path.suffix.lower()
    if suffix == ".json":
        _csv_only(columns, f"{path} (a CASE package)")
        if codes not in (None, "ccss"):
            raise GraphError(f"{path}: a CASE package is read with CCSS codes; codes={codes!r} applies to CSV sources")
        return load_case(path, options)
    if suffix in EDGE_LIST_SUFFIXES:
        return load_edge_list(path, columns=columns, codes=codes or "ccss")
    expected = "a folder of CSV files, an edge-list file (.csv, .tsv) or a CASE package .json file"
    if not path.exists():
        raise GraphError(f"{path}: not found; expected {expected}")
    raise GraphError(f"{path}: expected {expected}")


def _csv_only(columns: EdgeColumns | None, source: str) -> None:
    if columns is not None:
        raise GraphError(f"a column mapping applies to an edge table (a CSV folder or file), not to {source}")


def graph_from_config(
    config: GraphConfig,
    source: str | Path | None = None,
    *,
    columns: EdgeColumns | None = None,
    codes: CodeStyle | None = None,
) -> StandardsGraph:
    """Load the configured graph (``[graph]``), or ``source`` read with the configured CASE options.

    The configured ``codes`` and ``columns`` describe the configured source, so they apply when
    ``source`` is None; ``columns`` and ``codes`` given here override them.
    """
    options = CaseOptions(config.prerequisite_association_types, config.grouping_item_types)
    if source is None:
        source = config.source
        if columns is None and config.columns:
            columns = EdgeColumns.from_mapping(config.columns, "[graph] columns")
        codes = codes or config.codes
    return load_graph(source, options, columns=columns, codes=codes)


def load_catalog_source(source: str | Path, graph: StandardsGraph, generate_missing: bool = True) -> Catalog:
    """Load ``"bundled"`` (the default catalog) or a catalog file checked against ``graph``."""
    if str(source) == BUNDLED:
        return build_default_catalog(graph, generate_missing=generate_missing)
    return load_catalog(source, graph)


def link_url(url: str) -> str:
    """An absolute URL for a Coherence Map link (some are site-relative or lack a scheme)."""
    url = url.strip()
    if url.startswith("/"):
        return "https://achievethecore.org" + url
    if not re.match(r"^https?://", url):
        return "https://" + url
    return url


def _real_items(graph: StandardsGraph) -> list[Item]:
    """One item per distinct link; a link listed under several standards is aligned to all."""
    by_url: dict[str, dict] = {}
    with CONTENT_LINKS.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            category = row["category"].strip()
            modality, minutes, check = _CATEGORIES[category.lower()]
            url = link_url(row["url"])
            title = " ".join(row["title"].split())
            standards = [row["standard"]]
            tags = []
            if category.lower() == "prior grade-level tasks":
                # Titles start with the codes the task is aligned to ("3.NBT.A.3 How Many ...").
                lead = _LEADING_CODES.match(title)
                if lead:
                    codes = [c.strip() for c in lead.group(1).split(",") if c.strip() in graph]
                    if codes:
                        standards = [graph.resolve(c) for c in codes]
                        title = title[lead.end() :]
                tags.append(f"prior-grade-for:{row['standard']}")
            entry = by_url.setdefault(
                url,
                {
                    "title": title or f"{category} for {row['standard']}",
                    "modality": modality,
                    "minutes": minutes,
                    "check": check,
                    "standards": [],
                    "tags": [],
                    "category": category.lower(),
                },
            )
            entry["standards"] += [s for s in standards if s not in entry["standards"]]
            entry["tags"] += [t for t in tags if t not in entry["tags"]]
    items = []
    for url, e in by_url.items():
        digest = hashlib.sha1(url.encode()).hexdigest()[:12]
        items.append(
            Item(
                id=f"cm-{digest}",
                title=e["title"],
                standards=tuple(e["standards"]),
                modality=e["modality"],
                duration_minutes=e["minutes"],
                url=url,
                tags=("coherence-map", *e["tags"]),
                source="coherence_map",
                mastery_check=e["check"],
            )
        )
    return items


def _generated_items(graph: StandardsGraph, catalog: Catalog) -> Iterable[Item]:
    """Demo items for learnable standards lacking practice, a mastery check, a small-group lesson
    or a tutoring activity. Practice sets get a theme tag so interest matching has something to use.

    A parent's lesson teaches its parts, but its practice and checks answer for every part at
    once, and the planner gives an item only when each standard it practises is ready: a part
    whose only practice is its parent's could not be practised before its sibling parts are
    ready, nor they without it. So a part gets practice and a check of its own unless it has
    some that practise it alone (lessons send no answer: ``Modality.answers``)."""
    for code in graph.internal_codes:
        if not graph.is_learnable(code):
            continue
        own = [i for owner in (code, *graph.lineage(code)) for i in catalog.for_standard(owner)]
        alone = [
            i
            for i in catalog.for_standard(code)
            if {u for s in i.standards if s in graph.standards for u in graph.leaves(s)} == {code}
        ]
        modalities = {i.modality for i in own}
        short = (graph.standards[code].description or code)[:60].rstrip()
        if not any(i.modality is Modality.ONLINE_PRACTICE for i in alone):
            offset = int(hashlib.sha1(code.encode()).hexdigest(), 16) % len(_THEMES)
            for level, difficulty in enumerate((0.3, 0.5, 0.7), start=1):
                theme = _THEMES[(offset + level) % len(_THEMES)]
                yield Item(
                    id=f"gen-{code}-practice-{level}",
                    title=f"{code} practice set {level} ({theme}): {short}",
                    standards=(code,),
                    modality=Modality.ONLINE_PRACTICE,
                    duration_minutes=10,
                    difficulty=difficulty,
                    tags=(theme,),
                    source="generated",
                )
        if not any(i.mastery_check for i in alone):
            yield Item(
                id=f"gen-{code}-check",
                title=f"{code} mastery check",
                standards=(code,),
                modality=Modality.ASSESSMENT,
                duration_minutes=10,
                difficulty=0.6,
                source="generated",
                mastery_check=True,
            )
        if Modality.SMALL_GROUP not in modalities:
            yield Item(
                id=f"gen-{code}-small-group",
                title=f"{code} small-group lesson: {short}",
                standards=(code,),
                modality=Modality.SMALL_GROUP,
                duration_minutes=20,
                source="generated",
            )
        if Modality.TUTORING not in modalities:
            yield Item(
                id=f"gen-{code}-tutoring",
                title=f"{code} one-to-one tutoring",
                standards=(code,),
                modality=Modality.TUTORING,
                duration_minutes=15,
                source="generated",
            )


def build_default_catalog(graph: StandardsGraph, generate_missing: bool = True) -> Catalog:
    """The bundled catalog for the bundled graph (real links first, then generated demo items)."""
    catalog = Catalog(_real_items(graph))
    if generate_missing:
        for item in list(_generated_items(graph, catalog)):
            catalog.add(item)
    return catalog
