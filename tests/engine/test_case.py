"""CASE packages: round trip, the quirks of real exports, and every error path."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from engine.case import CaseOptions, graph_to_case, load_case, parse_case, write_case
from engine.graph import GraphError
from engine.sources import BUNDLED_GRAPH

DOC = {"identifier": "doc-1", "title": "Test framework", "uri": "urn:uuid:doc-1"}


def item(ident: str, code: str | None, kind: str | None = "Standard", **extra: Any) -> dict[str, Any]:
    return {
        "identifier": ident,
        "uri": f"urn:uuid:{ident}",
        "humanCodingScheme": code,
        "fullStatement": f"statement {code}",
        "CFItemType": kind,
        **extra,
    }


def assoc(ident: str, kind: str, origin: str, dest: str, **extra: Any) -> dict[str, Any]:
    return {
        "identifier": ident,
        "associationType": kind,
        "originNodeURI": {"identifier": origin, "uri": f"urn:uuid:{origin}", "title": origin},
        "destinationNodeURI": {"identifier": dest, "uri": f"urn:uuid:{dest}", "title": dest},
        **extra,
    }


def package(items: list, assocs: list) -> dict[str, Any]:
    return {"CFDocument": DOC, "CFItems": items, "CFAssociations": assocs}


BASIC_ITEMS = [
    item("d", "3.NF", "Domain"),
    item("c", "3.NF.A", "Cluster"),
    item("s1", "3.NF.A.1", educationLevel=["03"]),
    item("s2", "3.NF.A.2", educationLevel=["03"]),
    item("s3", "4.NF.A.1", educationLevel=["04"]),
]
BASIC_ASSOCS = [
    assoc("h1", "isChildOf", "c", "d"),
    assoc("h2", "isChildOf", "s1", "c"),
    assoc("h3", "isChildOf", "s2", "c"),
    assoc("p1", "precedes", "s1", "s2"),
    assoc("p2", "precedes", "s2", "s3"),
]


# ---------------------------------------------------------------------------- round trips
def test_csv_to_case_to_graph_round_trips_exactly(bundled_graph, tmp_path: Path) -> None:
    write_case(bundled_graph, tmp_path / "cm.json")
    again = load_case(tmp_path / "cm.json")
    assert again == bundled_graph
    assert again.to_dict() == bundled_graph.to_dict()


def test_case_to_graph_to_case_is_stable(bundled_graph) -> None:
    first = graph_to_case(bundled_graph)
    assert graph_to_case(parse_case(first)) == first


def test_third_party_case_export_of_the_coherence_map(bundled_graph) -> None:
    """The Coherence Map as published by another producer (its own identifiers and extensions)."""
    other = load_case(BUNDLED_GRAPH / "coherence_map_case.json")
    assert set(other.standards) == set(bundled_graph.standards)
    assert set(other.prereq.edges) == set(bundled_graph.prereq.edges)
    assert other.related == bundled_graph.related
    for code, std in bundled_graph.standards.items():
        mine = other.standards[code]
        assert (mine.parent, mine.grade, mine.grade_num, mine.cluster_code) == (
            std.parent,
            std.grade,
            std.grade_num,
            std.cluster_code,
        ), code
    assert other.resolve("4.NF.B.3a") == "4.NF.B.3.a"


# ---------------------------------------------------------------------------- mapping
def test_hierarchy_prerequisites_related_and_exemplars() -> None:
    items = [*BASIC_ITEMS, item("s1a", "3.NF.A.1.a", "Component"), item("s1b", "3.NF.A.1.b", "Component")]
    assocs = [
        *BASIC_ASSOCS,
        assoc("h4", "isChildOf", "s1a", "s1"),
        assoc("h5", "isPartOf", "s1b", "s1"),
        assoc("r1", "isRelatedTo", "s1", "s3"),
        assoc("r2", "isPeerOf", "s2", "s3"),
        assoc("r3", "exactMatchOf", "s1a", "s2"),
        {
            "identifier": "e1",
            "associationType": "exemplar",
            "originNodeURI": {"identifier": "s1", "uri": "urn:uuid:s1"},
            "destinationNodeURI": {"title": "A task", "identifier": "t1", "uri": "https://example.org/task"},
        },
    ]
    graph = parse_case(package(items, assocs))
    assert sorted(graph.prereq.edges) == [("3.NF.A.1", "3.NF.A.2"), ("3.NF.A.2", "4.NF.A.1")]
    assert graph.parts["3.NF.A.1"] == ("3.NF.A.1.a", "3.NF.A.1.b")
    assert graph["3.NF.A.1.a"].cluster_code == "3.NF.A"  # inherited from the parent
    assert graph["3.NF.A.2"].domain_code == "3.NF" and graph["3.NF.A.2"].grade == "3"
    assert "3.NF" not in graph.standards and "3.NF.A" not in graph.standards  # groupings
    assert {tuple(sorted(p)) for p in graph.related} == {
        ("3.NF.A.1", "4.NF.A.1"),
        ("3.NF.A.2", "4.NF.A.1"),
        ("3.NF.A.1.a", "3.NF.A.2"),
    }
    assert [(r.standard, r.url, r.title) for r in graph.resources] == [
        ("3.NF.A.1", "https://example.org/task", "A task")
    ]
    assert graph.title == "Test framework" and graph.identifier == "doc-1"


def test_prerequisite_association_types_are_configurable() -> None:
    assocs = [*BASIC_ASSOCS, assoc("x1", "hasPrerequisiteLink", "s1", "s3")]
    default = parse_case(package(BASIC_ITEMS, assocs))
    assert ("3.NF.A.1", "4.NF.A.1") not in default.prereq.edges
    assert any("'hasPrerequisiteLink' ignored" in w for w in default.warnings)
    custom = parse_case(package(BASIC_ITEMS, assocs), options=CaseOptions(("precedes", "hasPrerequisiteLink")))
    assert ("3.NF.A.1", "4.NF.A.1") in custom.prereq.edges


def test_is_child_of_between_standards_is_never_a_prerequisite() -> None:
    items = [*BASIC_ITEMS, item("s1a", "3.NF.A.1.a", "Component")]
    graph = parse_case(package(items, [*BASIC_ASSOCS, assoc("h4", "isChildOf", "s1a", "s1")]))
    assert not graph.prereq.has_edge("3.NF.A.1.a", "3.NF.A.1")
    assert not graph.prereq.has_edge("3.NF.A.1", "3.NF.A.1.a")


# ---------------------------------------------------------------------------- quirks of real exports
def test_legacy_educational_level_string() -> None:
    items = [
        {**item("s1", "3.NF.A.1"), "educationalLevel": "03"},
        {**item("s2", "A-SSE.A.1"), "educationalLevel": "09,10,11,12"},
        {**item("s3", "K.CC.A.1"), "educationalLevel": "KG"},
        {**item("s4", "A-SSE.A.2"), "educationalLevel": "09-12"},
    ]
    graph = parse_case(package(items, []))
    assert [graph[c].grade for c in ("3.NF.A.1", "A-SSE.A.1", "K.CC.A.1", "A-SSE.A.2")] == ["3", "HS", "K", "HS"]
    assert graph["K.CC.A.1"].grade_num == 0 and graph["A-SSE.A.1"].grade_num == 9


def test_sequence_number_as_string_orders_parts() -> None:
    items = [item("p", "5.NF.B.5"), item("b", "5.NF.B.5.b", "Component"), item("a", "5.NF.B.5.a", "Component")]
    assocs = [
        assoc("h1", "isChildOf", "b", "p", sequenceNumber="2"),
        assoc("h2", "isChildOf", "a", "p", sequenceNumber="1"),
    ]
    graph = parse_case(package(items, assocs))
    assert graph.parts["5.NF.B.5"] == ("5.NF.B.5.a", "5.NF.B.5.b")


def test_null_fields_are_tolerated() -> None:
    items = [
        {
            "identifier": "s1",
            "humanCodingScheme": "A.1",
            "fullStatement": None,
            "CFItemType": None,
            "educationLevel": None,
            "language": None,
            "extensions": None,
        },
        {
            "identifier": "s2",
            "humanCodingScheme": "A.2",
            "fullStatement": "x",
            "CFItemType": "Standard",
            "CFItemTypeURI": None,
            "notes": None,
        },
    ]
    assocs = [{**assoc("p1", "precedes", "s1", "s2"), "sequenceNumber": None, "CFAssociationGroupingURI": None}]
    graph = parse_case({"CFDocument": {"identifier": "d", "title": None}, "CFItems": items, "CFAssociations": assocs})
    assert graph["A.1"].description is None and graph["A.1"].grade is None
    assert list(graph.prereq.edges) == [("A.1", "A.2")]


def test_endpoints_outside_the_package_become_external_standards() -> None:
    assocs = [*BASIC_ASSOCS, assoc("x1", "precedes", "elsewhere-1", "s1")]
    assocs[-1]["originNodeURI"]["title"] = "2.MD.A.2"
    graph = parse_case(package(BASIC_ITEMS, assocs))
    assert graph["2.MD.A.2"].external is True
    assert graph.prereq.has_edge("2.MD.A.2", "3.NF.A.1")
    assert any("x1" in w and "elsewhere-1" in w and "external" in w for w in graph.warnings)
    assert "2.MD.A.2" not in graph.internal_codes


def test_case_1_1_package_wrapper_and_item_type_uri() -> None:
    items = [
        {**item("s1", "A.1", None), "CFItemTypeURI": {"title": "Standard", "identifier": "t"}},
        {**item("g", "A", None), "CFItemTypeURI": {"title": "Domain", "identifier": "t2"}},
        item("s2", "A.2"),
    ]
    assocs = [
        assoc("h", "isChildOf", "s1", "g"),
        {
            "identifier": "p",
            "associationType": "precedes",
            "originNodeURI": {"uri": "https://case.example.org/uri/s1"},
            "destinationNodeURI": {"uri": "urn:uuid:s2"},
        },
    ]
    graph = parse_case(
        {"CFPackage": {"CFDocument": {**DOC, "caseVersion": "1.1"}, "CFItems": items, "CFAssociations": assocs}}
    )
    assert set(graph.standards) == {"A.1", "A.2"}
    assert graph["A.1"].domain_code == "A"
    assert list(graph.prereq.edges) == [("A.1", "A.2")]


def test_item_without_code_uses_identifier_with_warning() -> None:
    graph = parse_case(package([item("s1", None)], []))
    assert "s1" in graph.standards
    assert graph.warnings == ("CFItem s1 has no humanCodingScheme; its identifier is used as its code",)


# ---------------------------------------------------------------------------- errors
def test_cycle_lists_codes(tmp_path: Path) -> None:
    path = tmp_path / "cyclic.json"
    path.write_text(json.dumps(package(BASIC_ITEMS, [*BASIC_ASSOCS, assoc("p3", "precedes", "s3", "s1")])))
    with pytest.raises(GraphError) as info:
        load_case(path)
    message = str(info.value)
    assert message.startswith(str(path)) and "prerequisite cycle" in message
    assert set(message.split("prerequisite cycle: ")[1].split(" -> ")) == {"3.NF.A.1", "3.NF.A.2", "4.NF.A.1"}


def test_duplicate_identifier_is_named() -> None:
    with pytest.raises(GraphError, match=r"CFItems\[3\]: duplicate identifier s1 \(also CFItems\[2\]\)"):
        parse_case(package([*BASIC_ITEMS[:3], item("s1", "9.X.1")], []))


def test_duplicate_code_names_both_identifiers() -> None:
    with pytest.raises(GraphError, match=r"CFItem s9: duplicate code '3.NF.A.1' \(also CFItem s1\)"):
        parse_case(package([*BASIC_ITEMS, item("s9", "3.NF.A.1")], []))


def test_self_loop_names_the_association() -> None:
    with pytest.raises(GraphError, match=r"CFAssociation p9: self-loop, '3.NF.A.1' precedes itself"):
        parse_case(package(BASIC_ITEMS, [assoc("p9", "precedes", "s1", "s1")]))


def test_association_without_endpoint_identifier() -> None:
    bad = {
        "identifier": "p9",
        "associationType": "precedes",
        "originNodeURI": {"title": "x"},
        "destinationNodeURI": {"identifier": "s1"},
    }
    with pytest.raises(GraphError, match=r"CFAssociation p9: origin has no identifier or uri"):
        parse_case(package(BASIC_ITEMS, [bad]))


def test_missing_identifier_and_association_type() -> None:
    with pytest.raises(GraphError, match=r"CFItems\[0\] has no 'identifier'"):
        parse_case(package([{"humanCodingScheme": "A.1"}], []))
    with pytest.raises(GraphError, match=r"CFAssociation p1 has no associationType"):
        parse_case(package(BASIC_ITEMS, [{**assoc("p1", "precedes", "s1", "s2"), "associationType": None}]))


def test_not_a_package_and_not_json(tmp_path: Path) -> None:
    with pytest.raises(GraphError, match=r"not a CASE package; expected a JSON object with CFDocument, CFItems"):
        parse_case({"items": []}, "upload.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(GraphError, match=r"broken.json: not valid JSON"):
        load_case(broken)
    with pytest.raises(GraphError, match=r"file not found"):
        load_case(tmp_path / "absent.json")
