"""Queries over a standards graph: pure functions of the graph and plain values.

A *mastery set* is any iterable of codes (any spelling). Naming a parent standard means all of its
parts are mastered; a parent counts as mastered when all of its parts are. Fringes and routes are
expressed in learnable units (standards without parts), which is what a learner practises.

>>> from engine.graph import Standard, StandardsGraph
>>> g = StandardsGraph([Standard("A"), Standard("B"), Standard("C")], [("A", "B"), ("B", "C")])
>>> outer_fringe(g, {"A"})
['B']
>>> route(g, {"A"}, ["C"])
['B', 'C']
"""

from __future__ import annotations

from collections.abc import Iterable

import networkx as nx

from engine.graph import StandardsGraph

__all__ = [
    "ancestors",
    "dependents",
    "downward_closure",
    "expand_mastery",
    "inner_fringe",
    "is_mastered",
    "outer_fringe",
    "prerequisites",
    "route",
    "topological_layers",
]


def prerequisites(graph: StandardsGraph, code: str) -> list[str]:
    """Direct prerequisites of ``code`` as the source lists them."""
    return graph.sort(graph.prereq.predecessors(graph.resolve(code)))


def dependents(graph: StandardsGraph, code: str) -> list[str]:
    """Standards that list ``code`` as a direct prerequisite."""
    return graph.sort(graph.prereq.successors(graph.resolve(code)))


def ancestors(graph: StandardsGraph, code: str) -> list[str]:
    """Every standard needed before ``code``: transitive prerequisites of it and of its parents."""
    code = graph.resolve(code)
    found: set[str] = set()
    for node in (code, *graph.lineage(code)):
        found |= nx.ancestors(graph.prereq, node)
    return graph.sort(found)


def topological_layers(graph: StandardsGraph) -> list[list[str]]:
    """Layers of the prerequisite graph: layer 0 has no prerequisites, layer k needs layer < k."""
    return [graph.sort(layer) for layer in nx.topological_generations(graph.prereq)]


def expand_mastery(graph: StandardsGraph, mastered: Iterable[str]) -> frozenset[str]:
    """The learnable units covered by a mastery set (a mastered parent covers all its parts)."""
    return frozenset(leaf for code in mastered for leaf in graph.leaves(graph.resolve(code)))


def downward_closure(graph: StandardsGraph, mastered: Iterable[str]) -> frozenset[str]:
    """A mastery set completed with everything its standards build on.

    Use it when a mastery set is a teacher's or learner's statement ("has mastered 3.NF.A.1"),
    which implies the prerequisites; a model's per-standard evidence should stay literal.
    """
    done = set(expand_mastery(graph, mastered))
    for leaf in list(done):
        done |= nx.ancestors(graph.learning, leaf)
    return frozenset(done)


def is_mastered(graph: StandardsGraph, code: str, mastered: Iterable[str]) -> bool:
    """True when every learnable unit of ``code`` is mastered (sub-standards roll up)."""
    leaves = mastered if isinstance(mastered, frozenset) else expand_mastery(graph, mastered)
    return all(leaf in leaves for leaf in graph.leaves(graph.resolve(code)))


def outer_fringe(graph: StandardsGraph, mastered: Iterable[str]) -> list[str]:
    """Learnable units not mastered whose prerequisites are all mastered ("ready to learn")."""
    done = expand_mastery(graph, mastered)
    return [
        code
        for code in graph.learning
        if code not in done and all(p in done for p in graph.learning_prerequisites(code))
    ]


def inner_fringe(graph: StandardsGraph, mastered: Iterable[str]) -> list[str]:
    """Mastered units that no other mastered unit builds on: the edge of what the learner knows,
    where review and re-checks of mastery go (removing one leaves a consistent state)."""
    done = expand_mastery(graph, mastered)
    return graph.sort(code for code in done if not any(succ in done for succ in graph.learning.successors(code)))


def route(graph: StandardsGraph, mastered: Iterable[str], goals: Iterable[str]) -> list[str]:
    """The learnable units still to learn to reach ``goals``, in a valid learning order.

    That is the goals' unmastered units and all their unmastered ancestors in the learning graph,
    ordered so every unit comes after its prerequisites (ties: lower grade first, then source order).
    """
    done = expand_mastery(graph, mastered)
    targets = {leaf for goal in goals for leaf in graph.leaves(graph.resolve(goal))}
    needed: set[str] = set()
    for leaf in targets:
        needed.add(leaf)
        needed |= nx.ancestors(graph.learning, leaf)
    needed -= done
    sub = graph.learning.subgraph(needed)

    def key(code: str) -> tuple[int, int]:
        grade = graph.standards[code].grade_num
        return (99 if grade is None else grade, graph.order_of(code))

    return list(nx.lexicographical_topological_sort(sub, key=key))
