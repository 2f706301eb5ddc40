"""Evaluation: misspecified graphs, metrics on a hand-computed case, bootstrap CIs, fair pools."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from engine.catalog import Catalog
from engine.graph import StandardsGraph
from engine.simulation import (
    BASELINES,
    Outcome,
    PolicyRun,
    SimulatedEnvironment,
    SimulatorConfig,
    TopoPolicy,
    TruthIndex,
    bootstrap_ci,
    draw_learners,
    evaluate,
    goal_for_grade,
    misspecify,
    paired_difference,
    simulate,
    summarize,
)
from models.bkt import GraphBKT

METRICS = ("learning_gain", "reach", "median_activities_to_goal", "violation_rate", "band_hit")


# ---------------------------------------------------------------------------- goals and graphs
def test_goal_for_grade_lists_the_learnable_standards_of_the_grade(graph) -> None:
    assert goal_for_grade(graph, 3) == ["D", "P.a", "P.b", "E"]
    assert goal_for_grade(graph, "2") == ["B", "C"]
    with pytest.raises(ValueError, match="grade 7"):
        goal_for_grade(graph, 7)


def test_misspecify_drops_and_adds_the_right_counts_and_stays_a_dag(bundled_graph) -> None:
    true_edges = set(bundled_graph.prereq.edges)
    wrong = misspecify(bundled_graph, drop=0.2, add=0.1, rng=np.random.default_rng(0))
    wrong_edges = set(wrong.prereq.edges)
    assert len(true_edges - wrong_edges) == round(0.2 * len(true_edges))
    added = wrong_edges - true_edges
    assert len(added) == round(0.1 * len(true_edges))
    assert nx.is_directed_acyclic_graph(wrong.prereq) and nx.is_directed_acyclic_graph(wrong.learning)
    for a, b in added:
        ga, gb = bundled_graph[a].grade_num, bundled_graph[b].grade_num
        assert abs(ga - gb) <= 1
        assert a not in bundled_graph.lineage(b) and b not in bundled_graph.lineage(a)
    assert list(wrong.standards) == list(bundled_graph.standards)
    again = misspecify(bundled_graph, drop=0.2, add=0.1, rng=np.random.default_rng(0))
    assert set(again.prereq.edges) == wrong_edges
    assert set(misspecify(bundled_graph, rng=np.random.default_rng(1)).prereq.edges) != wrong_edges


def test_misspecify_never_adds_an_edge_backwards(graph) -> None:
    # every forward pair of the ladder: adding them all must still be acyclic
    wrong = misspecify(graph, drop=0.0, add=1.0, rng=np.random.default_rng(0))
    assert nx.is_directed_acyclic_graph(wrong.learning)
    assert ("P", "P.a") not in wrong.prereq.edges and ("P.a", "P") not in wrong.prereq.edges
    assert ("D", "A") not in wrong.prereq.edges  # grades 3 and 1 are not adjacent


# ---------------------------------------------------------------------------- metrics
def hand_run(name: str = "hand") -> PolicyRun:
    # four learners, horizon 10; learner 3 already masters the goal
    return PolicyRun(
        name=name,
        horizon=10,
        start=np.array([0.0, 0.5, 0.2, 1.0]),
        end=np.array([1.0, 0.75, 0.2, 1.0]),
        reach_step=np.array([8, -1, -1, 0]),
        violations=np.array([1.0, 0.0, 3.0, 0.0]),
        band_hits=np.array([5.0, 4.0, 2.0, 9.0]),
        minutes=np.array([100.0, 100.0, 100.0, 100.0]),
    )


def test_metrics_on_a_hand_computed_case() -> None:
    m = summarize({"hand": hand_run()}, seed=0)["hand"]
    assert m["learning_gain"] == pytest.approx((1.0 + 0.5 + 0.0) / 3)  # (end-start)/(1-start)
    assert m["reach"] == pytest.approx(1 / 3)
    assert m["median_activities_to_goal"] == 8 and m["reached"] == 1
    assert m["violation_rate"] == pytest.approx(4 / 40)
    assert m["band_hit"] == pytest.approx(20 / 40)
    assert m["already_at_goal"] == 1 and m["learners"] == 4 and m["recommendations"] == 40
    assert m["start_score"] == pytest.approx(0.425) and m["minutes_per_learner"] == 100.0


def test_nobody_reaching_gives_no_median() -> None:
    run = hand_run()
    run.reach_step[:] = -1
    m = summarize({"r": run}, seed=0)["r"]
    assert m["reach"] == 0.0 and m["reached"] == 0
    assert m["median_activities_to_goal"] is None and m["median_activities_to_goal_ci"] is None


def test_bootstrap_ci_contains_the_statistic_and_is_deterministic() -> None:
    values = np.random.default_rng(3).random(200)
    mean, (low, high) = bootstrap_ci(values, seed=11)
    assert mean == pytest.approx(values.mean())
    assert low < mean < high and high - low < 0.2
    assert bootstrap_ci(values, seed=11) == (mean, (low, high))
    assert bootstrap_ci(values, seed=12)[1] != (low, high)
    ratio, (rl, rh) = bootstrap_ci(np.full(50, 3.0), np.full(50, 10.0), statistic="ratio", seed=0)
    assert ratio == rl == rh == pytest.approx(0.3)


def test_paired_difference_of_a_run_with_itself_is_zero() -> None:
    diff, (low, high) = paired_difference(hand_run("a"), hand_run("b"), seed=0)
    assert diff == low == high == 0.0


# ---------------------------------------------------------------------------- end to end
class Stubborn:
    """Always the same item, on a standard outside the goal: it cannot raise the goal score."""

    name = "stubborn"

    def start(self, graph: StandardsGraph, catalog: Catalog, goal, rng) -> None:
        pass

    def choose(self) -> str:
        return "E-practice"

    def observe(self, item_id: str, outcome: Outcome) -> None:
        pass


def test_policies_on_the_same_pool_see_the_same_learners(graph, catalog) -> None:
    policies = {"topo": TopoPolicy, "topo_again": TopoPolicy, "stubborn": Stubborn}
    runs, _ = simulate(policies, graph, catalog, learners=30, horizon=25, seed=4, goal=["D", "P"], keep_items=True)
    assert np.array_equal(runs["topo"].start, runs["stubborn"].start)
    same, again = runs["topo"], runs["topo_again"]
    assert same.items == again.items and np.array_equal(same.end, again.end)
    assert np.array_equal(same.violations, again.violations)
    assert (runs["stubborn"].end <= runs["stubborn"].start).all()
    assert runs["topo"].end.mean() > runs["stubborn"].end.mean()


def test_evaluate_reports_every_metric_with_a_ci(graph, catalog) -> None:
    kwargs = {
        "learners": 40,
        "horizon": 20,
        "seed": 0,
        "goal": ["D", "P"],
        "reference_model_factory": GraphBKT.from_graph,
    }
    result = evaluate(BASELINES, graph, catalog, **kwargs)
    assert set(result["planners"]) == {"random", "topo", "zpdes", "kt-fringe"}
    for metrics in result["planners"].values():
        for name in ("learning_gain", "violation_rate", "band_hit"):
            value, (low, high) = metrics[name], metrics[f"{name}_ci"]
            assert low <= value <= high
        assert set(METRICS) <= set(metrics)
    assert result["settings"]["start_grade"] == 3.0 and result["settings"]["bootstrap_resamples"] == 1000
    assert evaluate(BASELINES, graph, catalog, **kwargs)["planners"] == result["planners"]


def test_misspecified_planners_are_scored_against_the_true_graph(graph, catalog) -> None:
    result = evaluate(
        {"topo": TopoPolicy},
        graph,
        catalog,
        learners=20,
        horizon=15,
        seed=0,
        goal=["D"],
        misspecify={"drop": 0.5, "add": 0.0},
    )
    spec = result["settings"]["misspecify"]
    assert spec["edges"] == 6 and spec["dropped"] == 3 and spec["added"] == 0
    with pytest.raises(ValueError, match="drop and add"):
        evaluate(
            {"topo": TopoPolicy}, graph, catalog, learners=2, horizon=2, seed=0, goal=["D"], misspecify={"remove": 0.5}
        )


def test_reach_step_is_the_first_activity_after_which_the_goal_is_mastered(graph, catalog) -> None:
    runs, _ = simulate(
        {"topo": TopoPolicy}, graph, catalog, learners=25, horizon=40, seed=2, goal=["B"], keep_items=True
    )
    run = runs["topo"]
    assert (run.reach_step > 0).any()
    index = TruthIndex(graph)
    env = SimulatedEnvironment(
        graph, catalog, ["B"], draw_learners(index, SimulatorConfig(), 2.0, 2, 25), seed=2, index=index
    )
    for k in range(25):
        env.reset(k)
        scores = [env.goal_score()] + [(env.step(i), env.goal_score())[1] for i in run.items[k]]
        first = next((t for t, s in enumerate(scores) if s >= 1.0), -1)
        assert run.reach_step[k] == first


def test_learners_already_at_the_goal_are_left_out_and_counted(graph, catalog) -> None:
    calls = []
    result = evaluate(
        {"topo": TopoPolicy},
        graph,
        catalog,
        learners=5,
        horizon=3,
        seed=0,
        goal=["B"],
        config=SimulatorConfig(start_grade=9.0, position_sd=0.0),
        progress=lambda name, done, total: calls.append((name, done, total)),
    )
    m = result["planners"]["topo"]
    assert m["already_at_goal"] == 5 and m["learning_gain"] is None and m["reach"] is None
    assert calls[-1] == ("topo", 5, 5) and len(calls) == 5
