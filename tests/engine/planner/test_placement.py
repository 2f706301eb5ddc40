"""The placement diagnostic on small graphs and on the bundled graph."""

from __future__ import annotations

import numpy as np

from engine.catalog import Catalog, Item, Modality
from engine.graph import Standard, StandardsGraph
from engine.placement import Placement, PlacementConfig, grade_band, placement_accuracy, run_placement
from engine.planner.index import PlannerIndex


def ladder(n: int = 8) -> PlannerIndex:
    codes = [f"S{i}" for i in range(n)]
    graph = StandardsGraph(
        [Standard(c, grade=str(i), grade_num=i) for i, c in enumerate(codes)], list(zip(codes, codes[1:]))
    )
    items = [Item(f"{c}-q", c, (c,), Modality.ASSESSMENT, 5, mastery_check=True) for c in codes]
    return PlannerIndex.build(graph, Catalog(items))


def test_places_a_learner_on_a_ladder() -> None:
    index = ladder()
    truth = {"S0", "S1", "S2", "S3"}
    cfg = PlacementConfig(max_questions=8, min_questions=3, slip=0.05, guess=0.05)
    result = run_placement(Placement(index, cfg, seed=1), lambda unit: unit in truth)
    assert set(result.mastered) == truth
    assert result.questions <= 8
    assert placement_accuracy(result, truth, list(index.order)) == 1.0


def test_questions_use_the_structure() -> None:
    index = ladder()
    placement = Placement(index, PlacementConfig(min_questions=1), seed=0)
    first = placement.next_question()
    assert first not in ("S0", "S7")  # the ends say little; the middle splits the ladder
    placement.answer(first, True)
    m = dict(zip(placement.units, placement.marginals()))
    position = int(first[1:])
    assert all(m[f"S{i}"] > 0.8 for i in range(position))  # success is evidence for ancestors


def test_placement_is_rebuilt_from_seed_and_answers() -> None:
    index = ladder()
    a = Placement(index, seed=5)
    for _ in range(3):
        unit = a.next_question()
        a.answer(unit, unit in {"S0", "S1"})
    b = Placement.from_json(index, a.to_json())
    np.testing.assert_allclose(a.marginals(), b.marginals())
    assert a.next_question() == b.next_question()


def test_bundled_graph_placement_is_short_and_accurate(bundled_graph) -> None:
    from engine.sources import build_default_catalog

    index = PlannerIndex.build(bundled_graph, build_default_catalog(bundled_graph))
    units = list(index.order)
    rng = np.random.default_rng(0)
    truth = {u for u in units if (bundled_graph.standards[u].grade_num or 0) <= 3}  # knows K-3 fully
    result = run_placement(Placement(index, seed=0), lambda u: rng.random() < (0.9 if u in truth else 0.15))
    assert result.questions <= 30
    assert placement_accuracy(result, truth, units) >= 0.85
    assert result.grade_band in {"2", "3", "4"}
    assert grade_band(bundled_graph, truth, units) == "3"


def test_min_gain_stops_when_no_question_is_worth_asking() -> None:
    index = ladder()
    eager = Placement(index, PlacementConfig(max_questions=8, min_questions=0), seed=2)
    picky = Placement(index, PlacementConfig(max_questions=8, min_questions=0, min_gain=0.2), seed=2)
    truth = {"S0", "S1", "S2", "S3"}
    asked_eager = run_placement(eager, lambda u: u in truth).questions
    asked_picky = run_placement(picky, lambda u: u in truth).questions
    assert asked_picky < asked_eager and picky.finished


def test_the_prior_cloud_is_drawn_once_and_shared() -> None:
    index = ladder()
    a, b = Placement(index, seed=4), Placement(index, seed=4)
    assert a._known is b._known  # read-only and shared; answers only move the weights
    a.answer("S3", True)
    assert not np.allclose(a.marginals(), b.marginals())
    assert Placement(index, seed=5)._known is not a._known


def test_questions_prefer_items_on_the_standard_alone() -> None:
    codes = ["S0", "S1"]
    graph = StandardsGraph([Standard(c, grade=str(i), grade_num=i) for i, c in enumerate(codes)], [("S0", "S1")])
    items = [
        Item("both", "both", ("S0", "S1"), Modality.ASSESSMENT, 5, mastery_check=True),
        Item("S1-q", "S1", ("S1",), Modality.ONLINE_PRACTICE, 10),
    ]
    placement = Placement(PlannerIndex.build(graph, Catalog(items)))
    assert placement.item_for("S1").id == "S1-q"  # not the shorter two-standard check
    assert placement.item_for("S0").id == "both"  # the only item there is
