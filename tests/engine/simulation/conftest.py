"""Small literal graphs and catalogs for the simulator tests."""

from __future__ import annotations

import numpy as np
import pytest

from engine.catalog import Catalog, Item, Modality
from engine.graph import Standard, StandardsGraph
from engine.simulation import LearnerProfile, SimulatorConfig, TruthIndex


def ladder_graph() -> StandardsGraph:
    """A(1) -> B(2) -> D(3);  A -> C(2) -> D;  B -> P(3) with parts P.a -> P.b;  E(3) isolated."""
    stds = [
        Standard("A", grade_num=1, domain_code="X"),
        Standard("B", grade_num=2, domain_code="X"),
        Standard("C", grade_num=2, domain_code="Y"),
        Standard("D", grade_num=3, domain_code="X"),
        Standard("P", grade_num=3, domain_code="Y"),
        Standard("P.a", grade_num=3, parent="P", domain_code="Y"),
        Standard("P.b", grade_num=3, parent="P", domain_code="Y"),
        Standard("E", grade_num=3, domain_code="Y"),
    ]
    edges = [("A", "B"), ("A", "C"), ("B", "D"), ("C", "D"), ("B", "P"), ("P.a", "P.b")]
    return StandardsGraph(stds, edges, title="ladder")


def ladder_catalog() -> Catalog:
    items = [
        Item(f"{u}-practice", f"{u} practice", (u,), Modality.ONLINE_PRACTICE, 10)
        for u in ("A", "B", "C", "D", "P.a", "P.b", "E")
    ]
    items += [
        Item("B-tutoring", "B tutoring", ("B",), Modality.TUTORING, 15),
        Item("P-lesson", "P small group", ("P",), Modality.SMALL_GROUP, 20),
        Item("D-check", "D check", ("D",), Modality.ASSESSMENT, 10, difficulty=0.5, mastery_check=True),
    ]
    return Catalog(items)


def profile(
    index: TruthIndex,
    known: set[str] = frozenset(),
    *,
    slip: float = 0.1,
    guess: float = 0.2,
    speed: float = 1.0,
    number: int = 0,
) -> LearnerProfile:
    mask = np.zeros(len(index), dtype=bool)
    for code in known:
        mask[index.position[code]] = True
    mask.flags.writeable = False
    return LearnerProfile(number=number, theta=0.0, speed=speed, slip=slip, guess=guess, known=mask)


#: learning and forgetting switched off, so an answer depends only on the starting knowledge
FROZEN = SimulatorConfig(p_learn=0.0, half_life_days=1e9, prior_half_life_days=1e9, max_half_life_days=1e9)


@pytest.fixture
def graph() -> StandardsGraph:
    return ladder_graph()


@pytest.fixture
def catalog() -> Catalog:
    return ladder_catalog()


@pytest.fixture
def index(graph: StandardsGraph) -> TruthIndex:
    return TruthIndex(graph)
