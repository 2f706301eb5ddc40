"""Queries on small literal graphs where the right answer is known by hand."""

from __future__ import annotations

import pytest

from engine import queries as q
from engine.graph import Standard, StandardsGraph


def chain_graph() -> StandardsGraph:
    #   A -> B -> D
    #   A -> C -> D ;  E (isolated)
    codes = ["A", "B", "C", "D", "E"]
    return StandardsGraph(
        [Standard(c, grade_num=i) for i, c in enumerate(codes)], [("A", "B"), ("A", "C"), ("B", "D"), ("C", "D")]
    )


def parts_graph() -> StandardsGraph:
    # X -> P (a parent with parts P.a, P.b);  P -> Y;  P.a -> P.b (a sibling edge)
    stds = [
        Standard("X", grade_num=1),
        Standard("P", grade_num=2),
        Standard("P.a", grade_num=2, parent="P"),
        Standard("P.b", grade_num=2, parent="P"),
        Standard("Y", grade_num=3),
    ]
    return StandardsGraph(stds, [("X", "P"), ("P", "Y"), ("P.a", "P.b")])


def test_direct_and_transitive_relations() -> None:
    g = chain_graph()
    assert q.prerequisites(g, "D") == ["B", "C"]
    assert q.dependents(g, "A") == ["B", "C"]
    assert q.ancestors(g, "D") == ["A", "B", "C"]
    assert q.ancestors(g, "E") == []


def test_topological_layers() -> None:
    assert q.topological_layers(chain_graph()) == [["A", "E"], ["B", "C"], ["D"]]


def test_outer_fringe() -> None:
    g = chain_graph()
    assert q.outer_fringe(g, []) == ["A", "E"]
    assert q.outer_fringe(g, ["A"]) == ["B", "C", "E"]
    assert q.outer_fringe(g, ["A", "B"]) == ["C", "E"]  # D still waits for C
    assert q.outer_fringe(g, ["A", "B", "C"]) == ["D", "E"]


def test_inner_fringe() -> None:
    g = chain_graph()
    assert q.inner_fringe(g, ["A"]) == ["A"]
    assert q.inner_fringe(g, ["A", "B"]) == ["B"]
    assert q.inner_fringe(g, ["A", "B", "C"]) == ["B", "C"]
    assert q.inner_fringe(g, ["A", "B", "C", "D", "E"]) == ["D", "E"]


def test_route_is_unmastered_ancestors_in_learning_order() -> None:
    g = chain_graph()
    assert q.route(g, [], ["D"]) == ["A", "B", "C", "D"]
    assert q.route(g, ["A", "C"], ["D"]) == ["B", "D"]
    assert q.route(g, ["A", "B", "C", "D"], ["D"]) == []
    assert q.route(g, [], ["B", "E"]) == ["A", "B", "E"]


def test_route_order_respects_every_edge_on_the_bundled_graph(bundled_graph) -> None:
    steps = q.route(bundled_graph, [], ["8.EE.C.7", "A-REI.B.4.b"])
    position = {c: i for i, c in enumerate(steps)}
    for a, b in bundled_graph.learning.edges:
        if a in position and b in position:
            assert position[a] < position[b], (a, b)
    assert "8.EE.C.7.b" in steps and "8.EE.C.7" not in steps  # parents are learned through parts


def test_parent_rolls_up_from_parts() -> None:
    g = parts_graph()
    assert not q.is_mastered(g, "P", ["P.a"])
    assert q.is_mastered(g, "P", ["P.a", "P.b"])
    assert q.expand_mastery(g, ["P"]) == frozenset({"P.a", "P.b"})
    assert q.outer_fringe(g, ["X", "P.a", "P.b"]) == ["Y"]  # Y needs all of P
    assert q.outer_fringe(g, ["X", "P.a"]) == ["P.b"]


def test_edge_on_parent_applies_to_parts() -> None:
    g = parts_graph()
    assert q.outer_fringe(g, []) == ["X"]  # P.a waits for X, the prerequisite of its parent
    assert q.outer_fringe(g, ["X"]) == ["P.a"]  # P.b also waits for its sibling P.a
    assert g.learning_prerequisites("P.b") == ("X", "P.a")
    assert q.route(g, [], ["Y"]) == ["X", "P.a", "P.b", "Y"]
    assert q.ancestors(g, "P.a") == ["X"]


def test_inner_fringe_with_parts() -> None:
    g = parts_graph()
    assert q.inner_fringe(g, ["X", "P"]) == ["P.b"]


def test_downward_closure() -> None:
    g = chain_graph()
    assert q.downward_closure(g, ["D"]) == frozenset({"A", "B", "C", "D"})
    assert q.downward_closure(parts_graph(), ["Y"]) == frozenset({"X", "P.a", "P.b", "Y"})


def test_queries_accept_any_spelling(bundled_graph) -> None:
    assert q.prerequisites(bundled_graph, "CCSS.Math.Content.3.NF.A.1") == ["2.G.A.3", "2.MD.A.2"]
    assert "4.NF.B.3.a" not in q.route(bundled_graph, ["4.NF.B.3a"], ["4.NF.B.3.a"])
    assert q.route(bundled_graph, q.downward_closure(bundled_graph, ["4.NF.B.3a"]), ["4.NF.B.3.a"]) == []


def test_unknown_code_raises() -> None:
    from engine.graph import UnknownStandardError

    with pytest.raises(UnknownStandardError):
        q.route(chain_graph(), [], ["Z"])
