"""CASE packages: round trip, the quirks of real exports, and every error path."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from configs import PlannerConfig
from engine import queries
from engine.case import CaseOptions, graph_to_case, load_case, parse_case, write_case
from engine.catalog import Catalog, Item, Modality
from engine.graph import GraphError, StandardsGraph
from engine.learner import LearnerCore
from engine.planner.index import PlannerIndex
from engine.simulation.evaluate import misspecify
from engine.sources import BUNDLED_GRAPH
from models.bkt import GraphBKT

DOC = {"identifier": "doc-1", "title": "Test framework", "uri": "urn:uuid:doc-1"}
OPENSALT = Path(__file__).parent / "data" / "case_opensalt_quirks.json"

# Endpoints outside the OpenSALT package (every one titled "Origin" or "Destination" there).
EXT_2G3 = "33d80576-90ed-5ad2-bd5f-bd3741db3280"  # precedes 3.NF.A.1
EXT_2MD2 = "d1aa1f5c-bd3e-5213-82d6-e8cdf36798c4"  # precedes 3.NF.A.1, and 3.NF.A.2 named by its uri only
EXT_5NF1 = "f6dc0f0b-fc2a-5284-b8ef-c4183aeba82d"  # follows 4.NF.A.1 and 4.NF.A.2
EXT_STRIPS = "97117105-2e98-5bf2-9b62-8ffe2f0e63d0"  # between 3.NF.A.3 and 4.NF.A.2
EXT_CCSS_3NF1 = "23ed0726-1b37-5276-819e-44327fc3ca1f"  # 3.NF.A.1 exactMatchOf it
EXT_CCSS_4NFA = "bb808bd0-20c4-5a8c-9034-449df93a8067"  # only related to the cluster 4.NF.A


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
    outside = graph["elsewhere-1"]  # keyed by its identifier; its title is a label
    assert outside.external is True and outside.description == "2.MD.A.2"
    assert "2.MD.A.2" not in graph
    assert graph.prereq.has_edge("elsewhere-1", "3.NF.A.1")
    assert graph.warnings == (
        "CFAssociation x1: endpoint elsewhere-1 ('2.MD.A.2') is not in this package; "
        "kept as an external standard (not a learnable unit)",
    )
    assert "elsewhere-1" not in graph.internal_codes


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
    assert set(message.split("CFAssociations ")[1].split(" make ")[0].split(", ")) == {"p1", "p2", "p3"}


def test_edge_into_its_own_part_names_the_association() -> None:
    items = [*BASIC_ITEMS, item("s1a", "3.NF.A.1.a")]
    assocs = [*BASIC_ASSOCS, assoc("h4", "isChildOf", "s1a", "s1"), assoc("p9", "precedes", "s1", "s1a")]
    with pytest.raises(
        GraphError, match=r"CFAssociation p9: '3.NF.A.1' precedes '3.NF.A.1.a', a standard and its own part"
    ):
        parse_case(package(items, assocs))


def test_hierarchy_cycle_names_the_associations() -> None:
    assocs = [*BASIC_ASSOCS, assoc("h8", "isChildOf", "s1", "s2"), assoc("h9", "isChildOf", "s2", "s1")]
    with pytest.raises(GraphError) as info:
        parse_case(package(BASIC_ITEMS, assocs))
    assert str(info.value) == (
        "CASE package: CFAssociations h8, h9 make a hierarchy cycle (each is a part of the next): "
        "3.NF.A.1 -> 3.NF.A.2 -> 3.NF.A.1"
    )


def test_cycle_through_parts_names_the_items() -> None:
    """4.NF.A.1 precedes 3.NF.A.1, so each of its parts, and one part precedes 4.NF.A.1."""
    items = [*BASIC_ITEMS, item("s1a", "3.NF.A.1.a"), item("s1b", "3.NF.A.1.b")]
    assocs = [
        assoc("h4", "isChildOf", "s1a", "s1"),
        assoc("h5", "isChildOf", "s1b", "s1"),
        assoc("p1", "precedes", "s3", "s1"),
        assoc("p2", "precedes", "s1b", "s3"),
    ]
    with pytest.raises(GraphError) as info:
        parse_case(package(items, assocs))
    message = str(info.value)
    assert "prerequisite cycle" in message
    assert "4.NF.A.1 is CFItem s3" in message and "3.NF.A.1.b is CFItem s1b" in message


def test_two_spellings_of_one_code_name_both_items() -> None:
    with pytest.raises(GraphError) as info:
        parse_case(package([item("s1", "4.NF.B.3a"), item("s2", "4.NF.B.3.a")], []))
    assert "4.NF.B.3a is CFItem s1" in str(info.value) and "4.NF.B.3.a is CFItem s2" in str(info.value)


def test_outside_endpoint_with_the_code_of_an_item_names_the_association() -> None:
    with pytest.raises(
        GraphError,
        match=r"CFAssociation x1: origin 3.NF.A.2 is not an item of this package but is the code of CFItem s2",
    ):
        parse_case(package(BASIC_ITEMS, [assoc("x1", "precedes", "3.NF.A.2", "s3")]))


def test_precedes_its_own_exact_match_names_the_association() -> None:
    assocs = [*BASIC_ASSOCS, assoc("m1", "exactMatchOf", "s1", "x"), assoc("p9", "precedes", "x", "s1")]
    with pytest.raises(GraphError, match=r"CFAssociation p9: self-loop, '3.NF.A.1' precedes itself"):
        parse_case(package(BASIC_ITEMS, assocs))


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


# ---------------------------------------------------------------------------- a real OpenSALT export
@pytest.fixture(scope="module")
def opensalt() -> StandardsGraph:
    return load_case(OPENSALT)


def test_opensalt_endpoints_outside_the_package_are_keyed_by_identifier(opensalt) -> None:
    """OpenSALT titles every outside endpoint "Origin" or "Destination": titles are no keys."""
    assert opensalt.internal_codes == [
        "3.NF.A.1",
        "3.NF.A.2",
        "3.NF.A.2.a",
        "3.NF.A.2.b",
        "3.NF.A.3",
        "4.NF.A.1",
        "4.NF.A.2",
    ]
    externals = [code for code, std in opensalt.standards.items() if std.external]
    assert externals == sorted([EXT_2G3, EXT_2MD2, EXT_5NF1, EXT_STRIPS])
    assert all(opensalt[code].description is None for code in externals)  # a role is not a label
    assert "Origin" not in opensalt and "Destination" not in opensalt
    # one external, named once by identifier and once by uri only
    assert opensalt.prereq.has_edge(EXT_2MD2, "3.NF.A.1") and opensalt.prereq.has_edge(EXT_2MD2, "3.NF.A.2")
    assert opensalt[EXT_2MD2].attribute("uri") == f"https://opensalt.net/uri/{EXT_2MD2}"


def test_opensalt_warnings_name_each_association(opensalt) -> None:
    assert opensalt.warnings == (
        "CFAssociation 661ed194-2b36-5b4c-b884-5e6da9eeaf5a: exemplar on grouping item '3.NF.A' (Cluster) ignored",
        "CFAssociation 61265489-e727-52b5-87ea-a2ac739c199c: precedes on grouping item '3.NF.A' (Cluster) ignored",
        "CFAssociation 3f4b93cb-aec7-5dd8-ba8c-72370397c9e6: isRelatedTo on grouping item '4.NF.A' (Cluster) ignored",
        f"CFAssociation 72d0fdc1-1b0f-5faa-aa9d-2cbe484580d6: endpoint {EXT_2G3} is not in this package; "
        "kept as an external standard (not a learnable unit)",
        "CFAssociations 30f3e1d2-3570-5169-8235-5e712bfb5f14, 75c2f910-e8da-5bb5-b9e3-41b7247b0b80: "
        f"endpoint {EXT_2MD2} is not in this package; kept as an external standard (not a learnable unit)",
        "CFAssociations b3454178-730a-5df5-8e52-ebb88736c291, fe095b4d-4d05-5335-aa32-4d7eedf78f65: "
        f"endpoint {EXT_5NF1} is not in this package; kept as an external standard (not a learnable unit)",
        "CFAssociations 5f89df5c-7866-53a8-9a90-e03fc206a59e, 9b1dc97b-b4a0-5d4a-a221-4e675bca2f2e: "
        f"endpoint {EXT_STRIPS} is not in this package; kept as an external standard (not a learnable unit)",
        "1 association(s) of type 'hasSkillLevel' ignored (not used by the graph): "
        "79b32258-bc8b-539b-b246-67b24e523a25",
    )


def test_opensalt_associations_on_groupings_are_skipped(opensalt) -> None:
    """An exemplar on a cluster is skipped like a precedes on one, and leaves no external behind."""
    assert [(r.standard, r.url) for r in opensalt.resources] == [("3.NF.A.1", "https://tasks.example.org/number-line")]
    assert set(opensalt.prereq.predecessors("4.NF.A.1")) == {"3.NF.A.2"}
    assert EXT_CCSS_4NFA not in opensalt


def test_associations_on_any_grouping_are_skipped_the_same_way() -> None:
    assocs = [
        *BASIC_ASSOCS,
        {
            "identifier": "e1",
            "associationType": "exemplar",
            "originNodeURI": {"identifier": "d", "uri": "urn:uuid:d", "title": "Origin"},
            "destinationNodeURI": {"title": "Fraction wall", "uri": "https://example.org/wall"},
        },
        assoc("p9", "precedes", "s3", "c"),
        assoc("p10", "precedes", "doc-1", "s1"),
    ]
    graph = parse_case(package(BASIC_ITEMS, assocs))
    assert graph.resources == () and graph.prereq.number_of_edges() == 2
    assert graph.warnings == (
        "CFAssociation e1: exemplar on grouping item '3.NF' (Domain) ignored",
        "CFAssociation p9: precedes on grouping item '3.NF.A' (Cluster) ignored",
        "CFAssociation p10: precedes names the document doc-1, not a standard; ignored",
    )


def test_opensalt_externals_are_not_learnable_units(opensalt) -> None:
    units = ["3.NF.A.1", "3.NF.A.2.a", "3.NF.A.2.b", "3.NF.A.3", "4.NF.A.1", "4.NF.A.2"]
    assert sorted(opensalt.learning) == units
    assert not opensalt.is_learnable(EXT_2G3) and opensalt.leaves(EXT_2G3) == ()
    assert queries.outer_fringe(opensalt, []) == ["3.NF.A.1"]
    assert queries.outer_fringe(opensalt, queries.downward_closure(opensalt, ["4.NF.A.1"])) == ["3.NF.A.3"]
    assert queries.route(opensalt, [], ["4.NF.A.2"]) == units
    # the order an external implies between two standards of the package is kept
    assert "3.NF.A.3" in opensalt.learning_prerequisites("4.NF.A.2")


def test_opensalt_externals_are_never_planned(opensalt) -> None:
    catalog = Catalog(
        [
            Item("i1", "Number line practice", ("3.NF.A.1",), Modality.ONLINE_PRACTICE, 10),
            Item("i2", "Grade 2 review", (EXT_2MD2,), Modality.ONLINE_PRACTICE, 10),
        ]
    )
    index = PlannerIndex.build(opensalt, catalog)
    assert index.item_units == {"i1": ("3.NF.A.1",), "i2": ()}
    assert not any(opensalt.standards[unit].external for unit in index.order)
    core = LearnerCore(index, PlannerConfig(), GraphBKT.from_graph(opensalt))
    profile = core.profile(core.new(seed=1), now=0.0)
    assert sorted(profile.mastery) == sorted(opensalt.internal_codes)
    assert {m.status for m in profile.mastery.values()} == {"not_started"}
    # a simulation's misspecified copy keeps the externals and their edges as they are
    wrong = misspecify(opensalt, drop=0.0, add=0.1)
    assert set(wrong.standards) == set(opensalt.standards) and set(opensalt.prereq.edges) <= set(wrong.prereq.edges)


def test_opensalt_exact_match_resolves_the_external_endpoint(opensalt) -> None:
    """The CCSS original of 3.NF.A.1 is 3.NF.A.1: what names it applies to 3.NF.A.1."""
    assert EXT_CCSS_3NF1 not in opensalt
    assert opensalt.prereq.has_edge("3.NF.A.1", "3.NF.A.3")
    assert frozenset({"3.NF.A.1", "4.NF.A.1"}) in opensalt.related
    assert not any(EXT_CCSS_3NF1 in warning for warning in opensalt.warnings)


def test_exact_match_of_two_standards_keeps_the_external() -> None:
    assocs = [*BASIC_ASSOCS, assoc("m1", "exactMatchOf", "s1", "x"), assoc("m2", "exactMatchOf", "x", "s3")]
    graph = parse_case(package(BASIC_ITEMS, assocs))
    assert graph["x"].external
    assert graph.warnings[0] == (
        "CFAssociations m1, m2: x, outside this package, is an exact match of both '3.NF.A.1' and '4.NF.A.1'; "
        "kept as an external standard"
    )


def test_opensalt_export_load_export_is_a_fixed_point(opensalt, tmp_path: Path) -> None:
    first = graph_to_case(opensalt)
    again = parse_case(first)
    assert again == opensalt
    assert graph_to_case(again) == first
    write_case(opensalt, tmp_path / "first.json")
    write_case(load_case(tmp_path / "first.json"), tmp_path / "second.json")
    assert (tmp_path / "first.json").read_bytes() == (tmp_path / "second.json").read_bytes()


def test_opensalt_export_keeps_notes_list_enumeration_and_language(opensalt) -> None:
    items = {i["humanCodingScheme"]: i for i in graph_to_case(opensalt)["CFItems"]}
    assert items["3.NF.A.2.b"]["notes"] == "Recognize that the resulting interval has size a/b."
    assert items["3.NF.A.2.b"]["listEnumeration"] == "b"
    assert items["4.NF.A.2"]["language"] == "en"
    assert "notes" not in items["3.NF.A.2"]  # an item without notes gets none
    assert "notes" not in items["3.NF.A.2.b"]["extensions"]["zpd"]["attributes"]  # kept once, where CASE puts it
    assert opensalt["3.NF.A.2.b"].attribute("list_enumeration") == "b"


def test_opensalt_export_keeps_the_external_endpoints(opensalt) -> None:
    package = graph_to_case(opensalt)
    ends = {
        node["identifier"]: node
        for a in package["CFAssociations"]
        if a["associationType"] != "exemplar"  # whose destination is a resource
        for node in (a["originNodeURI"], a["destinationNodeURI"])
    }
    assert ends[EXT_2MD2] == {
        "title": EXT_2MD2,
        "identifier": EXT_2MD2,
        "uri": f"https://opensalt.net/uri/{EXT_2MD2}",
    }
    exported_externals = (
        set(ends) - {i["identifier"] for i in package["CFItems"]} - {package["CFDocument"]["identifier"]}
    )
    assert {EXT_2G3, EXT_2MD2, EXT_5NF1, EXT_STRIPS} == exported_externals
