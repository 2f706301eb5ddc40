"""The zpd planner as a simulator policy: a thin adapter over the learner core (the starting
belief, first-attempt evidence, the optional entry diagnostic), and a short run on the bundled graph."""

from __future__ import annotations

import numpy as np
import pytest

from configs import PlannerConfig, load_config
from engine.catalog import Catalog, Item, Modality
from engine.graph import Standard, StandardsGraph
from engine.learner import KNOWN_GRADE_PRIOR
from engine.placement import PlacementConfig
from engine.planner.policy import ZPDPolicy
from engine.simulation import Outcome, evaluate, goal_for_grade
from models.bkt import GraphBKT


def chain_world() -> tuple[StandardsGraph, Catalog]:
    """Grade 2: L; grade 3: M <- L, N <- M (same domain); grade 4 goal: T <- N."""
    std = [
        Standard("L", grade="2", grade_num=2, domain_code="Y"),
        Standard("M", grade="3", grade_num=3, domain_code="Y"),
        Standard("N", grade="3", grade_num=3, domain_code="Y"),
        Standard("T", grade="4", grade_num=4, domain_code="Y"),
    ]
    items = []
    for s in std:
        items += [
            Item(f"{s.code}-p", s.code, (s.code,), Modality.ONLINE_PRACTICE, 10),
            Item(f"{s.code}-check", s.code, (s.code,), Modality.ASSESSMENT, 10, mastery_check=True),
        ]
    return StandardsGraph(std, [("L", "M"), ("M", "N"), ("N", "T")]), Catalog(items)


def started(**kwargs) -> ZPDPolicy:
    graph, catalog = chain_world()
    policy = ZPDPolicy(GraphBKT.from_graph, PlannerConfig(exploration=0.0), **kwargs)
    policy.start(graph, catalog, ["T"], np.random.default_rng(0))
    return policy


def mastery(policy: ZPDPolicy) -> dict[str, float]:
    return policy.core.model.mastery(policy.learner.state)


def test_a_grade_gives_a_prior_that_falls_with_grade() -> None:
    m = mastery(started(grade="4"))
    assert m["L"] > m["M"] > m["T"]  # earlier grades likely known, the goal grade not
    assert len(set(mastery(started()).values())) == 1  # no grade: the model's flat prior


def test_a_first_attempt_moves_the_belief_about_related_standards() -> None:
    policy = started(grade="4")
    before = mastery(policy)["N"]
    policy.observe("M-check", Outcome(correct=False, minutes=10.0, time=10.0))
    assert mastery(policy)["N"] < before  # N builds on M: failing M says N is likely unknown too
    policy.observe("M-p", Outcome(correct=True, minutes=10.0, time=20.0))
    assert len(policy.belief.answers) == 1  # only the first attempt is evidence about the starting state
    assert policy.learner.meta.answers == [("M", False, False)]


def test_the_entry_diagnostic_asks_the_goals_prerequisites_and_counts_as_diagnostic() -> None:
    policy = started(grade="4", placement=PlacementConfig(max_questions=2, min_questions=0, hint_sd=0.75))
    item = policy.choose()
    assert policy.last_choice_diagnostic and item == "N-check"  # the only prerequisite outside the goal
    policy.observe(item, Outcome(correct=True, minutes=10.0, time=10.0))
    policy.choose()
    assert not policy.last_choice_diagnostic  # nothing else to ask: the planner takes over
    assert policy.learner.progress.get("N").mastered_by in (None, "placement")
    assert policy.learner.meta.diagnostics[-1].finished


def test_known_grade_prior_is_narrower_than_the_placement_prior() -> None:
    assert KNOWN_GRADE_PRIOR.hint_sd < PlacementConfig().hint_sd and KNOWN_GRADE_PRIOR.max_questions == 0


def test_zpd_beats_random_on_a_short_bundled_run(bundled_graph) -> None:
    from engine.simulation import BASELINES
    from engine.sources import build_default_catalog
    from zpd.simulate import planner_factories

    catalog = build_default_catalog(bundled_graph)
    config = load_config()
    factories = planner_factories(config, GraphBKT.from_graph(bundled_graph, **config.model.bkt), grade="4")
    result = evaluate(
        {"random": BASELINES["random"], "zpd": factories["zpd"]},
        bundled_graph,
        catalog,
        learners=12,
        horizon=30,
        seed=1,
        goal=goal_for_grade(bundled_graph, 4),
    )
    rows = result["planners"]
    assert rows["zpd"]["violation_rate"] < rows["random"]["violation_rate"]
    assert rows["zpd"]["learning_gain"] > 0.0
    assert rows["zpd"]["diagnostic_questions"] == 0


@pytest.mark.parametrize("questions", [0, 3])
def test_planner_factories_diagnostic_setting(questions) -> None:
    from zpd.simulate import planner_factories

    graph, _ = chain_world()
    policy = planner_factories(load_config(), GraphBKT.from_graph(graph), placement=questions, grade="4")["zpd"]()
    assert (policy.placement is None) == (questions == 0)
