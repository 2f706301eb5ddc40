"""Every trained model ships the way the bundled one does: the trained part where the data has
standards of the deployment's graph, graph BKT everywhere else (:class:`models.hybrid.HybridModel`).

A log whose skills are not the graph's standards (a data set's own skill ids) needs an alignment
(``data/alignments``, :mod:`training.alignment`) to be of use: without one the trained part knows
none of the standards, which :func:`coverage` reports and the promotion gate refuses.
"""

from __future__ import annotations

from collections.abc import Mapping

from engine.graph import StandardsGraph
from models.base import LearnerModel
from models.bkt import GraphBKT
from models.hybrid import HybridModel

__all__ = ["coverage", "package_for_graph"]


def package_for_graph(
    model: LearnerModel, graph: StandardsGraph, bkt: Mapping[str, float] | None = None
) -> HybridModel:
    """The trained ``model`` with graph BKT for every standard of ``graph`` (the same packaging as
    the bundled model)."""
    return HybridModel.combine(model, GraphBKT.from_graph(graph, **dict(bkt or {})))


def coverage(model: LearnerModel, graph: StandardsGraph) -> tuple[int, int]:
    """(standards of the graph's learning units the trained model knows, learning units)."""
    units = list(graph.learning)
    known = set(model.standards)
    return sum(1 for u in units if u in known), len(units)
