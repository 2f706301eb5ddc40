"""Baseline policies driven by hand-made outcomes: the route area, topo's gate, ZPDES's ZPD."""

from __future__ import annotations

import numpy as np
import pytest

from engine.simulation import BASELINES, Outcome, Policy, RandomPolicy, TopoPolicy, ZPDESConfig, ZPDESPolicy
from engine.simulation.baselines import route_area

RIGHT, WRONG = Outcome(True, 10.0, 0.0), Outcome(False, 10.0, 0.0)


def unit_of(item_id: str) -> str:
    return item_id.split("-")[0]


def test_route_area_keeps_grades_down_to_the_lookback(graph) -> None:
    assert route_area(graph, ["D"]) == ["D"]
    assert route_area(graph, ["D"], lookback=1) == ["B", "C", "D"]
    assert route_area(graph, ["D", "P"], lookback=None) == ["A", "B", "C", "D", "P.a", "P.b"]


def test_every_baseline_is_a_policy() -> None:
    assert set(BASELINES) == {"random", "topo", "zpdes", "kt-fringe"}
    for factory in BASELINES.values():
        assert isinstance(factory(), Policy)


def test_random_draws_only_items_on_the_route_area(graph, catalog) -> None:
    policy = RandomPolicy(lookback=1)
    policy.start(graph, catalog, ["D"], np.random.default_rng(0))
    seen = {policy.choose() for _ in range(300)}
    assert seen == {"B-practice", "B-tutoring", "C-practice", "D-practice", "D-check"}


def test_topo_moves_on_only_after_three_correct_in_a_row(graph, catalog) -> None:
    policy = TopoPolicy(lookback=None)
    policy.start(graph, catalog, ["D"], np.random.default_rng(0))
    assert policy.area == ["A", "B", "C", "D"]
    for outcome in (RIGHT, RIGHT, WRONG, RIGHT, RIGHT):
        assert unit_of(policy.choose()) == "A"
        policy.observe("A-practice", outcome)
    assert unit_of(policy.choose()) == "A"
    policy.observe("A-practice", RIGHT)  # the third in a row
    assert {unit_of(policy.choose()) for _ in range(20)} == {"B"}
    for unit in ("B", "C", "D"):
        for _ in range(3):
            policy.observe(f"{unit}-practice", RIGHT)
    assert unit_of(policy.choose()) == "A"  # after the route, a review pass from the start


def zpdes(graph, catalog, goal, **params) -> ZPDESPolicy:
    policy = ZPDESPolicy(lookback=None, config=ZPDESConfig(**params))
    policy.start(graph, catalog, goal, np.random.default_rng(0))
    return policy


def answer(policy: ZPDESPolicy, unit: str, outcomes) -> None:
    """Force the activity (as if the bandit had drawn it) and feed outcomes."""
    for outcome in outcomes:
        policy._last_unit = unit
        policy.observe(f"{unit}-practice", outcome)


def test_zpdes_starts_with_activities_without_prerequisites_in_the_area(graph, catalog) -> None:
    assert zpdes(graph, catalog, ["D", "E"]).zpd == ["A", "E"]
    inside = ZPDESPolicy(lookback=0)
    inside.start(graph, catalog, ["D", "P"], np.random.default_rng(0))
    assert inside.zpd == ["D", "P.a"]  # D's prerequisites are outside the area; P.b needs P.a


def test_zpdes_opens_an_activity_when_its_prerequisites_pass(graph, catalog) -> None:
    policy = zpdes(graph, catalog, ["D"])
    answer(policy, "A", [RIGHT])
    assert policy.zpd == ["A"]  # one answer is too few (min_answers=2)
    answer(policy, "A", [WRONG])
    assert policy.zpd == ["A"]  # 1/2 is not above 0.5
    answer(policy, "A", [RIGHT])
    assert policy.zpd == ["A", "B", "C"]  # 2/3 over the last d/2=3 answers
    answer(policy, "B", [RIGHT, RIGHT])
    assert "D" not in policy.zpd  # D also needs C
    answer(policy, "C", [RIGHT, RIGHT])
    assert "D" in policy.zpd


def test_zpdes_retires_a_mastered_activity_but_never_the_last(graph, catalog) -> None:
    policy = zpdes(graph, catalog, ["B"])
    answer(policy, "A", [RIGHT] * 5)
    assert policy.zpd == ["A", "B"] and not policy.retired  # fewer than d=6 answers
    answer(policy, "A", [RIGHT])
    assert policy.zpd == ["B"] and policy.retired == {"A"}
    answer(policy, "B", [RIGHT] * 10)
    assert policy.zpd == ["B"]  # the last active activity stays


def test_zpdes_rewards_learning_progress(graph, catalog) -> None:
    improving = zpdes(graph, catalog, ["E"], close_threshold=1.0)
    answer(improving, "E", [WRONG, WRONG, WRONG, RIGHT, RIGHT, RIGHT])
    flat = zpdes(graph, catalog, ["E"], close_threshold=1.0)
    answer(flat, "E", [RIGHT] * 6)
    # w <- 0.2 w + 0.8 r, r = mean(last half) - mean(the half before) over the last min(6, n):
    # 0.05, 0.05 (n <= 2 keeps w), r=0 -> 0.01, r=0.5 -> 0.402, r=1 -> 0.8804, r=1 -> 0.97608
    assert improving.weight["E"] == pytest.approx(0.97608)
    assert flat.weight["E"] == pytest.approx(0.05 * 0.2**4)


def test_zpdes_samples_in_proportion_to_weights_plus_exploration(graph, catalog) -> None:
    policy = zpdes(graph, catalog, ["D", "E"])
    policy.weight.update({"A": 0.9, "E": 0.1})
    picks = [unit_of(policy.choose()) for _ in range(4000)]
    # p ~ w + sum(w)/10  ->  A: 1.0/1.2, E: 0.2/1.2
    assert picks.count("A") / 4000 == pytest.approx(1.0 / 1.2, abs=0.02)
